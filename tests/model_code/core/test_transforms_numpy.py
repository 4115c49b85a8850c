"""The numpy transforms beyond their equality with MONAI (tests/model_code/test_transforms_match_monai.py):
exact values of the intensity scaling and the logits contract."""

from __future__ import annotations

import numpy as np
import pytest

from model_code.core.errors import NetworkContractError
from model_code.core.geometry import plan_resample
from model_code.core.transforms_numpy import foreground_probability, scale_intensity, to_model_grid
from model_code.synthetic.phantom import phantom_affine


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (np.zeros((1, 3, 4, 4, 4), np.float32), "contract is.*export the bundle again"),  # three classes
        (np.zeros((1, 2, 2, 2, 2), np.float32), "keep the input's spatial shape"),
        ([[0.0]], "returned list for input"),  # not an array at all
    ],
    ids=["channels", "spatial", "type"],
)
def test_a_network_breaking_the_contract_is_named(answer, message) -> None:
    with pytest.raises(NetworkContractError, match=message):
        foreground_probability(lambda w: answer, np.zeros((4, 4, 4), np.float32), roi_size=(4, 4, 4),
                               overlap=0.5, sw_batch_size=1)


def test_a_network_keeping_the_contract_is_run() -> None:
    logits = np.zeros((1, 2, 4, 4, 4), np.float32)
    logits[:, 1] = 2.0  # softmax([0, 2])[1] = sigmoid(2)
    probability = foreground_probability(lambda w: logits, np.zeros((4, 4, 4), np.float32), roi_size=(4, 4, 4),
                                         overlap=0.5, sw_batch_size=1)
    np.testing.assert_allclose(probability, 1.0 / (1.0 + np.exp(-2.0)), rtol=1e-6)


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
    out = scale_intensity(np.array([hu], np.float32), window=(-57.0, 164.0), scaled_range=(0.0, 1.0), clip=clip)
    assert out[0] == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("clip", [True, False])
def test_scaling_gives_the_expression_bit_for_bit_and_leaves_its_input(clip) -> None:
    # One new array then in place (issue 19): the same float32 operations as the plain expression.
    hu = np.linspace(-300.0, 400.0, 7 * 5 * 3, dtype=np.float32).reshape(7, 5, 3)
    kept = hu.copy()
    out = scale_intensity(hu, window=(-57.0, 164.0), scaled_range=(0.0, 1.0), clip=clip)
    expected = (kept - np.float32(-57.0)) * np.float32(1.0 / 221.0) + np.float32(0.0)
    expected = np.clip(expected, 0.0, 1.0) if clip else expected
    assert np.array_equal(hu, kept)
    assert out.dtype == np.float32
    assert np.array_equal(out, expected)


@pytest.mark.parametrize("orientation", ["axial", "sagittal", "coronal"])
def test_the_model_grid_is_filled_in_model_order_equal_to_the_whole_volume_pass(orientation) -> None:
    # The slabs write through a source-ordered view of a grid contiguous in model order: no transposed copy.
    shape = (9, 14, 11)
    plan = plan_resample(phantom_affine(shape=shape, spacing=(2.5, 0.8, 0.8), orientation=orientation), shape,
                         pixdim=(1.5, 1.5, 2.0))
    volume = np.random.default_rng(0).normal(40.0, 100.0, shape).astype(np.float32)
    grid = to_model_grid(volume, plan, slab=2)
    assert grid.shape == plan.model_shape
    assert grid.flags.c_contiguous
    assert np.array_equal(grid, to_model_grid(volume, plan, slab=None))
