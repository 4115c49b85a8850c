"""The numpy geometry and sliding window agree with the torch pipeline they stand in for."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from model_code.edge import grid
from model_code.imaging.phantom import phantom_affine
from model_code.segmentation import inferer, resample

GEOMETRIES = [
    # (orientation, descending, shape (slice,row,col), spacing mm)
    ("axial", False, (12, 20, 18), (2.5, 1.6, 1.6)),  # down-sampling in plane, up along slices
    ("axial", True, (12, 20, 18), (3.0, 0.9, 1.7)),  # descending, non-square pixels
    ("sagittal", True, (10, 16, 14), (2.0, 1.8, 1.8)),  # axes permuted and flipped
    ("coronal", False, (10, 16, 14), (2.0, 1.2, 2.2)),
    ("axial", False, (8, 10, 10), (2.0, 1.5, 1.5)),  # identity in plane: the gather path
]
IDS = [f"{o}-{'desc' if d else 'asc'}-{s}" for o, d, _, s in GEOMETRIES]
PIXDIM = (1.5, 1.5, 2.0)


@pytest.mark.parametrize(("orientation", "descending", "shape", "spacing"), GEOMETRIES, ids=IDS)
def test_plan_and_both_resamplings_match_torch(orientation, descending, shape, spacing) -> None:
    affine = phantom_affine(shape=shape, spacing=spacing, orientation=orientation, descending=descending)
    ours = grid.plan_resample(affine, shape, pixdim=PIXDIM)
    theirs = resample.plan_resample(affine, shape, pixdim=PIXDIM)
    for name in ("source_shape", "model_axis", "flipped", "zoom", "target_size", "model_shape"):
        assert getattr(ours, name) == getattr(theirs, name), name
    volume = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    model = grid.to_model_grid(volume, ours)
    expected = resample.to_model_grid(torch.from_numpy(volume), theirs).numpy()
    np.testing.assert_allclose(model, expected, atol=1e-5)
    back = grid.from_model_grid(model, ours)
    np.testing.assert_allclose(back, resample.from_model_grid(torch.from_numpy(model), theirs).numpy(), atol=1e-5)
    assert back.shape == shape


def _conv_network(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Conv3d(1, 2, kernel_size=3, padding=1).eval()


@pytest.mark.parametrize(
    ("image_shape", "roi", "overlap", "batch"),
    [
        ((20, 18, 9), (8, 8, 8), 0.5, 3),  # many windows, one axis padded below the roi
        ((8, 8, 8), (8, 8, 8), 0.25, 1),  # exactly one window
        ((5, 13, 11), (6, 6, 6), 0.5, 4),  # padding on one axis, remainder windows on the others
    ],
    ids=["many-windows", "one-window", "padded"],
)
def test_sliding_window_matches_the_torch_inferer(image_shape, roi, overlap, batch) -> None:
    network = _conv_network(1)
    image = np.random.default_rng(1).uniform(size=image_shape).astype(np.float32)
    with torch.inference_mode():
        expected = inferer.foreground_probability(
            network, torch.from_numpy(image), roi_size=roi, overlap=overlap, sw_batch_size=batch, amp=False
        ).numpy()

        def numpy_network(windows: np.ndarray) -> np.ndarray:
            return network(torch.from_numpy(windows)).numpy()

        ours = grid.foreground_probability(numpy_network, image, roi_size=roi, overlap=overlap, sw_batch_size=batch)
    np.testing.assert_allclose(ours, expected, atol=1e-5)
    assert any(grid.window_starts(s + max(r - s, 0), r, overlap) for s, r in zip(image_shape, roi, strict=True))


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (np.zeros((1, 3, 4, 4, 4), np.float32), "contract is"),  # three classes
        (np.zeros((1, 2, 2, 2, 2), np.float32), "keep the input's spatial shape"),
        ([[0.0]], "contract is"),  # not an array at all
    ],
    ids=["channels", "spatial", "type"],
)
def test_a_network_breaking_the_contract_is_named(answer, message) -> None:
    with pytest.raises(grid.NetworkContractError, match=message):
        grid.foreground_probability(lambda w: answer, np.zeros((4, 4, 4), np.float32), roi_size=(4, 4, 4),
                                    overlap=0.5, sw_batch_size=1)


@pytest.mark.parametrize(
    ("hu", "clip", "expected"),
    [
        (-57.0, True, 0.0),  # window bottom
        (164.0, True, 1.0),  # window top
        (1000.0, True, 1.0),  # clipped
        (1000.0, False, (1000.0 + 57.0) / 221.0),  # not clipped
    ],
)
def test_scale_intensity(hu, clip, expected) -> None:
    out = grid.scale_intensity(np.array([hu], np.float32), window=(-57.0, 164.0), scaled_range=(0.0, 1.0), clip=clip)
    assert out[0] == pytest.approx(expected, abs=1e-6)
