"""The spleen contract's grid geometry in plain numpy: the plans both array libraries execute.

Planning only -- which source axis becomes which model axis, flips, zooms, target sizes, the sample
coordinates of each 1-D interpolation pass, the sliding-window starts and the logits contract. The array work
lives in one module per library: ``model_code.core.transforms_numpy`` (the edge runner, the ONNX export
check) and ``model_code.segmentation.transforms_torch`` (the torch pipeline), each tested against MONAI's
stock transforms (tests/model_code/test_transforms_match_monai.py).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import nibabel.orientations as nio
import numpy as np

from model_code.core.errors import NetworkContractError

# LPS (DICOM patient space) to RAS (the NIfTI/MONAI world): flip the first two axes.
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
CONTRACT_CHANNELS = 2


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

    def check_source_shape(self, shape: Sequence[int]) -> None:
        if tuple(shape) != self.source_shape:
            raise ValueError(f"volume shape {tuple(shape)} does not match the plan's {self.source_shape}")

    def check_model_shape(self, shape: Sequence[int]) -> None:
        if tuple(shape) != self.model_shape:
            raise ValueError(f"values shape {tuple(shape)} does not match the plan's model grid {self.model_shape}")


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


def _pass_order(sizes_in: Sequence[int], sizes_out: Sequence[int]) -> list[int]:
    # Shrinking axes first: every later pass then touches fewer voxels.
    return sorted(range(3), key=lambda k: sizes_out[k] / max(sizes_in[k], 1))


def to_model_passes(plan: ResamplePlan) -> list[tuple[int, np.ndarray]]:
    """The 1-D passes source -> model grid: (source axis, fractional source index per output voxel).

    Axes the plan leaves as they are (same size, no flip, identity coordinates) get no pass.
    """
    passes = []
    for k in _pass_order(plan.source_shape, plan.target_size):
        n = plan.source_shape[k]
        coords = np.arange(plan.target_size[k], dtype=np.float64) * plan.zoom[k]
        if plan.flipped[k]:
            coords = (n - 1) - coords
        if plan.target_size[k] == n and not plan.flipped[k] and np.allclose(coords, np.arange(n)):
            continue
        passes.append((k, coords))
    return passes


def from_model_passes(plan: ResamplePlan) -> list[tuple[int, np.ndarray]]:
    """The 1-D passes back to the source grid, on values already permuted to source axis order."""
    passes = []
    for k in _pass_order(plan.target_size, plan.source_shape):
        n = plan.source_shape[k]
        index = np.arange(n, dtype=np.float64)
        reoriented = (n - 1) - index if plan.flipped[k] else index
        coords = reoriented / plan.zoom[k]
        if plan.target_size[k] == n and not plan.flipped[k] and np.allclose(coords, index):
            continue
        passes.append((k, coords))
    return passes


# Slices (of the output, along the source slice axis) per slab of the slabbed resampling: 16 slices of
# 512 x 512 float32 are 16 MiB of intermediates, where the whole volume's passes held several volumes' worth.
SLAB_SLICES = 16


@dataclass(frozen=True)
class Slab:
    """One slab of a resampling: output slices ``out`` (along the source slice axis) come from input slices
    ``rows`` through ``passes``, whose slice-axis taps are made relative to ``rows.start``."""

    out: slice
    rows: slice
    passes: list[tuple[int, np.ndarray]]


def slabs_of(passes: list[tuple[int, np.ndarray]], in_size: int, out_size: int, slab: int) -> list[Slab]:
    """``passes`` (from :func:`to_model_passes` or :func:`from_model_passes`) cut into slabs of ``slab`` output
    slices, each reading only the input slices its outputs interpolate from. Exact: a 1-D linear pass computes
    each output from its own two taps, and ``coordinate - first_row`` is exact in float64 (both are multiples of
    the coordinate's ulp), so every slab's taps and weights are the whole volume's; the passes along the other
    axes treat each slice alone. ``in_size``/``out_size``: the slice axis's length before and after."""
    if slab < 1:
        raise ValueError(f"slab must be >= 1 slice, got {slab}")
    along = dict(passes).get(0)
    slabs = []
    for start in range(0, out_size, slab):
        stop = min(start + slab, out_size)
        if along is None:  # no pass along the slice axis: slices map one to one
            slabs.append(Slab(slice(start, stop), slice(start, stop), passes))
            continue
        coords = np.clip(along[start:stop], 0.0, in_size - 1.0)
        if in_size == 1:
            first, last = 0, 1
        else:
            lower = np.minimum(np.floor(coords).astype(np.int64), in_size - 2)
            first, last = int(lower.min()), int(lower.max()) + 2
        relative = [(k, coords - first if k == 0 else c) for k, c in passes]
        slabs.append(Slab(slice(start, stop), slice(first, last), relative))
    return slabs


def forward_slabs(plan: ResamplePlan, slab: int = SLAB_SLICES) -> list[Slab]:
    """:func:`to_model_passes` in slabs (the output's slice axis is ``plan.target_size[0]`` long)."""
    return slabs_of(to_model_passes(plan), plan.source_shape[0], plan.target_size[0], slab)


def inverse_slabs(plan: ResamplePlan, slab: int = SLAB_SLICES) -> list[Slab]:
    """:func:`from_model_passes` in slabs, on model-grid values permuted to source axis order."""
    return slabs_of(from_model_passes(plan), plan.target_size[0], plan.source_shape[0], slab)


def window_starts(size: int, roi: int, overlap: float) -> list[int]:
    """Start indices of the windows along one axis of (padded) length ``size`` >= ``roi``, as MONAI places them."""
    if roi == size:
        return [0]
    interval = max(int(roi * (1 - overlap)), 1)
    count = next((d + 1 for d in range(math.ceil(size / interval)) if d * interval + roi >= size), 1)
    return [i * interval - max(i * interval + roi - size, 0) for i in range(count)]


def check_logits(logits: object, array_type: type, window_shape: Sequence[int], remedy: str) -> None:
    """Raise NetworkContractError when a window's logits break the [B,1,X,Y,Z] -> [B,2,X,Y,Z] contract.

    ``array_type`` is the array class the caller's library returns (``np.ndarray``, ``torch.Tensor``);
    ``remedy`` says what to do about a network that breaks the contract.
    """
    window = tuple(window_shape)
    shape = tuple(logits.shape) if isinstance(logits, array_type) else None  # type: ignore[attr-defined]
    if shape is None or len(shape) != 5 or shape[1] != CONTRACT_CHANNELS:
        raise NetworkContractError(
            f"the model returned {type(logits).__name__ if shape is None else shape} for input {window}: the "
            f"contract is [B,1,X,Y,Z] -> [B,{CONTRACT_CHANNELS},X,Y,Z] logits; {remedy}"
        )
    if shape[2:] != window[2:]:
        raise NetworkContractError(
            f"the model returned spatial shape {shape[2:]} for a {window[2:]} window: "
            "a segmentation network must keep the input's spatial shape"
        )


def lerp_taps(size: int, coordinates: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Linear interpolation taps along an axis of ``size`` voxels at fractional ``coordinates`` (border padding).

    Returns ``(lower, weight)``: output ``i`` is ``v[lower[i]] + (v[lower[i] + 1] - v[lower[i]]) * weight[i]``.
    ``weight`` is None where the coordinates fall on voxels (identity, flip, a one-voxel axis): then a
    gather of ``lower`` is exact.
    """
    coords = np.clip(np.asarray(coordinates, dtype=np.float64), 0.0, size - 1.0)
    if size == 1:
        return np.zeros(len(coords), dtype=np.int64), None
    lower = np.minimum(np.floor(coords).astype(np.int64), size - 2)
    weight = coords - lower
    if np.all(weight == 0.0):  # integer coordinates (identity or flip): a gather is exact
        return lower, None
    return lower, weight


@dataclass(frozen=True)
class WindowPlan:
    """MONAI's constant-mode sliding window over an (X, Y, Z) image: padding, window corners, coverage."""

    roi: tuple[int, int, int]
    size: tuple[int, int, int]
    padding: tuple[int, int, int]
    starts: tuple[list[int], list[int], list[int]]

    @property
    def pad_before(self) -> tuple[int, int, int]:
        """MONAI puts half of the padding before, the rest after."""
        return (self.padding[0] // 2, self.padding[1] // 2, self.padding[2] // 2)

    @property
    def padded_size(self) -> tuple[int, int, int]:
        return (self.size[0] + self.padding[0], self.size[1] + self.padding[1], self.size[2] + self.padding[2])

    @property
    def windows(self) -> list[tuple[int, int, int]]:
        return list(itertools.product(*self.starts))

    def coverage(self, axis: int) -> np.ndarray:
        """How many windows cover each padded voxel along ``axis`` (float32; the 3-D count is their product)."""
        count = np.zeros(self.padded_size[axis], dtype=np.float32)
        for start in self.starts[axis]:
            count[start : start + self.roi[axis]] += 1.0
        return count

    def crop(self) -> tuple[slice, slice, slice]:
        """The image's own voxels within the padded grid."""
        lo = self.pad_before
        return (
            slice(lo[0], lo[0] + self.size[0]),
            slice(lo[1], lo[1] + self.size[1]),
            slice(lo[2], lo[2] + self.size[2]),
        )


def plan_windows(image_shape: Sequence[int], roi_size: Sequence[int], overlap: float) -> WindowPlan:
    if len(image_shape) != 3 or len(roi_size) != 3:
        raise ValueError(f"expected a 3-D image and a 3-D roi, got {tuple(image_shape)} and {tuple(roi_size)}")
    roi = (int(roi_size[0]), int(roi_size[1]), int(roi_size[2]))
    size = (int(image_shape[0]), int(image_shape[1]), int(image_shape[2]))
    padding = (max(roi[0] - size[0], 0), max(roi[1] - size[1], 0), max(roi[2] - size[2], 0))
    padded = [s + p for s, p in zip(size, padding, strict=True)]
    starts = (
        window_starts(padded[0], roi[0], overlap),
        window_starts(padded[1], roi[1], overlap),
        window_starts(padded[2], roi[2], overlap),
    )
    return WindowPlan(roi=roi, size=size, padding=padding, starts=starts)
