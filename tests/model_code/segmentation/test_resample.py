"""Our torch resampling equals MONAI's Orientation + Spacing (bilinear, border) and its inverse."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import Compose, Orientation, Spacing

from model_code.imaging.phantom import phantom_affine
from model_code.segmentation.resample import LPS_TO_RAS, from_model_grid, plan_resample, to_model_grid

PIXDIM = (1.5, 1.5, 2.0)


def _oblique(affine: np.ndarray, degrees: float) -> np.ndarray:
    """Tilt the acquisition about L (a gantry tilt), as the CT slice pydicom ships is."""
    angle = np.deg2rad(degrees)
    rotation = np.eye(4)
    rotation[1:3, 1:3] = [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
    return rotation @ affine


GRIDS = [
    # (orientation, descending, shape, spacing, tilt in degrees)
    ("axial", False, (11, 17, 13), (2.5, 0.8, 1.1), 0.0),  # downsample in-plane, upsample slices
    ("axial", True, (11, 17, 13), (2.5, 0.8, 1.1), 0.0),  # slice axis reversed
    ("sagittal", False, (9, 14, 12), (1.0, 2.0, 0.7), 0.0),
    ("coronal", True, (9, 14, 12), (3.0, 1.5, 1.5), 0.0),  # one axis already at target spacing
    ("axial", False, (7, 16, 16), (5.0, 0.43, 0.43), 22.0),  # oblique, like pydicom's real CT slice
    ("axial", False, (1, 8, 8), (2.0, 1.0, 1.0), 0.0),  # a single slice
]


def _monai(volume: np.ndarray, affine_lps: np.ndarray) -> tuple[Compose, MetaTensor]:
    chain = Compose([Orientation(axcodes="RAS"), Spacing(pixdim=PIXDIM, mode="bilinear", padding_mode="border")])
    image = MetaTensor(torch.from_numpy(volume)[None], affine=torch.from_numpy(LPS_TO_RAS @ affine_lps))
    return chain, chain(image)


@pytest.mark.parametrize(("orientation", "descending", "shape", "spacing", "tilt"), GRIDS)
def test_forward_equals_monai(orientation, descending, shape, spacing, tilt):
    affine = _oblique(phantom_affine(shape=shape, spacing=spacing, orientation=orientation, descending=descending), tilt)
    volume = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    plan = plan_resample(affine, shape, pixdim=PIXDIM)
    ours = to_model_grid(torch.from_numpy(volume), plan)
    _, reference = _monai(volume, affine)
    assert tuple(ours.shape) == tuple(reference.shape[1:]) == plan.model_shape
    assert torch.allclose(ours, reference[0].float(), atol=1e-5)


@pytest.mark.parametrize(("orientation", "descending", "shape", "spacing", "tilt"), GRIDS)
def test_inverse_equals_monai_inverse(orientation, descending, shape, spacing, tilt):
    affine = _oblique(phantom_affine(shape=shape, spacing=spacing, orientation=orientation, descending=descending), tilt)
    volume = np.zeros(shape, dtype=np.float32)
    plan = plan_resample(affine, shape, pixdim=PIXDIM)
    chain, forward = _monai(volume, affine)
    values = torch.rand(plan.model_shape, generator=torch.Generator().manual_seed(1))
    prediction = MetaTensor(values[None].clone(), affine=forward.affine)
    prediction.applied_operations = forward.applied_operations
    reference = chain.inverse(prediction)
    ours = from_model_grid(values, plan)
    assert tuple(ours.shape) == shape
    assert torch.allclose(ours, reference[0].float(), atol=1e-5)


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
