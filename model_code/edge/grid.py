"""The spleen contract's geometry and sliding window in numpy: what the torch pipeline does, without torch.

The torch modules (``model_code.segmentation.resample`` / ``inferer``) import torch at module level, so
the edge runner cannot reuse them. These functions are their numpy counterparts, step for step:

* :func:`plan_resample` -- the same nibabel call chain (orientation, zoom, target size) as
  ``resample.plan_resample``; ``tests/model_code/edge/test_grid.py`` checks the two plans are equal on
  every phantom orientation, so the copies cannot drift apart silently.
* :func:`to_model_grid` / :func:`from_model_grid` -- separable linear interpolation with border padding.
* :func:`foreground_probability` -- MONAI's constant-mode sliding window, averaging the logit difference.

Masks agree with the torch pipeline up to float rounding at the 0.5 probability boundary (the tests state
the tolerance: at most 0.1% of voxels differ, all on the organ's one-voxel boundary).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import nibabel.orientations as nio
import numpy as np

# LPS (DICOM patient space) to RAS (the NIfTI/MONAI world): flip the first two axes.
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
CONTRACT_CHANNELS = 2
# [B,1,X,Y,Z] float32 windows -> [B,2,X,Y,Z] logits.
WindowNetwork = Callable[[np.ndarray], np.ndarray]


class NetworkContractError(ValueError):
    """The exported network answers with a shape the spleen contract does not allow."""


@dataclass(frozen=True)
class ResamplePlan:
    """Source grid (slice, row, col) <-> model grid; the fields mean what ``resample.ResamplePlan``'s do."""

    source_shape: tuple[int, int, int]
    model_axis: tuple[int, int, int]
    flipped: tuple[bool, bool, bool]
    zoom: tuple[float, float, float]
    target_size: tuple[int, int, int]

    @property
    def model_shape(self) -> tuple[int, int, int]:
        shape = [0, 0, 0]
        for k in range(3):
            shape[self.model_axis[k]] = self.target_size[k]
        return (shape[0], shape[1], shape[2])

    @property
    def to_model_permutation(self) -> tuple[int, int, int]:
        order = sorted(range(3), key=lambda k: self.model_axis[k])
        return (order[0], order[1], order[2])


def plan_resample(
    affine_lps: np.ndarray, shape: Sequence[int], *, pixdim: Sequence[float], axcodes: str = "RAS"
) -> ResamplePlan:
    if len(shape) != 3 or len(pixdim) != 3:
        raise ValueError(f"expected a 3-D shape and 3 target spacings, got {tuple(shape)} and {tuple(pixdim)}")
    ras = LPS_TO_RAS @ np.asarray(affine_lps, dtype=float)
    transform = nio.ornt_transform(nio.io_orientation(ras), nio.axcodes2ornt(axcodes))
    spacing = np.linalg.norm(ras[:3, :3], axis=0)
    axis = tuple(int(a) for a in transform[:, 0])
    flipped = tuple(bool(f < 0) for f in transform[:, 1])
    zoom = tuple(float(pixdim[axis[k]]) / float(spacing[k]) for k in range(3))
    # monai.data.utils.compute_shape_offset: round(extent / new spacing) + 1 (round half to even).
    target = tuple(int(np.round((int(shape[k]) - 1) / zoom[k] + 1.0)) for k in range(3))
    return ResamplePlan(
        source_shape=(int(shape[0]), int(shape[1]), int(shape[2])),
        model_axis=(axis[0], axis[1], axis[2]),
        flipped=(flipped[0], flipped[1], flipped[2]),
        zoom=(zoom[0], zoom[1], zoom[2]),
        target_size=(target[0], target[1], target[2]),
    )


def lerp_axis(values: np.ndarray, axis: int, coordinates: np.ndarray) -> np.ndarray:
    """Linear interpolation along ``axis`` at fractional indices, clamped to the border (float32 out)."""
    size = values.shape[axis]
    coords = np.clip(np.asarray(coordinates, dtype=np.float64), 0.0, size - 1.0)
    if size == 1:
        return np.take(values, np.zeros(len(coords), dtype=np.int64), axis=axis)
    lower = np.minimum(np.floor(coords).astype(np.int64), size - 2)
    weight = coords - lower
    if np.all(weight == 0.0):  # integer coordinates (identity or flip): a gather is exact
        return np.take(values, lower, axis=axis)
    view = [1] * values.ndim
    view[axis] = len(coords)
    w = weight.astype(np.float32).reshape(view)
    low = np.take(values, lower, axis=axis)
    high = np.take(values, lower + 1, axis=axis)
    return low + (high - low) * w


def _pass_order(sizes_in: Sequence[int], sizes_out: Sequence[int]) -> list[int]:
    return sorted(range(3), key=lambda k: sizes_out[k] / max(sizes_in[k], 1))


def to_model_grid(volume: np.ndarray, plan: ResamplePlan) -> np.ndarray:
    """Source-ordered (slice, row, col) volume -> model grid (X, Y, Z), bilinear, border padding."""
    if tuple(volume.shape) != plan.source_shape:
        raise ValueError(f"volume shape {tuple(volume.shape)} does not match the plan's {plan.source_shape}")
    out = np.asarray(volume, dtype=np.float32)
    for k in _pass_order(plan.source_shape, plan.target_size):
        n = plan.source_shape[k]
        coords = np.arange(plan.target_size[k], dtype=np.float64) * plan.zoom[k]
        if plan.flipped[k]:
            coords = (n - 1) - coords
        if plan.target_size[k] == n and not plan.flipped[k] and np.allclose(coords, np.arange(n)):
            continue
        out = lerp_axis(out, k, coords)
    return np.ascontiguousarray(out.transpose(plan.to_model_permutation))


def from_model_grid(values: np.ndarray, plan: ResamplePlan) -> np.ndarray:
    """Model-grid (X, Y, Z) values -> source grid (slice, row, col): the inverse of :func:`to_model_grid`."""
    if tuple(values.shape) != plan.model_shape:
        raise ValueError(f"values shape {tuple(values.shape)} does not match the plan's model grid {plan.model_shape}")
    out = values.transpose(plan.model_axis)
    for k in _pass_order(plan.target_size, plan.source_shape):
        n = plan.source_shape[k]
        index = np.arange(n, dtype=np.float64)
        reoriented = (n - 1) - index if plan.flipped[k] else index
        coords = reoriented / plan.zoom[k]
        if plan.target_size[k] == n and not plan.flipped[k] and np.allclose(coords, index):
            continue
        out = lerp_axis(out, k, coords)
    return np.ascontiguousarray(out)


def scale_intensity(
    hu: np.ndarray, *, window: Sequence[float], scaled_range: Sequence[float], clip: bool
) -> np.ndarray:
    """ScaleIntensityRange: ``window`` HU mapped linearly onto ``scaled_range``, clipped when asked."""
    (a_min, a_max), (b_min, b_max) = window, scaled_range
    scaled = (hu - np.float32(a_min)) * np.float32((b_max - b_min) / (a_max - a_min)) + np.float32(b_min)
    return np.clip(scaled, b_min, b_max, out=scaled) if clip else scaled


def window_starts(size: int, roi: int, overlap: float) -> list[int]:
    """Start indices along one axis of (padded) length ``size`` >= ``roi``, as MONAI places them."""
    if roi == size:
        return [0]
    interval = max(int(roi * (1 - overlap)), 1)
    count = next((d + 1 for d in range(math.ceil(size / interval)) if d * interval + roi >= size), 1)
    return [i * interval - max(i * interval + roi - size, 0) for i in range(count)]


def _check_logits(logits: object, window: np.ndarray) -> np.ndarray:
    if not isinstance(logits, np.ndarray) or logits.ndim != 5 or logits.shape[1] != CONTRACT_CHANNELS:
        shape = logits.shape if isinstance(logits, np.ndarray) else type(logits).__name__
        raise NetworkContractError(
            f"the model returned {shape} for input {window.shape}: the contract is "
            f"[B,1,X,Y,Z] -> [B,{CONTRACT_CHANNELS},X,Y,Z] logits; export the bundle again"
        )
    if logits.shape[2:] != window.shape[2:]:
        raise NetworkContractError(
            f"the model returned spatial shape {logits.shape[2:]} for a {window.shape[2:]} window: "
            "a segmentation network must keep the input's spatial shape"
        )
    return logits


def foreground_probability(
    network: WindowNetwork,
    image: np.ndarray,
    *,
    roi_size: Sequence[int],
    overlap: float,
    sw_batch_size: int,
) -> np.ndarray:
    """Softmax probability of label 1 on the model grid, (X, Y, Z) float32, from a (X, Y, Z) image."""
    if image.ndim != 3 or len(roi_size) != 3:
        raise ValueError(f"expected a 3-D image and a 3-D roi, got {image.shape} and {tuple(roi_size)}")
    roi = tuple(int(r) for r in roi_size)
    size = image.shape
    padding = [max(r - s, 0) for s, r in zip(size, roi, strict=True)]
    # MONAI pads half before, the rest after (constant 0, as F.pad).
    padded = np.pad(image, [(d // 2, d - d // 2) for d in padding]) if any(padding) else image
    starts = [window_starts(padded.shape[a], roi[a], overlap) for a in range(3)]
    windows = list(itertools.product(*starts))
    total = np.zeros(padded.shape, dtype=np.float32)
    batch = np.empty((min(sw_batch_size, len(windows)), 1, *roi), dtype=np.float32)
    for first in range(0, len(windows), sw_batch_size):
        group = windows[first : first + sw_batch_size]
        for i, (x, y, z) in enumerate(group):
            batch[i, 0] = padded[x : x + roi[0], y : y + roi[1], z : z + roi[2]]
        inputs = batch[: len(group)]
        logits = _check_logits(network(inputs), inputs)
        # softmax of two classes depends on the logit difference alone, and the window mean is linear.
        difference = (logits[:, 1] - logits[:, 0]).astype(np.float32)
        for i, (x, y, z) in enumerate(group):
            total[x : x + roi[0], y : y + roi[1], z : z + roi[2]] += difference[i]
    coverage = []
    for axis in range(3):
        count = np.zeros(padded.shape[axis], dtype=np.float32)
        for start in starts[axis]:
            count[start : start + roi[axis]] += 1.0
        coverage.append(count)
    total /= coverage[0][:, None, None] * coverage[1][None, :, None] * coverage[2][None, None, :]
    lo = [d // 2 for d in padding]
    mean = total[lo[0] : lo[0] + size[0], lo[1] : lo[1] + size[1], lo[2] : lo[2] + size[2]]
    # softmax([l0, l1])[1] == sigmoid(l1 - l0), written to stay finite for large |l1 - l0|.
    return (0.5 * (1.0 + np.tanh(0.5 * mean))).astype(np.float32)
