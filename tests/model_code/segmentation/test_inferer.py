"""Our sliding window equals monai.inferers.sliding_window_inference (constant blending) + softmax."""

from __future__ import annotations

import pytest
import torch
from monai.inferers import sliding_window_inference

from model_code.model_dir import ModelDirectoryError
from model_code.segmentation.inferer import foreground_probability, window_starts


class _PositionDependent(torch.nn.Module):
    """Logits that depend on the input nonlinearly, so averaging order and coverage both matter."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x * 3.0 - 1.0, torch.sin(x * 7.0) + x * x], dim=1)


IMAGES = [
    # (image shape, roi, overlap, sw_batch_size)
    ((40, 36, 20), (16, 16, 16), 0.5, 3),  # several windows per axis, last window flush with the end
    ((10, 24, 16), (16, 16, 16), 0.5, 4),  # smaller than the roi on one axis: padded symmetrically
    ((7, 9, 5), (16, 16, 16), 0.5, 1),  # smaller on every axis (odd padding)
    ((16, 16, 16), (16, 16, 16), 0.5, 2),  # exactly one window
    ((33, 20, 18), (16, 8, 12), 0.25, 5),  # another overlap, anisotropic roi
]


@pytest.mark.parametrize(("shape", "roi", "overlap", "batch"), IMAGES)
def test_equals_monai(shape, roi, overlap, batch):
    image = torch.rand(shape, generator=torch.Generator().manual_seed(0))
    network = _PositionDependent()
    ours = foreground_probability(network, image, roi_size=roi, overlap=overlap, sw_batch_size=batch, amp=False)
    logits = sliding_window_inference(image[None, None], roi, batch, network, overlap=overlap, mode="constant")
    assert isinstance(logits, torch.Tensor)
    reference = torch.softmax(logits, dim=1)[0, 1]
    assert ours.shape == reference.shape == shape
    assert torch.allclose(ours, reference, atol=1e-6)


@pytest.mark.parametrize(
    ("size", "roi", "overlap", "starts"),
    [
        (96, 96, 0.5, [0]),
        (148, 96, 0.5, [0, 48, 52]),
        (200, 96, 0.5, [0, 48, 96, 104]),
        (100, 96, 0.0, [0, 4]),
    ],
)
def test_window_starts(size, roi, overlap, starts):
    assert window_starts(size, roi, overlap) == starts


class _OneChannel(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class _Shrinks(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, x], dim=1)[..., :-1]


@pytest.mark.parametrize(
    ("network", "message"),
    [
        (_OneChannel(), r"contract is \[B,1,X,Y,Z\] -> \[B,2,X,Y,Z\]"),
        (_Shrinks(), "must keep the input's spatial shape"),
    ],
)
def test_contract_violations_are_named(network, message):
    with pytest.raises(ModelDirectoryError, match=message):
        foreground_probability(network, torch.rand(8, 8, 8), roi_size=(8, 8, 8), overlap=0.5, sw_batch_size=1, amp=False)
