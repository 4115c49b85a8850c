"""Each segmentation transform, in each array library, equals MONAI's stock transform on the same input.

The spleen contract's pre-processing, window and inverse exist once per array library:
``model_code.core.transforms_numpy`` (edge runner, ONNX export check) and
``model_code.segmentation.transforms_torch`` (the torch pipeline), both executing the plans of
``model_code.core.geometry``. Every row below runs both against the MONAI transform the contract names
(the MAP app runs those stock transforms themselves):

* ScaleIntensityRange;
* Orientation + Spacing (bilinear, border) and its inverse (Compose.inverse, what Invertd calls);
* sliding_window_inference (constant blending) + softmax, on a tiny network.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.inferers import sliding_window_inference
from monai.transforms import Compose, Orientation, ScaleIntensityRange, Spacing

from model_code.core import transforms_numpy
from model_code.core.geometry import LPS_TO_RAS, ResamplePlan, plan_resample
from model_code.segmentation import transforms_torch
from model_code.synthetic.phantom import phantom_affine

PIXDIM = (1.5, 1.5, 2.0)


@dataclass(frozen=True)
class Library:
    """One array library's transforms behind numpy in, numpy out (the torch side converts at the edges)."""

    name: str
    scale: Callable[..., np.ndarray]
    to_model: Callable[[np.ndarray, ResamplePlan], np.ndarray]
    from_model: Callable[[np.ndarray, ResamplePlan], np.ndarray]
    probability: Callable[[torch.nn.Module, np.ndarray, tuple[int, int, int], float, int], np.ndarray]


def _numpy_probability(network: torch.nn.Module, image: np.ndarray, roi, overlap, batch) -> np.ndarray:
    def run(windows: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return network(torch.from_numpy(windows)).numpy()

    return transforms_numpy.foreground_probability(run, image, roi_size=roi, overlap=overlap, sw_batch_size=batch)


def _torch_probability(network: torch.nn.Module, image: np.ndarray, roi, overlap, batch) -> np.ndarray:
    with torch.inference_mode():
        return transforms_torch.foreground_probability(
            network, torch.from_numpy(image), roi_size=roi, overlap=overlap, sw_batch_size=batch, amp=False
        ).numpy()


LIBRARIES = [
    Library(
        "numpy",
        scale=transforms_numpy.scale_intensity,
        to_model=transforms_numpy.to_model_grid,
        from_model=transforms_numpy.from_model_grid,
        probability=_numpy_probability,
    ),
    Library(
        "torch",
        scale=lambda hu, **kw: transforms_torch.scale_intensity(torch.from_numpy(hu), **kw).numpy(),
        to_model=lambda v, plan: transforms_torch.to_model_grid(torch.from_numpy(v), plan).numpy(),
        from_model=lambda v, plan: transforms_torch.from_model_grid(torch.from_numpy(v), plan).numpy(),
        probability=_torch_probability,
    ),
]
IDS = [library.name for library in LIBRARIES]


@pytest.mark.parametrize("library", LIBRARIES, ids=IDS)
@pytest.mark.parametrize(
    ("window", "scaled_range", "clip"),
    [
        ((-57.0, 164.0), (0.0, 1.0), True),  # the spleen contract
        ((-57.0, 164.0), (0.0, 1.0), False),  # unclipped: values outside the window extrapolate
        ((-1000.0, 1000.0), (-1.0, 1.0), True),  # another window onto a signed range
        ((-100.0, 250.0), (0.0, 1.0), True),  # a bundle's own window (tests/.../test_bundle_inference.py)
        ((250.0, -100.0), (1.0, 0.0), True),  # a reversed window: ScaleIntensityRange allows it
    ],
)
def test_scale_intensity_equals_scale_intensity_range(library: Library, window, scaled_range, clip) -> None:
    hu = np.random.default_rng(0).uniform(-1200.0, 1500.0, size=(6, 7, 8)).astype(np.float32)
    ours = library.scale(hu, window=window, scaled_range=scaled_range, clip=clip)
    reference = ScaleIntensityRange(
        a_min=window[0], a_max=window[1], b_min=scaled_range[0], b_max=scaled_range[1], clip=clip
    )(hu)
    np.testing.assert_allclose(ours, np.asarray(reference), rtol=1e-6, atol=1e-6)


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
    ("sagittal", False, (9, 14, 12), (1.0, 2.0, 0.7), 0.0),  # axes permuted and flipped
    ("coronal", True, (9, 14, 12), (3.0, 1.5, 1.5), 0.0),  # one axis already at target spacing
    ("axial", False, (8, 10, 10), (2.0, 1.5, 1.5), 0.0),  # identity in plane: the gather path
    ("axial", False, (7, 16, 16), (5.0, 0.43, 0.43), 22.0),  # oblique, like pydicom's real CT slice
    ("axial", False, (1, 8, 8), (2.0, 1.0, 1.0), 0.0),  # a single slice
]


def _monai(
    volume: np.ndarray, affine_lps: np.ndarray, *, axcodes: str = "RAS", pixdim=PIXDIM
) -> tuple[Compose, MetaTensor]:
    chain = Compose([Orientation(axcodes=axcodes), Spacing(pixdim=pixdim, mode="bilinear", padding_mode="border")])
    image = MetaTensor(torch.from_numpy(volume)[None], affine=torch.from_numpy(LPS_TO_RAS @ affine_lps))
    return chain, chain(image)


def _affine(orientation: str, descending: bool, shape, spacing, tilt: float) -> np.ndarray:
    return _oblique(phantom_affine(shape=shape, spacing=spacing, orientation=orientation, descending=descending), tilt)


@pytest.mark.parametrize("library", LIBRARIES, ids=IDS)
@pytest.mark.parametrize(("orientation", "descending", "shape", "spacing", "tilt"), GRIDS)
def test_to_model_grid_equals_orientation_and_spacing(library: Library, orientation, descending, shape, spacing, tilt):
    affine = _affine(orientation, descending, shape, spacing, tilt)
    volume = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    plan = plan_resample(affine, shape, pixdim=PIXDIM)
    ours = library.to_model(volume, plan)
    _, reference = _monai(volume, affine)
    assert ours.shape == tuple(reference.shape[1:]) == plan.model_shape
    np.testing.assert_allclose(ours, reference[0].float().numpy(), atol=1e-5)


@pytest.mark.parametrize("library", LIBRARIES, ids=IDS)
@pytest.mark.parametrize(("orientation", "descending", "shape", "spacing", "tilt"), GRIDS)
def test_from_model_grid_equals_the_monai_inverse(library: Library, orientation, descending, shape, spacing, tilt):
    affine = _affine(orientation, descending, shape, spacing, tilt)
    plan = plan_resample(affine, shape, pixdim=PIXDIM)
    chain, forward = _monai(np.zeros(shape, dtype=np.float32), affine)
    values = np.random.default_rng(1).uniform(size=plan.model_shape).astype(np.float32)
    prediction = MetaTensor(torch.from_numpy(values)[None].clone(), affine=forward.affine)
    prediction.applied_operations = forward.applied_operations
    reference = chain.inverse(prediction)
    ours = library.from_model(values, plan)
    assert ours.shape == shape
    np.testing.assert_allclose(ours, reference[0].float().numpy(), atol=1e-5)


class _PositionDependent(torch.nn.Module):
    """Logits that depend on the input nonlinearly, so averaging order and coverage both matter."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x * 3.0 - 1.0, torch.sin(x * 7.0) + x * x], dim=1)


def _conv_network() -> torch.nn.Module:
    torch.manual_seed(1)
    return torch.nn.Conv3d(1, 2, kernel_size=3, padding=1).eval()


WINDOWS = [
    # (image shape, roi, overlap, sw_batch_size, network)
    ((40, 36, 20), (16, 16, 16), 0.5, 3, _PositionDependent),  # several windows per axis, last one flush
    ((10, 24, 16), (16, 16, 16), 0.5, 4, _PositionDependent),  # smaller than the roi on one axis: padded
    ((7, 9, 5), (16, 16, 16), 0.5, 1, _PositionDependent),  # smaller on every axis (odd padding)
    ((16, 16, 16), (16, 16, 16), 0.5, 2, _PositionDependent),  # exactly one window
    ((33, 20, 18), (16, 8, 12), 0.25, 5, _PositionDependent),  # another overlap, anisotropic roi
    ((20, 18, 9), (8, 8, 8), 0.5, 3, _conv_network),  # a convolution: windows see their borders
]


@pytest.mark.parametrize("library", LIBRARIES, ids=IDS)
@pytest.mark.parametrize(("shape", "roi", "overlap", "batch", "make_network"), WINDOWS)
def test_foreground_probability_equals_sliding_window_inference(library, shape, roi, overlap, batch, make_network):
    image = np.random.default_rng(0).uniform(size=shape).astype(np.float32)
    network = make_network()
    ours = library.probability(network, image, roi, overlap, batch)
    with torch.inference_mode():
        logits = sliding_window_inference(
            torch.from_numpy(image)[None, None], roi, batch, network, overlap=overlap, mode="constant"
        )
    assert isinstance(logits, torch.Tensor)
    reference = torch.softmax(logits, dim=1)[0, 1].numpy()
    assert ours.shape == reference.shape == shape
    np.testing.assert_allclose(ours, reference, atol=1e-5)


# The orientations and spacings a bundle's Orientationd / Spacingd may carry besides the spleen bundle's.
BUNDLE_GEOMETRY = [
    ("LPS", (2.0, 1.2, 3.0)),
    ("PIL", (0.8, 1.3, 2.5)),
    ("RAS", (1.0, 1.0, 1.0)),
    ("SAR", (3.0, 0.7, 1.1)),
]


@pytest.mark.parametrize("library", LIBRARIES, ids=IDS)
@pytest.mark.parametrize(("axcodes", "pixdim"), BUNDLE_GEOMETRY)
@pytest.mark.parametrize(("orientation", "descending", "shape", "spacing", "tilt"), [GRIDS[1], GRIDS[2], GRIDS[5]])
def test_both_directions_equal_monai_for_a_bundles_orientation_and_spacing(
    library: Library, axcodes, pixdim, orientation, descending, shape, spacing, tilt
):
    affine = _affine(orientation, descending, shape, spacing, tilt)
    plan = plan_resample(affine, shape, pixdim=pixdim, axcodes=axcodes)
    volume = np.random.default_rng(2).normal(size=shape).astype(np.float32)
    chain, forward = _monai(volume, affine, axcodes=axcodes, pixdim=pixdim)
    ours = library.to_model(volume, plan)
    assert ours.shape == tuple(forward.shape[1:]) == plan.model_shape
    np.testing.assert_allclose(ours, forward[0].float().numpy(), atol=1e-5)
    values = np.random.default_rng(3).uniform(size=plan.model_shape).astype(np.float32)
    prediction = MetaTensor(torch.from_numpy(values)[None].clone(), affine=forward.affine)
    prediction.applied_operations = forward.applied_operations
    reference = chain.inverse(prediction)
    np.testing.assert_allclose(library.from_model(values, plan), reference[0].float().numpy(), atol=1e-5)
