"""A synthetic abdomen-like CT phantom with a planted spleen-like ellipsoid.

The anatomy is defined in patient space (LPS millimetres, relative to the field of view), then
sampled on the acquisition grid. The same body therefore appears in an axial, sagittal or coronal
acquisition, and a test can ask for the ground truth on any grid (:meth:`Phantom.organ_mask_on`).

Intensities (HU) are chosen so that the spleen model's window (-57..164 HU) separates the organ
from everything else by a band threshold: air -1000, fat -100, soft tissue 40, spleen 115, bone 700.
Generation is a handful of vectorised numpy expressions, cheap enough for the trainer to call per
sample.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

Orientation = Literal["axial", "sagittal", "coronal"]

AIR_HU = -1000.0
FAT_HU = -100.0
SOFT_TISSUE_HU = 40.0
SPLEEN_HU = 115.0
BONE_HU = 700.0

# ImageOrientationPatient (row direction, column direction) in LPS, as scanners write them.
_ORIENTATIONS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "axial": ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0)),
    "sagittal": ((0.0, 1.0, 0.0), (0.0, 0.0, -1.0)),
    "coronal": ((1.0, 0.0, 0.0), (0.0, 0.0, -1.0)),
}

# Where the field of view is centred (LPS mm): not the origin, so a dropped translation shows.
_FOV_CENTRE_MM = np.array([12.5, -30.0, 100.0])

# Organ geometry as fractions of the field-of-view half extent along L, P, S. Off-centre and
# with three different semi-axes, so any flip or axis swap moves the organ measurably.
_ORGAN_CENTRE_FRACTION = np.array([0.35, 0.15, 0.05])
_ORGAN_SEMI_AXES_FRACTION = np.array([0.25, 0.30, 0.38])


@dataclass(frozen=True)
class Phantom:
    """A phantom volume in acquisition order with its ground truth.

    ``affine`` maps a voxel index ``(slice, row, col, 1)`` to patient LPS mm, as in
    :class:`~model_code.core.dicom.series.ImageSeries`. For ``descending=True`` the slice axis points
    against the slice normal (the acquisition order of a head-to-feet scan): a loader sorts those
    slices ascending, so compare in patient space (:meth:`organ_mask_on`), not index by index.
    """

    volume_hu: np.ndarray
    mask: np.ndarray
    affine: np.ndarray
    spacing: tuple[float, float, float]
    orientation: str
    descending: bool
    organ_centre_mm: np.ndarray
    organ_semi_axes_mm: np.ndarray

    def organ_mask_on(self, affine: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
        """The planted organ sampled on any grid (uint8), e.g. the geometry a loader returned."""
        return _inside_ellipsoid(affine, shape, self.organ_centre_mm, self.organ_semi_axes_mm).astype(np.uint8)

    @property
    def organ_volume_ml(self) -> float:
        """Analytic volume of the planted ellipsoid (4/3 pi abc), in millilitres."""
        return float(4.0 / 3.0 * np.pi * np.prod(self.organ_semi_axes_mm) / 1000.0)


def phantom_affine(
    *,
    shape: tuple[int, int, int],
    spacing: tuple[float, float, float],
    orientation: Orientation | str = "axial",
    descending: bool = False,
) -> np.ndarray:
    """Voxel (slice, row, col) -> LPS affine of a phantom acquisition."""
    if orientation not in _ORIENTATIONS:
        raise ValueError(f"orientation must be one of {sorted(_ORIENTATIONS)}, got {orientation!r}")
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"shape must be (slices, rows, cols) of positive sizes, got {shape}")
    if len(spacing) != 3 or min(spacing) <= 0:
        raise ValueError(f"spacing must be (slice, row, col) mm, all > 0, got {spacing}")
    row_dir, col_dir = (np.asarray(v) for v in _ORIENTATIONS[orientation])
    normal = np.cross(row_dir, col_dir)
    affine = np.eye(4)
    affine[:3, 0] = normal * spacing[0] * (-1.0 if descending else 1.0)
    # Moving down a row follows the column direction; moving along a row follows the row direction.
    affine[:3, 1] = col_dir * spacing[1]
    affine[:3, 2] = row_dir * spacing[2]
    centre_index = (np.asarray(shape, dtype=float) - 1.0) / 2.0
    affine[:3, 3] = _FOV_CENTRE_MM - affine[:3, :3] @ centre_index
    return affine


def _lps_grid(affine: np.ndarray, shape: tuple[int, int, int]) -> list[np.ndarray]:
    """L, P and S coordinates (mm) of every voxel centre, as three broadcastable float32 arrays."""
    index = [np.arange(n, dtype=np.float32) for n in shape]
    coordinates = []
    for axis in range(3):
        a = affine[axis].astype(np.float32)
        coordinates.append(
            a[3] + a[0] * index[0][:, None, None] + a[1] * index[1][None, :, None] + a[2] * index[2][None, None, :]
        )
    return coordinates


def _inside_ellipsoid(
    affine: np.ndarray,
    shape: tuple[int, int, int],
    centre: np.ndarray,
    semi_axes: np.ndarray,
    *,
    lps: list[np.ndarray] | None = None,
) -> np.ndarray:
    lps = lps if lps is not None else _lps_grid(affine, shape)
    distance = sum(((lps[i] - np.float32(centre[i])) / np.float32(semi_axes[i])) ** 2 for i in range(3))
    return np.asarray(distance <= 1.0)


def _half_extent(affine: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """Half the field of view along L, P, S (mm), from the voxel-centre corners."""
    ends = [(0, n - 1) for n in shape]
    corners = np.array([[i, j, k, 1.0] for i in ends[0] for j in ends[1] for k in ends[2]])
    lps = (corners @ affine.T)[:, :3]
    extent = (lps.max(axis=0) - lps.min(axis=0)) / 2.0
    # A single-slice axis has no extent: give it the slice spacing so fractions stay finite.
    return np.maximum(extent, np.abs(affine[:3, :3]).max(axis=1))


def make_phantom(
    *,
    shape: tuple[int, int, int] = (32, 96, 96),
    spacing: tuple[float, float, float] = (2.5, 2.0, 2.0),
    orientation: Orientation | str = "axial",
    descending: bool = False,
    seed: int = 0,
    noise_hu: float = 5.0,
    organ_hu: float = SPLEEN_HU,
) -> Phantom:
    """An abdomen-like CT volume (HU, float32) with one spleen-like ellipsoid.

    ``seed`` drives the noise only, and a small jitter of organ size and position (so a trainer
    gets varied samples); seed 0 is the nominal geometry. ``noise_hu`` is the Gaussian noise
    standard deviation: keep it under ~8 HU so a band threshold at 80..150 HU stays exact.
    """
    affine = phantom_affine(shape=shape, spacing=spacing, orientation=orientation, descending=descending)
    half = _half_extent(affine, shape)
    rng = np.random.default_rng(seed)
    centre_fraction = _ORGAN_CENTRE_FRACTION.copy()
    axes_fraction = _ORGAN_SEMI_AXES_FRACTION.copy()
    if seed:
        centre_fraction += rng.uniform(-0.05, 0.05, size=3)
        axes_fraction *= rng.uniform(0.85, 1.15, size=3)
    organ_centre = _FOV_CENTRE_MM + centre_fraction * half
    organ_axes = axes_fraction * half

    lps = _lps_grid(affine, shape)
    # Normalised in-plane (axial) coordinates: the body is a cylinder along S.
    u_l = (lps[0] - np.float32(_FOV_CENTRE_MM[0])) / np.float32(half[0])
    u_p = (lps[1] - np.float32(_FOV_CENTRE_MM[1])) / np.float32(half[1])
    body_radius = (u_l / np.float32(0.9)) ** 2 + (u_p / np.float32(0.8)) ** 2
    spine_radius = (u_l / np.float32(0.12)) ** 2 + ((u_p - np.float32(0.6)) / np.float32(0.12)) ** 2
    full_shape = np.broadcast_shapes(body_radius.shape, tuple(shape))

    volume = np.full(full_shape, AIR_HU, dtype=np.float32)
    volume[np.broadcast_to(body_radius <= 1.0, full_shape)] = FAT_HU
    volume[np.broadcast_to(body_radius <= 0.85, full_shape)] = SOFT_TISSUE_HU
    volume[np.broadcast_to(spine_radius <= 1.0, full_shape)] = BONE_HU
    organ = _inside_ellipsoid(affine, shape, organ_centre, organ_axes, lps=lps)
    volume[organ] = np.float32(organ_hu)
    if noise_hu > 0:
        volume += rng.normal(0.0, noise_hu, size=full_shape).astype(np.float32)

    return Phantom(
        volume_hu=volume,
        mask=organ.astype(np.uint8),
        affine=affine,
        spacing=(float(spacing[0]), float(spacing[1]), float(spacing[2])),
        orientation=orientation,
        descending=descending,
        organ_centre_mm=organ_centre,
        organ_semi_axes_mm=organ_axes,
    )
