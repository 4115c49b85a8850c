"""One loaded image series: the type every loader returns and every writer reads.

Conventions (shared by the HealthImaging connector, the folder/zip loader, the segmentation
pipeline and the SEG writer):

* ``volume`` is ``(slices, rows, cols)``, modality rescale applied (HU for CT): int16 when every slice's rescale
  maps its stored integers exactly into int16 (slope 1, integral intercept: the usual CT), else float32. The
  int16 values are the float32 ones exactly; consumers that compute convert a slab or a slice at a time.
* ``affine`` maps a voxel index ``(slice, row, col, 1)`` to patient LPS millimetres.
* ``datasets[i]`` is the single-frame instance whose pixels are ``volume[i]``.
* slices are ordered along the slice normal (row direction x column direction), ascending.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pydicom

from model_code.core.errors import InvalidSeriesError

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
    _released: bool = field(default=False, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.volume.ndim != 3:
            raise ValueError(f"volume must be (slices, rows, cols), got shape {self.volume.shape}")
        if self.affine.shape != (4, 4):
            raise ValueError(f"affine must be 4x4, got shape {self.affine.shape}")
        if self.datasets and len(self.datasets) != self.volume.shape[0]:
            raise ValueError(
                f"{len(self.datasets)} datasets for {self.volume.shape[0]} slices: they must match one to one"
            )

    def release_volume(self) -> None:
        """Let go of the pixels, for a holder that needs the headers and the shape only from here (a model
        server once the volume is on the model grid: the SEG and the summary read headers, shape and affine).

        ``volume`` becomes a read-only placeholder of the same shape and dtype that holds no memory (zero
        strides: it reads as zeros), so the array is freed once nothing else references it. The one change a
        series allows after it is built; :attr:`volume_released` says it happened, and code that reads the
        values (the overlay preview) checks it."""
        placeholder = np.broadcast_to(np.zeros((), dtype=self.volume.dtype), self.volume.shape)
        object.__setattr__(self, "volume", placeholder)  # frozen: every other field stays as built
        object.__setattr__(self, "_released", True)

    @property
    def volume_released(self) -> bool:
        return self._released

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


# value(index, keyword): one header attribute of slice ``index``, None when absent. Datasets and
# HealthImaging metadata documents both answer it, so both loaders share the geometry rules below.
HeaderValue = Callable[[int, str], Any]


def _required(value: HeaderValue, index: int, keyword: str, label: str) -> Any:
    found = value(index, keyword)
    if found is None or found == "":
        raise InvalidSeriesError(
            f"{keyword} is missing: a slice of a volume must carry it; re-export the series from the "
            "scanner or PACS with geometry attributes",
            [label],
        )
    return found


def _floats(value: HeaderValue, index: int, keyword: str, label: str, count: int) -> np.ndarray:
    raw = _required(value, index, keyword, label)
    try:
        found = np.asarray(raw, dtype=float).reshape(-1)
    except (TypeError, ValueError) as error:  # a malformed DS/IS string
        raise InvalidSeriesError(f"{keyword} is not a list of numbers ({error})", [label]) from error
    if found.shape != (count,):
        raise InvalidSeriesError(f"{keyword} must have {count} values, has {found.size}", [label])
    if not np.isfinite(found).all():
        raise InvalidSeriesError(f"{keyword} {found.tolist()} is not finite: re-export the series with its geometry",
                                 [label])
    return found


@dataclass(frozen=True)
class StackGeometry:
    """Where each slice goes: ``order[k]`` is the index of the slice stacked k-th; affine and spacing."""

    order: list[int]
    affine: np.ndarray
    spacing: tuple[float, float, float]
    rows: int
    cols: int


def _check_uniform(values: np.ndarray, keyword: str, tolerance: float, labels: Sequence[str], why: str) -> None:
    """Every row of ``values`` (one per slice) must match the first slice's within ``tolerance``."""
    close = np.isclose(values, values[0], atol=tolerance).all(axis=1)
    mismatched = np.flatnonzero(~close)
    if mismatched.size:
        at = int(mismatched[0])
        raise InvalidSeriesError(
            f"{keyword} {values[at].tolist()} differs from {values[0].tolist()} of {labels[0]}: {why}", [labels[at]]
        )


def stack_geometry(count: int, value: HeaderValue, labels: Sequence[str]) -> StackGeometry:
    """Sort ``count`` single-frame slices of one series along the slice normal, from their headers alone.

    Checks that they form one regular volume: one series, one orientation, one in-plane spacing and image
    size, no two slices at one position, evenly spaced. Raises :class:`InvalidSeriesError` naming the
    slices that break it.
    """
    if count == 0:
        raise InvalidSeriesError("no image instances were given: the series is empty")
    series_uids = {str(value(index, "SeriesInstanceUID") or "") for index in range(count)}
    if len(series_uids) > 1:
        raise InvalidSeriesError(
            f"instances belong to {len(series_uids)} series ({', '.join(sorted(series_uids))}): "
            "choose one SeriesInstanceUID",
            list(labels),
        )
    orientations = np.empty((count, 6))
    pixel_spacings = np.empty((count, 2))
    sizes = np.empty((count, 2), dtype=np.int64)
    positions = np.empty((count, 3))
    for index, label in enumerate(labels):
        orientations[index] = _floats(value, index, "ImageOrientationPatient", label, 6)
        pixel_spacings[index] = _floats(value, index, "PixelSpacing", label, 2)
        sizes[index] = int(_required(value, index, "Rows", label)), int(_required(value, index, "Columns", label))
        positions[index] = _floats(value, index, "ImagePositionPatient", label, 3)

    orientation, pixel_spacing = orientations[0], pixel_spacings[0]
    if (pixel_spacing <= 0).any():
        raise InvalidSeriesError(f"PixelSpacing {pixel_spacing.tolist()} must be positive (mm)", [labels[0]])
    rows, cols = int(sizes[0, 0]), int(sizes[0, 1])
    split_hint = "a volume needs one orientation; split the series or remove the localizer"
    _check_uniform(orientations, "ImageOrientationPatient", _ORIENTATION_TOLERANCE, labels, split_hint)
    _check_uniform(pixel_spacings, "PixelSpacing", _SPACING_TOLERANCE_MM, labels, "a volume needs one in-plane spacing")
    resized = np.flatnonzero((sizes != sizes[0]).any(axis=1))
    if resized.size:
        other = sizes[resized[0]]
        raise InvalidSeriesError(
            f"image size {other[0]}x{other[1]} differs from {rows}x{cols} of {labels[0]}",
            [labels[int(resized[0])]],
        )

    normal = slice_normal(orientation)
    distances = positions @ normal
    order = np.argsort(distances, kind="stable")
    gaps = np.diff(distances[order])
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
        slice_gap = float(value(0, "SpacingBetweenSlices") or value(0, "SliceThickness") or 1.0)
        step = normal * slice_gap

    row_dir, col_dir = orientation[:3], orientation[3:]
    affine = np.eye(4)
    affine[:3, 0] = step
    # PixelSpacing is (distance between rows, distance between columns).
    affine[:3, 1] = col_dir * pixel_spacing[0]
    affine[:3, 2] = row_dir * pixel_spacing[1]
    affine[:3, 3] = positions[order[0]]
    spacing = (float(np.linalg.norm(step)), float(pixel_spacing[0]), float(pixel_spacing[1]))
    return StackGeometry([int(index) for index in order], affine, spacing, rows, cols)


def slice_normal(orientation: Sequence[float] | np.ndarray) -> np.ndarray:
    """The unit normal of ImageOrientationPatient (row direction x column direction)."""
    row_dir = np.asarray(orientation[:3], dtype=float)
    col_dir = np.asarray(orientation[3:], dtype=float)
    return np.cross(row_dir, col_dir)


def rescale_of(value: Callable[[str], Any]) -> tuple[np.float32, np.float32]:
    """(RescaleSlope, RescaleIntercept) as float32, defaults 1 and 0: stored values * slope + intercept."""
    slope = float(value("RescaleSlope") or 1.0)
    intercept = float(value("RescaleIntercept") or 0.0)
    return np.float32(slope), np.float32(intercept)


def _checked_rescale(ds: pydicom.Dataset, label: str) -> tuple[np.float32, np.float32]:
    try:
        slope, intercept = rescale_of(ds.get)
    except (TypeError, ValueError) as error:  # a malformed DS value (a stray byte in RescaleIntercept)
        raise InvalidSeriesError(f"RescaleSlope/RescaleIntercept is not a number ({error})", [label]) from error
    if not (np.isfinite(slope) and np.isfinite(intercept)):
        raise InvalidSeriesError("RescaleSlope/RescaleIntercept is not finite", [label])
    return slope, intercept


_INT16 = np.iinfo(np.int16)


def is_integer_shift(rescales: Sequence[tuple[np.float32, np.float32]]) -> bool:
    """Whether every (slope, intercept) is slope 1 with an integral intercept: the volume may then be int16."""
    return all(slope == 1 and float(intercept).is_integer() for slope, intercept in rescales)


def fits_int16(stored: np.ndarray, intercept: int, *, value_range: tuple[int, int] | None = None) -> bool:
    """Whether every stored integer plus ``intercept`` is an int16 (float stored values never are).

    ``value_range``: bounds the header guarantees for the stored values (a signed sample sign-extended from
    BitsStored); a side they already keep inside int16 is not read from the pixels (a pass each)."""
    if stored.dtype.kind not in "iu" or stored.size == 0:
        return stored.size == 0
    low_known = value_range is not None and value_range[0] + intercept >= _INT16.min
    high_known = value_range is not None and value_range[1] + intercept <= _INT16.max
    return (low_known or int(stored.min()) + intercept >= _INT16.min) and (
        high_known or int(stored.max()) + intercept <= _INT16.max
    )


def series_from_datasets(
    datasets: Sequence[pydicom.Dataset],
    *,
    names: Sequence[str] | None = None,
    pixel_arrays: Sequence[np.ndarray] | None = None,
    metadata: dict[str, Any] | None = None,
    check: Callable[[StackGeometry, pydicom.Dataset], None] | None = None,
    drop_pixel_data: bool = True,
) -> ImageSeries:
    """Sort single-frame instances of one series along the slice normal and stack them.

    ``names`` labels each dataset in error messages (file paths, frame IDs); ``pixel_arrays``
    supplies already-decoded stored values instead of decoding each dataset's PixelData. ``check`` sees the
    geometry and the first dataset before any pixel is decoded (a server's input limits) and may raise.
    ``drop_pixel_data`` (the default) removes each decoded instance's PixelData: the volume holds its pixels.
    Raises :class:`InvalidSeriesError` naming the files that break the series.
    """
    if names is not None and len(names) != len(datasets):
        raise ValueError("names must label every dataset")
    labels = [_name(ds, names, i) for i, ds in enumerate(datasets)]
    geometry = stack_geometry(len(datasets), lambda index, keyword: getattr(datasets[index], keyword, None), labels)
    if check is not None:
        check(geometry, datasets[geometry.order[0]])

    rescales = [_checked_rescale(datasets[index], labels[index]) for index in geometry.order]
    # int16 when every rescale is an exact integer shift: half the bytes of float32, the same HU values (each
    # int16 is a float32 exactly). A slice whose values leave int16's range promotes the volume to float32.
    exact = is_integer_shift(rescales)
    # Decoded straight into the volume, slice by slice, and each instance's PixelData (with pydicom's cached
    # array) dropped once copied: the pixels are held once, as the volume, not three times (stored bytes, decoded
    # array, a list of float32 slices stacked into a second volume). The SEG writer reads headers only.
    volume = np.empty((len(geometry.order), geometry.rows, geometry.cols), dtype=np.int16 if exact else np.float32)
    for position, index in enumerate(geometry.order):
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
        if stored.shape != (geometry.rows, geometry.cols):
            raise InvalidSeriesError(
                f"pixel data has shape {stored.shape}, expected ({geometry.rows}, {geometry.cols}): only "
                "single-frame grayscale instances stack into a volume",
                [label],
            )
        slope, intercept = rescales[position]
        if volume.dtype == np.int16 and not fits_int16(stored, int(intercept)):
            volume = volume.astype(np.float32)  # once: the slices so far are exact in float32 too
        if volume.dtype == np.int16:
            np.add(stored, int(intercept), out=volume[position], dtype=np.int64, casting="unsafe")
        else:
            # Same float32 arithmetic as stored.astype(float32) * slope + intercept, without the temporaries.
            np.multiply(stored, slope, out=volume[position], dtype=np.float32)
            volume[position] += intercept
        del stored
        if pixel_arrays is None and drop_pixel_data:
            del ds.PixelData  # pydicom clears its cached pixel_array with it

    return ImageSeries(
        volume=volume,
        affine=geometry.affine,
        spacing=geometry.spacing,
        datasets=[datasets[i] for i in geometry.order],
        metadata=metadata or {},
    )
