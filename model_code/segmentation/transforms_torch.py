"""The spleen contract's transforms in torch, on CPU or GPU: the pipeline's pre-processing, window and inverse.

One function per MONAI transform it reproduces, executing the plans of ``model_code.core.geometry``; the
numpy twins the edge runner uses are ``model_code.core.transforms_numpy``, and
tests/model_code/test_transforms_match_monai.py pins both to MONAI's own transforms on the same inputs.

* :func:`scale_intensity` -- ``ScaleIntensityRange(a_min, a_max, b_min, b_max, clip)``.
* :func:`to_model_grid` / :func:`from_model_grid` (:func:`mask_from_model_grid`, slab by slab, for the
  label volume) -- ``Orientation(axcodes)`` followed by
  ``Spacing(pixdim, mode="bilinear", padding_mode="border")``, and their inverse (``Invertd``), without a
  general grid sampler. Orientation only permutes and flips voxel axes (nibabel's ``io_orientation``, as
  MONAI uses). ``Spacing`` keeps the direction cosines and the first voxel (``zoom_affine`` +
  ``compute_shape_offset``), so in voxel space it is a pure per-axis scaling: output voxel ``j`` samples
  input coordinate ``j * new / old``. Trilinear interpolation is separable, so three 1-D linear
  interpolations (gathers + lerp) give the same values as MONAI's grid resampling at a fraction of its cost.
* :func:`foreground_probability` -- ``monai.inferers.sliding_window_inference`` with ``mode="constant"``
  (the spleen bundle's SlidingWindowInferer) + softmax, channel 1: the image is padded symmetrically up to
  the ROI where smaller, window starts step by ``int(roi * (1 - overlap))`` with the last window flush with
  the end, and every voxel gets the mean of the logits of the windows covering it. Two things make it cheaper
  than MONAI's general implementation, and neither changes the result: only the logit difference ``l1 - l0``
  is accumulated (the mean is linear, and softmax of two classes depends on the difference alone), and window
  coverage is a product of per-axis counts, computed once instead of summed per window.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 (the PyTorch convention)

from model_code.core import geometry
from model_code.core.geometry import ResamplePlan

# [B,1,X,Y,Z] windows -> [B,2,X,Y,Z] logits.
Network = Callable[[torch.Tensor], torch.Tensor]
# Model-grid X planes per step of the window-coverage division (a few MiB of temporaries, not a volume's).
_COVERAGE_SLAB = 16


def scale_intensity(
    hu: torch.Tensor, *, window: Sequence[float], scaled_range: Sequence[float], clip: bool, in_place: bool = False
) -> torch.Tensor:
    """ScaleIntensityRange: ``window`` HU mapped linearly onto ``scaled_range``, clipped when asked.

    ``in_place``: ``hu`` is the caller's own float tensor (a fresh model grid, see :func:`shares_memory`) and is
    overwritten: no second model-grid volume while it is scaled (issue 19). The same values either way."""
    (a_min, a_max), (b_min, b_max) = window, scaled_range
    # Out of place at most once (an identity resampling returns a view of the caller's volume), then in place:
    # the same float32 arithmetic as ``(hu - a_min) * scale + b_min``.
    scaled = hu.sub_(a_min) if in_place else hu - a_min
    scaled = scaled.mul_((b_max - b_min) / (a_max - a_min)).add_(b_min)
    return scaled.clamp_(b_min, b_max) if clip else scaled


def shares_memory(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether ``a`` is (a view of) ``b``'s memory: :func:`to_model_grid` returns a view of a float volume
    that needs no resampling, a fresh tensor otherwise; only a fresh one may be scaled in place."""
    return bool(a.device == b.device and a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr())


def _interpolation_matrix(size: int, lower: np.ndarray, weight: np.ndarray) -> torch.Tensor:
    matrix = np.zeros((size, len(lower)), dtype=np.float32)
    columns = np.arange(len(lower))
    np.add.at(matrix, (lower, columns), (1.0 - weight).astype(np.float32))
    np.add.at(matrix, (lower + 1, columns), weight.astype(np.float32))
    return torch.from_numpy(matrix)


def lerp_axis(values: torch.Tensor, axis: int, coordinates: np.ndarray) -> torch.Tensor:
    """Linear interpolation of ``values`` along ``axis`` at fractional indices (border padding)."""
    size = values.shape[axis]
    device = values.device
    lower, weight = geometry.lerp_taps(size, coordinates)
    if weight is None:  # coordinates on voxels: a gather is exact
        return values.index_select(axis, torch.from_numpy(lower).to(device))
    if axis == values.ndim - 1 and len(lower) > size and values.dtype == torch.float32:
        # Upsampling along the contiguous axis: gathers there are strided and slow, while a
        # (size x out) matrix of the two weights per output runs as one GEMM, several times faster.
        matrix = _interpolation_matrix(size, lower, weight).to(device)
        return values @ matrix
    view = [1] * values.ndim
    view[axis] = len(lower)
    low = values.index_select(axis, torch.from_numpy(lower).to(device))
    high = values.index_select(axis, torch.from_numpy(lower + 1).to(device))
    w = torch.from_numpy(weight).to(device=device, dtype=values.dtype).view(view)
    return low.lerp_(high, w)


def _floating(values: torch.Tensor) -> torch.Tensor:
    """Integer voxels (the loader's exact int16 HU) as float32; floating ones as they are (no copy)."""
    return values if values.is_floating_point() else values.to(torch.float32)


def to_model_grid(volume: torch.Tensor, plan: ResamplePlan, *, slab: int | None = geometry.SLAB_SLICES) -> torch.Tensor:
    """Source-ordered (slice, row, col) volume (float or int16) -> model grid (X, Y, Z), bilinear,
    border padding.

    ``slab`` output slices at a time into one model-grid tensor (``geometry.forward_slabs``, exact): the
    passes' intermediates are a slab's, not the whole volume's (None: the whole volume in one go)."""
    plan.check_source_shape(volume.shape)
    passes = geometry.to_model_passes(plan)
    if not passes:  # nothing to resample: the volume itself, as a view (a float32 copy of an int16 one)
        return _floating(volume).permute(plan.to_model_permutation)
    if slab is None:
        out = _floating(volume)
        for k, coords in passes:
            out = lerp_axis(out, k, coords)
        return out.permute(plan.to_model_permutation)
    # Contiguous in model order, filled through a source-ordered view: the caller's .contiguous() copies nothing.
    grid: torch.Tensor | None = None
    for part in geometry.forward_slabs(plan, slab):
        # An int16 volume (the loader's exact HU) becomes float32 a slab at a time: the same values as a
        # float32 volume's slab, without the whole float32 volume.
        values = _floating(volume[part.rows])
        for k, coords in part.passes:
            values = lerp_axis(values, k, coords)
        if grid is None:
            grid = torch.empty(plan.model_shape, dtype=values.dtype, device=values.device)
        grid.permute(plan.to_source_permutation)[part.out] = values
    assert grid is not None  # the plan has at least one output slice
    return grid


def from_model_grid(values: torch.Tensor, plan: ResamplePlan) -> torch.Tensor:
    """Model-grid (X, Y, Z) values -> source grid (slice, row, col): the inverse of :func:`to_model_grid`."""
    plan.check_model_shape(values.shape)
    out = values.permute(plan.to_source_permutation)
    for k, coords in geometry.from_model_passes(plan):
        out = lerp_axis(out, k, coords)
    return out


def mask_from_model_grid(
    values: torch.Tensor, plan: ResamplePlan, *, threshold: float, slab: int = geometry.SLAB_SLICES
) -> np.ndarray:
    """``from_model_grid(values, plan) > threshold`` as a uint8 source-grid volume, computed ``slab`` source
    slices at a time: the full-resolution float32 volume (4 bytes a voxel, plus the passes' copies) never
    exists, only one slab of it. Equal to the whole-volume result (``geometry.inverse_slabs``). On a GPU the
    label volume is built there and crosses to the host once, at the end (uint8: a quarter of the float32)."""
    plan.check_model_shape(values.shape)
    source = values.permute(plan.to_source_permutation)
    mask = torch.empty(plan.source_shape, dtype=torch.uint8, device=values.device)
    for part in geometry.inverse_slabs(plan, slab):
        out = source[part.rows]
        for k, coords in part.passes:
            out = lerp_axis(out, k, coords)
        mask[part.out] = out > threshold
    return mask.cpu().numpy()  # on the CPU: the same memory, no copy


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
    plan = geometry.plan_windows(image.shape, roi_size, overlap)
    roi = plan.roi
    # F.pad lists the last axis first; MONAI puts half of the padding before, the rest after.
    pad_arg: list[int] = []
    for diff in reversed(plan.padding):
        pad_arg += [diff // 2, diff - diff // 2]
    padded = F.pad(image, pad_arg) if any(plan.padding) else image

    windows = plan.windows
    total = torch.zeros(plan.padded_size, dtype=torch.float32, device=image.device)
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
            logits = network(inputs)
        geometry.check_logits(logits, torch.Tensor, inputs.shape, "re-export the TorchScript")
        difference = (logits[:, 1] - logits[:, 0]).float()
        for i, (x, y, z) in enumerate(group):
            total[x : x + roi[0], y : y + roi[1], z : z + roi[2]] += difference[i]

    coverage = [torch.from_numpy(plan.coverage(axis)).to(image.device) for axis in range(3)]
    # The 3-D count is the product of the per-axis ones; built a slab of X at a time (the same products in the
    # same order), so the division is the whole-volume one's exactly without a second model-grid volume.
    for start in range(0, total.shape[0], _COVERAGE_SLAB):
        part = slice(start, start + _COVERAGE_SLAB)
        total[part] /= coverage[0][part, None, None] * coverage[1][None, :, None] * coverage[2][None, None, :]
    # softmax([l0, l1])[1] == sigmoid(l1 - l0); in place: a second model-grid volume is not needed.
    return total.sigmoid_()[plan.crop()]
