"""The torch transforms beyond their equality with MONAI (tests/model_code/test_transforms_match_monai.py):
a smooth round trip, the plan's axes, shape checks, window starts and the logits contract."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from model_code.core.errors import ModelDirectoryError, NetworkContractError
from model_code.core.geometry import plan_resample, window_starts
from model_code.segmentation.transforms_torch import (
    foreground_probability,
    from_model_grid,
    scale_intensity,
    shares_memory,
    to_model_grid,
)
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


# (shape, spacing, orientation, descending, slab): each row a different inverse plan; the slab cuts it unevenly.
SLAB_CASES = [
    ((40, 64, 64), (2.5, 0.8, 0.8), "axial", False, 16),  # the CT case: slices upsampled, in-plane upsampled
    ((40, 64, 64), (2.5, 0.8, 0.8), "axial", True, 7),  # head-to-feet: the slice axis flipped
    ((30, 24, 28), (1.0, 3.0, 3.0), "coronal", False, 4),  # the slice axis is not the model's first
    ((33, 20, 20), (0.7, 2.0, 2.0), "sagittal", True, 1),  # one slice a slab; downsampled slices
    ((9, 16, 16), (2.0, 1.5, 1.5), "axial", False, 100),  # one slab for everything; in-plane identity
    ((1, 16, 16), (2.0, 1.5, 1.5), "axial", False, 1),  # a one-slice axis (a gather)
]


@pytest.mark.parametrize(("shape", "spacing", "orientation", "descending", "slab"), SLAB_CASES)
def test_slabbed_inverse_equals_the_whole_volume_inverse(shape, spacing, orientation, descending, slab) -> None:
    from model_code.core import transforms_numpy
    from model_code.segmentation.transforms_torch import mask_from_model_grid

    plan = plan_resample(phantom_affine(shape=shape, spacing=spacing, orientation=orientation, descending=descending),
                         shape, pixdim=PIXDIM)
    values = torch.from_numpy(np.random.default_rng(0).random(plan.model_shape, dtype=np.float32))
    expected = (from_model_grid(values, plan) > 0.5).to(torch.uint8).numpy()
    assert 0 < expected.sum() < expected.size  # the threshold cuts through the values: a real comparison
    np.testing.assert_array_equal(mask_from_model_grid(values, plan, threshold=0.5, slab=slab), expected)
    # the edge runner's numpy twin, against its own whole-volume inverse
    whole = (transforms_numpy.from_model_grid(values.numpy(), plan) > 0.5).astype(np.uint8)
    np.testing.assert_array_equal(transforms_numpy.mask_from_model_grid(values.numpy(), plan, threshold=0.5,
                                                                        slab=slab), whole)


@pytest.mark.parametrize(("shape", "spacing", "orientation", "descending", "slab"), SLAB_CASES)
def test_slabbed_resampling_equals_the_whole_volume_resampling(shape, spacing, orientation, descending, slab) -> None:
    from model_code.core import transforms_numpy

    plan = plan_resample(phantom_affine(shape=shape, spacing=spacing, orientation=orientation, descending=descending),
                         shape, pixdim=PIXDIM)
    volume = np.random.default_rng(1).normal(0.0, 300.0, size=shape).astype(np.float32)
    whole = to_model_grid(torch.from_numpy(volume), plan, slab=None)
    slabbed = to_model_grid(torch.from_numpy(volume), plan, slab=slab)
    assert slabbed.is_contiguous()  # model order in memory: the pipeline's .contiguous() is free
    torch.testing.assert_close(slabbed, whole, rtol=0, atol=0)
    np.testing.assert_array_equal(transforms_numpy.to_model_grid(volume, plan, slab=slab),
                                  transforms_numpy.to_model_grid(volume, plan, slab=None))


@pytest.mark.parametrize("clip", [True, False])
def test_scaling_in_place_gives_the_out_of_place_values_bit_for_bit(clip):
    # In place is how the pipeline scales a fresh model grid (issue 19: no second model-grid volume).
    hu = torch.linspace(-300.0, 400.0, 7 * 5 * 3).reshape(7, 5, 3)
    kept = hu.clone()
    args = {"window": (-57.0, 164.0), "scaled_range": (0.0, 1.0), "clip": clip}
    out_of_place = scale_intensity(hu, **args)
    assert torch.equal(hu, kept)
    in_place = scale_intensity(hu, **args, in_place=True)
    assert in_place.data_ptr() == hu.data_ptr()
    assert torch.equal(in_place, out_of_place)


@pytest.mark.parametrize(
    ("dtype", "lps_diagonal", "shared"),
    [
        # Voxel axes along +R, +A, +S (LPS -x, -y, +z) at the model's spacing: no resampling pass at all.
        (torch.float32, (-1.5, -1.5, 2.0), True),  # float: the grid is a view of the volume
        (torch.int16, (-1.5, -1.5, 2.0), False),  # int16: the float32 conversion is a copy
        (torch.float32, (-1.6, -1.5, 2.0), False),  # resampled along one axis: a fresh grid
        (torch.float32, (1.5, -1.5, 2.0), False),  # flipped along one axis: a fresh grid
    ],
)
def test_shares_memory_tells_a_view_of_the_volume_from_a_fresh_grid(dtype, lps_diagonal, shared):
    shape = (4, 6, 5)
    plan = plan_resample(np.diag([*lps_diagonal, 1.0]), shape, pixdim=PIXDIM)
    volume = torch.arange(4 * 6 * 5).reshape(shape).to(dtype)
    grid = to_model_grid(volume, plan)
    assert shares_memory(grid, volume) is shared
