"""The torch transforms beyond their equality with MONAI (tests/model_code/test_transforms_match_monai.py):
a smooth round trip, the plan's axes, shape checks, window starts and the logits contract."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from model_code.core.errors import ModelDirectoryError, NetworkContractError
from model_code.core.geometry import plan_resample, window_starts
from model_code.segmentation.transforms_torch import foreground_probability, from_model_grid, to_model_grid
from model_code.synthetic.phantom import phantom_affine

PIXDIM = (1.5, 1.5, 2.0)


def test_round_trip_of_a_smooth_field_is_close():
    # Resample a linear ramp there and back: linear interpolation reproduces it, except past the
    # last model voxel (round(9 * 3 / 2) + 1 = 14 voxels reach 13 * 2 / 3 = 8.67), where border padding holds.
    shape = (10, 12, 14)
    affine = phantom_affine(shape=shape, spacing=(3.0, 3.0, 3.0))
    plan = plan_resample(affine, shape, pixdim=PIXDIM)
    ramp = torch.arange(shape[0], dtype=torch.float32)[:, None, None].expand(shape).contiguous()
    back = from_model_grid(to_model_grid(ramp, plan), plan)
    assert torch.allclose(back[:-1], ramp[:-1], atol=1e-4)
    assert torch.allclose(back[-1], torch.tensor(13 * 2 / 3), atol=1e-4)


@pytest.mark.parametrize(
    ("orientation", "model_axis", "flipped"),
    [
        # slice, row, col -> RAS axes. LPS row direction +L is RAS -R, so in-plane L/P axes flip.
        ("axial", (2, 1, 0), (False, True, True)),
        ("sagittal", (0, 2, 1), (False, True, True)),  # slice normal is -L = +R
        ("coronal", (1, 2, 0), (True, True, True)),  # slice normal is +P = -A
    ],
)
def test_plan_maps_axes_to_ras(orientation, model_axis, flipped):
    plan = plan_resample(phantom_affine(shape=(4, 5, 6), spacing=(1.0, 1.0, 1.0), orientation=orientation), (4, 5, 6), pixdim=PIXDIM)
    assert plan.model_axis == model_axis
    assert plan.flipped == flipped


def test_mismatched_shapes_are_refused():
    plan = plan_resample(np.eye(4), (4, 5, 6), pixdim=PIXDIM)
    with pytest.raises(ValueError, match="does not match the plan"):
        to_model_grid(torch.zeros(4, 5, 7), plan)
    with pytest.raises(ValueError, match="does not match the plan's model grid"):
        from_model_grid(torch.zeros(1, 2, 3), plan)


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
        (_OneChannel(), r"contract is \[B,1,X,Y,Z\] -> \[B,2,X,Y,Z\].*re-export the TorchScript"),
        (_Shrinks(), "must keep the input's spatial shape"),
    ],
)
def test_contract_violations_are_named(network, message):
    # A model-directory error: the predict CLI answers it as bad input (exit 2), the servers at model load.
    with pytest.raises(NetworkContractError, match=message) as raised:
        foreground_probability(network, torch.rand(8, 8, 8), roi_size=(8, 8, 8), overlap=0.5, sw_batch_size=1, amp=False)
    assert isinstance(raised.value, ModelDirectoryError)
