"""The spleen contract's transforms in numpy: what the torch pipeline does, without torch.

One function per MONAI transform it stands in for, executing the plans of ``model_code.core.geometry``:

* :func:`scale_intensity` -- ``ScaleIntensityRange(a_min, a_max, b_min, b_max, clip)``;
* :func:`to_model_grid` -- ``Orientation(axcodes)`` + ``Spacing(pixdim, mode="bilinear", padding_mode="border")``,
  as separable linear interpolation; :func:`from_model_grid` -- their inverse (``Invertd``);
* :func:`foreground_probability` -- ``sliding_window_inference(mode="constant")`` + softmax, channel 1.

The edge runner and the ONNX export check run these; the torch pipeline runs the torch twins in
``model_code.segmentation.transforms_torch``. tests/model_code/test_transforms_match_monai.py pins both to
MONAI's own transforms on the same inputs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from model_code.core.geometry import (
    SLAB_SLICES,
    ResamplePlan,
    check_logits,
    forward_slabs,
    from_model_passes,
    inverse_slabs,
    lerp_taps,
    plan_windows,
    to_model_passes,
)

# [B,1,X,Y,Z] float32 windows -> [B,2,X,Y,Z] logits.
WindowNetwork = Callable[[np.ndarray], np.ndarray]
# Model-grid X planes per step of the window-coverage division.
_COVERAGE_SLAB = 16


def scale_intensity(
    hu: np.ndarray, *, window: Sequence[float], scaled_range: Sequence[float], clip: bool
) -> np.ndarray:
    """ScaleIntensityRange: ``window`` HU mapped linearly onto ``scaled_range``, clipped when asked."""
    (a_min, a_max), (b_min, b_max) = window, scaled_range
    # One new array, then in place: the same float32 operations as ``(hu - a) * s + b``, without two more
    # model-grid temporaries.
    scaled = hu - np.float32(a_min)
    scaled *= np.float32((b_max - b_min) / (a_max - a_min))
    scaled += np.float32(b_min)
    return np.clip(scaled, b_min, b_max, out=scaled) if clip else scaled


def lerp_axis(values: np.ndarray, axis: int, coordinates: np.ndarray) -> np.ndarray:
    """Linear interpolation along ``axis`` at fractional indices, clamped to the border (float32 out)."""
    lower, weight = lerp_taps(values.shape[axis], coordinates)
    if weight is None:  # coordinates on voxels: a gather is exact
        return np.take(values, lower, axis=axis)
    view = [1] * values.ndim
    view[axis] = len(lower)
    w = weight.astype(np.float32).reshape(view)
    low = np.take(values, lower, axis=axis)
    high = np.take(values, lower + 1, axis=axis)
    return low + (high - low) * w


def to_model_grid(volume: np.ndarray, plan: ResamplePlan, *, slab: int | None = SLAB_SLICES) -> np.ndarray:
    """Source-ordered (slice, row, col) volume -> model grid (X, Y, Z), bilinear, border padding; ``slab``
    output slices at a time into one array (``forward_slabs``, exact; None: the whole volume in one go)."""
    plan.check_source_shape(volume.shape)
    passes = to_model_passes(plan)
    if slab is None or not passes:
        out = np.asarray(volume, dtype=np.float32)
        for k, coords in passes:
            out = lerp_axis(out, k, coords)
        return np.ascontiguousarray(out.transpose(plan.to_model_permutation))
    # Contiguous in model order, filled through a source-ordered view: no transposed copy of the whole grid.
    grid = np.empty(plan.model_shape, dtype=np.float32)
    source_ordered = grid.transpose(plan.to_source_permutation)
    for part in forward_slabs(plan, slab):
        values = np.asarray(volume[part.rows], dtype=np.float32)
        for k, coords in part.passes:
            values = lerp_axis(values, k, coords)
        source_ordered[part.out] = values
    return grid


def from_model_grid(values: np.ndarray, plan: ResamplePlan) -> np.ndarray:
    """Model-grid (X, Y, Z) values -> source grid (slice, row, col): the inverse of :func:`to_model_grid`."""
    plan.check_model_shape(values.shape)
    out = values.transpose(plan.to_source_permutation)
    for k, coords in from_model_passes(plan):
        out = lerp_axis(out, k, coords)
    return np.ascontiguousarray(out)


def mask_from_model_grid(
    values: np.ndarray, plan: ResamplePlan, *, threshold: float, slab: int = SLAB_SLICES
) -> np.ndarray:
    """``from_model_grid(values, plan) > threshold`` as uint8, ``slab`` source slices at a time: only one slab
    of the full-resolution float32 volume ever exists. Equal to the whole-volume result (``inverse_slabs``)."""
    plan.check_model_shape(values.shape)
    source = values.transpose(plan.to_source_permutation)
    mask = np.empty(plan.source_shape, dtype=np.uint8)
    for part in inverse_slabs(plan, slab):
        out = source[part.rows]
        for k, coords in part.passes:
            out = lerp_axis(out, k, coords)
        np.greater(out, threshold, out=mask[part.out], casting="unsafe")
    return mask


def foreground_probability(
    network: WindowNetwork,
    image: np.ndarray,
    *,
    roi_size: Sequence[int],
    overlap: float,
    sw_batch_size: int,
) -> np.ndarray:
    """Softmax probability of label 1 on the model grid, (X, Y, Z) float32, from a (X, Y, Z) image."""
    plan = plan_windows(image.shape, roi_size, overlap)
    roi = plan.roi
    # MONAI pads half before, the rest after (constant 0, as F.pad).
    padded = np.pad(image, [(d // 2, d - d // 2) for d in plan.padding]) if any(plan.padding) else image
    windows = plan.windows
    total = np.zeros(plan.padded_size, dtype=np.float32)
    batch = np.empty((min(sw_batch_size, len(windows)), 1, *roi), dtype=np.float32)
    for first in range(0, len(windows), sw_batch_size):
        group = windows[first : first + sw_batch_size]
        for i, (x, y, z) in enumerate(group):
            batch[i, 0] = padded[x : x + roi[0], y : y + roi[1], z : z + roi[2]]
        inputs = batch[: len(group)]
        logits = network(inputs)
        check_logits(logits, np.ndarray, inputs.shape, "export the bundle again")
        # softmax of two classes depends on the logit difference alone, and the window mean is linear.
        difference = (logits[:, 1] - logits[:, 0]).astype(np.float32)
        for i, (x, y, z) in enumerate(group):
            total[x : x + roi[0], y : y + roi[1], z : z + roi[2]] += difference[i]
    coverage = [plan.coverage(axis) for axis in range(3)]
    # A slab of X at a time, the same products in the same order: the whole-volume quotients without a
    # model-grid temporary (as the torch twin).
    for start in range(0, total.shape[0], _COVERAGE_SLAB):
        part = slice(start, start + _COVERAGE_SLAB)
        total[part] /= coverage[0][part, None, None] * coverage[1][None, :, None] * coverage[2][None, None, :]
    mean = total[plan.crop()]
    # softmax([l0, l1])[1] == sigmoid(l1 - l0), written to stay finite for large |l1 - l0|: 0.5 * (1 + tanh(0.5 m)),
    # each step in place on the window sums (float32 throughout, as the expression evaluates).
    mean *= np.float32(0.5)
    np.tanh(mean, out=mean)
    mean += np.float32(1.0)
    mean *= np.float32(0.5)
    return mean
