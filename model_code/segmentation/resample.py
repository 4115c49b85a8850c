"""Orientation + spacing to the model grid, and the exact inverse back to the source grid, in torch.

This reproduces MONAI's ``Orientation(axcodes)`` followed by ``Spacing(pixdim, mode="bilinear",
padding_mode="border")`` and their inverses (``Invertd``), without a general grid sampler:

* Orientation only permutes and flips voxel axes (nibabel's ``io_orientation``, as MONAI uses).
* ``Spacing`` keeps the direction cosines and the first voxel (``zoom_affine`` +
  ``compute_shape_offset``), so in voxel space it is a pure per-axis scaling: output voxel ``j``
  samples input coordinate ``j * new / old``. Trilinear interpolation is separable, so three 1-D
  linear interpolations (gathers + lerp) give the same values as MONAI's grid resampling at a
  fraction of its cost, on CPU or GPU. ``tests/.../test_resample.py`` checks the equality.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import nibabel.orientations as nio
import numpy as np
import torch

# LPS (DICOM patient space) to RAS (the NIfTI/MONAI world): flip the first two axes.
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


@dataclass(frozen=True)
class ResamplePlan:
    """How the source grid (slice, row, col) maps to the model grid and back.

    Per source axis ``k``: ``model_axis[k]`` is the model-grid axis it becomes, ``flipped[k]`` whether
    its direction reverses, ``zoom[k]`` = target spacing / source spacing, ``target_size[k]`` the
    number of model-grid voxels along it.
    """

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
        """``tensor.permute(p)`` of a source-ordered tensor gives model axis order."""
        order = sorted(range(3), key=lambda k: self.model_axis[k])
        return (order[0], order[1], order[2])

    @property
    def to_source_permutation(self) -> tuple[int, int, int]:
        return (self.model_axis[0], self.model_axis[1], self.model_axis[2])


def plan_resample(
    affine_lps: np.ndarray,
    shape: Sequence[int],
    *,
    pixdim: Sequence[float],
    axcodes: str = "RAS",
) -> ResamplePlan:
    """Plan the source -> model grid mapping for a series with ``affine_lps`` (voxel -> LPS mm)."""
    if len(shape) != 3 or len(pixdim) != 3:
        raise ValueError(f"expected a 3-D shape and 3 target spacings, got {tuple(shape)} and {tuple(pixdim)}")
    ras = LPS_TO_RAS @ np.asarray(affine_lps, dtype=float)
    # Same call chain as monai.transforms.Orientation, so ties and oblique series resolve the same way.
    transform = nio.ornt_transform(nio.io_orientation(ras), nio.axcodes2ornt(axcodes))
    spacing = np.linalg.norm(ras[:3, :3], axis=0)
    model_axis = tuple(int(a) for a in transform[:, 0])
    flipped = tuple(bool(f < 0) for f in transform[:, 1])
    zoom = tuple(float(pixdim[model_axis[k]]) / float(spacing[k]) for k in range(3))
    # monai.data.utils.compute_shape_offset: round(extent / new spacing) + 1 (round half to even).
    target = tuple(int(np.round((int(shape[k]) - 1) / zoom[k] + 1.0)) for k in range(3))
    return ResamplePlan(
        source_shape=(int(shape[0]), int(shape[1]), int(shape[2])),
        model_axis=(model_axis[0], model_axis[1], model_axis[2]),
        flipped=(flipped[0], flipped[1], flipped[2]),
        zoom=(zoom[0], zoom[1], zoom[2]),
        target_size=(target[0], target[1], target[2]),
    )


def _interpolation_matrix(size: int, lower: np.ndarray, weight: np.ndarray) -> torch.Tensor:
    matrix = np.zeros((size, len(lower)), dtype=np.float32)
    columns = np.arange(len(lower))
    np.add.at(matrix, (lower, columns), (1.0 - weight).astype(np.float32))
    np.add.at(matrix, (lower + 1, columns), weight.astype(np.float32))
    return torch.from_numpy(matrix)


def lerp_axis(values: torch.Tensor, axis: int, coordinates: np.ndarray) -> torch.Tensor:
    """Linear interpolation of ``values`` along ``axis`` at fractional indices (border padding)."""
    size = values.shape[axis]
    coords = np.clip(np.asarray(coordinates, dtype=np.float64), 0.0, size - 1.0)
    device = values.device
    if size == 1:
        return values.index_select(axis, torch.zeros(len(coords), dtype=torch.long, device=device))
    lower = np.minimum(np.floor(coords).astype(np.int64), size - 2)
    weight = coords - lower
    if np.all(weight == 0.0):  # integer coordinates (identity or flip): a gather is exact
        return values.index_select(axis, torch.from_numpy(lower).to(device))
    if axis == values.ndim - 1 and len(coords) > size and values.dtype == torch.float32:
        # Upsampling along the contiguous axis: gathers there are strided and slow, while a
        # (size x out) matrix of the two weights per output runs as one GEMM, several times faster.
        matrix = _interpolation_matrix(size, lower, weight).to(device)
        return values @ matrix
    view = [1] * values.ndim
    view[axis] = len(coords)
    low = values.index_select(axis, torch.from_numpy(lower).to(device))
    high = values.index_select(axis, torch.from_numpy(lower + 1).to(device))
    w = torch.from_numpy(weight).to(device=device, dtype=values.dtype).view(view)
    return low.lerp_(high, w)


def _pass_order(sizes_in: Sequence[int], sizes_out: Sequence[int]) -> list[int]:
    # Shrinking axes first: every later pass then touches fewer voxels.
    return sorted(range(3), key=lambda k: sizes_out[k] / max(sizes_in[k], 1))


def to_model_grid(volume: torch.Tensor, plan: ResamplePlan) -> torch.Tensor:
    """Source-ordered (slice, row, col) volume -> model grid (X, Y, Z), bilinear, border padding."""
    if tuple(volume.shape) != plan.source_shape:
        raise ValueError(f"volume shape {tuple(volume.shape)} does not match the plan's {plan.source_shape}")
    out = volume
    for k in _pass_order(plan.source_shape, plan.target_size):
        n = plan.source_shape[k]
        coords = np.arange(plan.target_size[k], dtype=np.float64) * plan.zoom[k]
        if plan.flipped[k]:
            coords = (n - 1) - coords
        if plan.target_size[k] == n and not plan.flipped[k] and np.allclose(coords, np.arange(n)):
            continue
        out = lerp_axis(out, k, coords)
    return out.permute(plan.to_model_permutation)


def from_model_grid(values: torch.Tensor, plan: ResamplePlan) -> torch.Tensor:
    """Model-grid (X, Y, Z) values -> source grid (slice, row, col): the inverse of :func:`to_model_grid`."""
    if tuple(values.shape) != plan.model_shape:
        raise ValueError(f"values shape {tuple(values.shape)} does not match the plan's model grid {plan.model_shape}")
    out = values.permute(plan.to_source_permutation)
    for k in _pass_order(plan.target_size, plan.source_shape):
        n = plan.source_shape[k]
        index = np.arange(n, dtype=np.float64)
        reoriented = (n - 1) - index if plan.flipped[k] else index
        coords = reoriented / plan.zoom[k]
        if plan.target_size[k] == n and not plan.flipped[k] and np.allclose(coords, index):
            continue
        out = lerp_axis(out, k, coords)
    return out
