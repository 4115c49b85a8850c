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
import itertools
import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F  # noqa: N812 (the PyTorch convention)

from model_code.model_dir import ModelDirectoryError

CONTRACT_CHANNELS = 2
Network = Callable[[torch.Tensor], torch.Tensor]


def window_starts(size: int, roi: int, overlap: float) -> list[int]:
    """Start indices of the windows along one axis of (padded) length ``size`` >= ``roi``."""
    if roi == size:
        return [0]
    interval = max(int(roi * (1 - overlap)), 1)
    count = next((d + 1 for d in range(math.ceil(size / interval)) if d * interval + roi >= size), 1)
    return [i * interval - max(i * interval + roi - size, 0) for i in range(count)]


def _check_logits(logits: object, window: torch.Tensor) -> torch.Tensor:
    if not isinstance(logits, torch.Tensor) or logits.ndim != 5 or logits.shape[1] != CONTRACT_CHANNELS:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ModelDirectoryError(
            f"the model returned {shape} for input {tuple(window.shape)}: the contract is "
            f"[B,1,X,Y,Z] -> [B,{CONTRACT_CHANNELS},X,Y,Z] logits; re-export the TorchScript"
        )
    if logits.shape[2:] != window.shape[2:]:
        raise ModelDirectoryError(
            f"the model returned spatial shape {tuple(logits.shape[2:])} for a {tuple(window.shape[2:])} window: "
            "a segmentation network must keep the input's spatial shape"
        )
    return logits


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
    if image.ndim != 3 or len(roi_size) != 3:
        raise ValueError(f"expected a 3-D image and a 3-D roi, got {tuple(image.shape)} and {tuple(roi_size)}")
    roi = tuple(int(r) for r in roi_size)
    size = tuple(image.shape)
    # F.pad lists the last axis first; MONAI puts half of the padding before, the rest after.
    padding = [max(r - s, 0) for s, r in zip(size, roi, strict=True)]
    pad_arg: list[int] = []
    for diff in reversed(padding):
        pad_arg += [diff // 2, diff - diff // 2]
    padded = F.pad(image, pad_arg) if any(padding) else image
    padded_size = tuple(padded.shape)

    starts = [window_starts(padded_size[a], roi[a], overlap) for a in range(3)]
    windows = list(itertools.product(*starts))
    total = torch.zeros(padded_size, dtype=torch.float32, device=image.device)
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

    coverage = []
    for axis in range(3):
        count = torch.zeros(padded_size[axis], dtype=torch.float32, device=image.device)
        for start in starts[axis]:
            count[start : start + roi[axis]] += 1.0
        coverage.append(count)
    total /= coverage[0][:, None, None] * coverage[1][None, :, None] * coverage[2][None, None, :]
    lo = [diff // 2 for diff in padding]
    mean_difference = total[lo[0] : lo[0] + size[0], lo[1] : lo[1] + size[1], lo[2] : lo[2] + size[2]]
    # softmax([l0, l1])[1] == sigmoid(l1 - l0)
    return torch.sigmoid(mean_difference)
