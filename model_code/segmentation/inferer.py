"""Sliding-window inference of a contract TorchScript: logits in, foreground probability out."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence

import torch

from model_code.model_dir import ModelDirectoryError

CONTRACT_CHANNELS = 2


def _checked(network: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
    def predict(window: torch.Tensor) -> torch.Tensor:
        logits = network(window)
        if not isinstance(logits, torch.Tensor) or logits.ndim != 5 or logits.shape[1] != CONTRACT_CHANNELS:
            shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
            raise ModelDirectoryError(
                f"the model returned {shape} for input {tuple(window.shape)}: the contract is "
                f"[B,1,X,Y,Z] -> [B,{CONTRACT_CHANNELS},X,Y,Z] logits; re-export the TorchScript"
            )
        return logits

    return predict


def foreground_probability(
    network: Callable[[torch.Tensor], torch.Tensor],
    image: torch.Tensor,
    *,
    roi_size: Sequence[int],
    overlap: float,
    sw_batch_size: int,
    amp: bool,
) -> torch.Tensor:
    """Softmax probability of label 1 on the model grid, (X, Y, Z) float32, from a (X, Y, Z) image.

    For two classes, argmax(softmax) == (p1 > 0.5) and p1 = sigmoid(l1 - l0): computing p1 alone
    halves the work of the inverse resampling, and interpolating p1 commutes with the argmax
    because p0 = 1 - p1 at every voxel.
    """
    from monai.inferers import sliding_window_inference

    autocast = (
        torch.autocast(device_type="cuda", dtype=torch.float16)
        if amp and image.device.type == "cuda"
        else contextlib.nullcontext()
    )
    with autocast:
        logits = sliding_window_inference(
            image[None, None],
            roi_size=tuple(roi_size),
            sw_batch_size=sw_batch_size,
            predictor=_checked(network),
            overlap=overlap,
            mode="constant",
        )
    assert isinstance(logits, torch.Tensor)
    logits = logits.float()
    return torch.sigmoid(logits[0, 1] - logits[0, 0])
