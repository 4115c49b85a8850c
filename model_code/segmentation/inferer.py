"""Sliding-window inference of a contract TorchScript: logits in, foreground probability out.

Same windows as ``monai.inferers.sliding_window_inference`` with ``mode="constant"`` (the spleen
bundle's SlidingWindowInferer): the image is padded symmetrically up to the ROI where smaller, window
starts step by ``int(roi * (1 - overlap))`` with the last window flush with the end, and every voxel
gets the mean of the logits of the windows covering it. Two things make it cheaper than MONAI's
general implementation, and neither changes the result:

* only the logit difference ``l1 - l0`` is accumulated (the mean is linear, and softmax of two
  classes depends on the difference alone), halving the accumulation and the output;
* window coverage is a product of per-axis counts, computed once instead of summed per window.

``tests/model_code/segmentation/test_inferer.py`` checks equality with MONAI's function.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F  # noqa: N812 (the PyTorch convention)

from model_code.model_dir import ModelDirectoryError
from model_code.segmentation.geometry import CONTRACT_CHANNELS, logits_contract_problem, plan_windows, window_starts

__all__ = ["CONTRACT_CHANNELS", "Network", "foreground_probability", "window_starts"]
Network = Callable[[torch.Tensor], torch.Tensor]


def _check_logits(logits: object, window: torch.Tensor) -> torch.Tensor:
    shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else None
    problem = logits_contract_problem(shape, type(logits).__name__, tuple(window.shape), "re-export the TorchScript")
    if problem is not None:
        raise ModelDirectoryError(problem)
    return logits  # type: ignore[return-value]  # a tensor: the contract check above passed


def foreground_probability(
    network: Network,
    image: torch.Tensor,
    *,
    roi_size: Sequence[int],
    overlap: float,
    sw_batch_size: int,
    amp: bool,
) -> torch.Tensor:
    """Softmax probability of label 1 on the model grid, (X, Y, Z) float32, from a (X, Y, Z) image."""
    plan = plan_windows(image.shape, roi_size, overlap)
    roi = plan.roi
    # F.pad lists the last axis first; MONAI puts half of the padding before, the rest after.
    pad_arg: list[int] = []
    for diff in reversed(plan.padding):
        pad_arg += [diff // 2, diff - diff // 2]
    padded = F.pad(image, pad_arg) if any(plan.padding) else image

    windows = plan.windows
    total = torch.zeros(plan.padded_size, dtype=torch.float32, device=image.device)
    batch = torch.empty((min(sw_batch_size, len(windows)), 1, *roi), dtype=image.dtype, device=image.device)
    autocast = (
        torch.autocast(device_type="cuda", dtype=torch.float16)
        if amp and image.device.type == "cuda"
        else contextlib.nullcontext()
    )
    for first in range(0, len(windows), sw_batch_size):
        group = windows[first : first + sw_batch_size]
        for i, (x, y, z) in enumerate(group):
            batch[i, 0] = padded[x : x + roi[0], y : y + roi[1], z : z + roi[2]]
        inputs = batch[: len(group)]
        with autocast:
            logits = _check_logits(network(inputs), inputs)
        difference = (logits[:, 1] - logits[:, 0]).float()
        for i, (x, y, z) in enumerate(group):
            total[x : x + roi[0], y : y + roi[1], z : z + roi[2]] += difference[i]

    coverage = [torch.from_numpy(plan.coverage(axis)).to(image.device) for axis in range(3)]
    total /= coverage[0][:, None, None] * coverage[1][None, :, None] * coverage[2][None, None, :]
    # softmax([l0, l1])[1] == sigmoid(l1 - l0)
    return torch.sigmoid(total[plan.crop()])
