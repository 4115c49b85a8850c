"""One loaded image series: the type every loader returns and every writer reads.

Conventions (shared by the HealthImaging connector, the folder/zip loader, the segmentation
pipeline and the SEG writer):

* ``volume`` is ``(slices, rows, cols)``, float32, modality rescale applied (HU for CT).
* ``affine`` maps a voxel index ``(slice, row, col, 1)`` to patient LPS millimetres.
* ``datasets[i]`` is the single-frame instance whose pixels are ``volume[i]``.
* slices are ordered along the slice normal (row direction x column direction), ascending.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pydicom

from model_code.imaging.errors import InvalidSeriesError

# Geometry read from DICOM headers is rounded text; a few microns of disagreement is not a defect.
_ORIENTATION_TOLERANCE = 1e-4
_SPACING_TOLERANCE_MM = 1e-2
# Slice gaps may wobble a little in real scanners; beyond this the series is not a regular grid.
_SLICE_GAP_RELATIVE_TOLERANCE = 0.05


@dataclass(frozen=True)
class ImageSeries:
    """A series ready for model code: pixels, geometry, and the instances they came from."""

    volume: np.ndarray
    affine: np.ndarray
    spacing: tuple[float, float, float]
    datasets: list[pydicom.Dataset]
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.volume.ndim != 3:
            raise ValueError(f"volume must be (slices, rows, cols), got shape {self.volume.shape}")
        if self.affine.shape != (4, 4):
            raise ValueError(f"affine must be 4x4, got shape {self.affine.shape}")
        if self.datasets and len(self.datasets) != self.volume.shape[0]:
            raise ValueError(
                f"{len(self.datasets)} datasets for {self.volume.shape[0]} slices: they must match one to one"
            )

    @property
    def series_instance_uid(self) -> str:
        return str(self.datasets[0].SeriesInstanceUID) if self.datasets else ""

    @property
    def modality(self) -> str:
        return str(getattr(self.datasets[0], "Modality", "")) if self.datasets else ""

    @property
    def slice_positions(self) -> np.ndarray:
        """ImagePositionPatient of every slice, (slices, 3), in volume order."""
        indices = np.zeros((self.volume.shape[0], 4))
        indices[:, 0] = np.arange(self.volume.shape[0])
        indices[:, 3] = 1.0
        return (indices @ self.affine.T)[:, :3]


def _name(dataset: pydicom.Dataset, names: Sequence[str] | None, index: int) -> str:
    if names is not None:
        return names[index]
    filename = getattr(dataset, "filename", None)
    if isinstance(filename, str) and filename:
        return filename
    return str(getattr(dataset, "SOPInstanceUID", f"instance #{index}"))


def _required(dataset: pydicom.Dataset, keyword: str, name: str) -> Any:
    value = getattr(dataset, keyword, None)
    if value is None or value == "":
        raise InvalidSeriesError(
            f"{keyword} is missing: a slice of a volume must carry it; re-export the series from the "
            "scanner or PACS with geometry attributes",
            [name],
        )
    return value


def slice_normal(orientation: Sequence[float] | np.ndarray) -> np.ndarray:
    """The unit normal of ImageOrientationPatient (row direction x column direction)."""
    row_dir = np.asarray(orientation[:3], dtype=float)
    col_dir = np.asarray(orientation[3:], dtype=float)
    return np.cross(row_dir, col_dir)


def series_from_datasets(
    datasets: Sequence[pydicom.Dataset],
    *,
    names: Sequence[str] | None = None,
    pixel_arrays: Sequence[np.ndarray] | None = None,
    metadata: dict[str, Any] | None = None,
) -> ImageSeries:
    """Sort single-frame instances of one series along the slice normal and stack them.

    ``names`` labels each dataset in error messages (file paths, frame IDs); ``pixel_arrays``
    supplies already-decoded stored values (the HealthImaging connector decodes frames itself).
    Raises :class:`InvalidSeriesError` naming the files that break the series.
    """
    if not datasets:
        raise InvalidSeriesError("no image instances were given: the series is empty")
    if names is not None and len(names) != len(datasets):
        raise ValueError("names must label every dataset")
    labels = [_name(ds, names, i) for i, ds in enumerate(datasets)]

    series_uids = {str(getattr(ds, "SeriesInstanceUID", "")) for ds in datasets}
    if len(series_uids) > 1:
        raise InvalidSeriesError(
            f"instances belong to {len(series_uids)} series ({', '.join(sorted(series_uids))}): "
            "choose one SeriesInstanceUID",
            labels,
        )

    first = datasets[0]
    orientation = np.asarray(_required(first, "ImageOrientationPatient", labels[0]), dtype=float)
    pixel_spacing = np.asarray(_required(first, "PixelSpacing", labels[0]), dtype=float)
    rows, cols = int(_required(first, "Rows", labels[0])), int(_required(first, "Columns", labels[0]))
    for ds, label in zip(datasets, labels, strict=True):
        other = np.asarray(_required(ds, "ImageOrientationPatient", label), dtype=float)
        if not np.allclose(other, orientation, atol=_ORIENTATION_TOLERANCE):
            raise InvalidSeriesError(
                f"ImageOrientationPatient {list(other)} differs from {list(orientation)} of {labels[0]}: "
                "a volume needs one orientation; split the series or remove the localizer",
                [label],
            )
        other_spacing = np.asarray(_required(ds, "PixelSpacing", label), dtype=float)
        if not np.allclose(other_spacing, pixel_spacing, atol=_SPACING_TOLERANCE_MM):
            raise InvalidSeriesError(
                f"PixelSpacing {list(other_spacing)} differs from {list(pixel_spacing)} of {labels[0]}: "
                "a volume needs one in-plane spacing",
                [label],
            )
        if (int(ds.Rows), int(ds.Columns)) != (rows, cols):
            raise InvalidSeriesError(
                f"image size {ds.Rows}x{ds.Columns} differs from {rows}x{cols} of {labels[0]}",
                [label],
            )

    normal = slice_normal(orientation)
    positions = np.asarray(
        [
            np.asarray(_required(ds, "ImagePositionPatient", label), dtype=float)
            for ds, label in zip(datasets, labels, strict=True)
        ]
    )
    distances = positions @ normal
    order = np.argsort(distances, kind="stable")
    sorted_distances = distances[order]
    gaps = np.diff(sorted_distances)
    if len(gaps):
        duplicate = np.flatnonzero(gaps < _SPACING_TOLERANCE_MM)
        if duplicate.size:
            pair = [labels[order[duplicate[0]]], labels[order[duplicate[0] + 1]]]
            raise InvalidSeriesError(
                "two instances sit at the same slice position: remove the duplicate or choose one acquisition",
                pair,
            )
        slice_gap = float(np.median(gaps))
        irregular = np.flatnonzero(np.abs(gaps - slice_gap) > _SLICE_GAP_RELATIVE_TOLERANCE * slice_gap)
        if irregular.size:
            at = irregular[0]
            raise InvalidSeriesError(
                f"slice spacing is inconsistent ({gaps[at]:.3f} mm where the series uses {slice_gap:.3f} mm): "
                "a slice is missing or the series mixes acquisitions",
                [labels[order[at]], labels[order[at + 1]]],
            )
        step = (positions[order[-1]] - positions[order[0]]) / (len(order) - 1)
    else:
        # A single slice has no neighbour to measure against: the header's thickness stands in.
        slice_gap = float(getattr(first, "SpacingBetweenSlices", None) or getattr(first, "SliceThickness", None) or 1.0)
        step = normal * slice_gap

    slices = []
    for index in order:
        ds, label = datasets[index], labels[index]
        if pixel_arrays is not None:
            stored = pixel_arrays[index]
        else:
            if "PixelData" not in ds:
                raise InvalidSeriesError("the instance has no pixel data: it is not an image slice", [label])
            try:
                stored = ds.pixel_array
            except Exception as error:  # pydicom raises many types for undecodable pixel data
                raise InvalidSeriesError(f"pixel data cannot be decoded ({error})", [label]) from error
        if stored.shape != (rows, cols):
            raise InvalidSeriesError(
                f"pixel data has shape {stored.shape}, expected ({rows}, {cols}): only single-frame "
                "grayscale instances stack into a volume",
                [label],
            )
        slope = float(getattr(ds, "RescaleSlope", 1.0) or 1.0)
        intercept = float(getattr(ds, "RescaleIntercept", 0.0) or 0.0)
        slices.append(stored.astype(np.float32) * np.float32(slope) + np.float32(intercept))

    row_dir, col_dir = orientation[:3], orientation[3:]
    affine = np.eye(4)
    affine[:3, 0] = step
    # PixelSpacing is (distance between rows, distance between columns).
    affine[:3, 1] = col_dir * pixel_spacing[0]
    affine[:3, 2] = row_dir * pixel_spacing[1]
    affine[:3, 3] = positions[order[0]]

    return ImageSeries(
        volume=np.stack(slices),
        affine=affine,
        spacing=(float(np.linalg.norm(step)), float(pixel_spacing[0]), float(pixel_spacing[1])),
        datasets=[datasets[i] for i in order],
        metadata=metadata or {},
    )
