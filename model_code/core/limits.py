"""The input limits, each checked before the work it bounds and named (its SERVING_* setting) in the error.

* the body, a JSON document's size and nesting depth: before parsing (``check_body``, ``check_json``);
* a zip's member count, expanded size and member names: from its central directory, before any member is
  decompressed (``check_zip_members``);
* a series' pixels, geometry and pixel format, and the size of the model grid it resamples to: from the
  headers, before any pixel is decoded or any model-grid array allocated (:class:`SeriesGuard`).

Every refusal is a :class:`ClientError`: 413 for "too large", 400 for a malformed request, 422 for a series
the model cannot use.
"""

from __future__ import annotations

import math
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any

import numpy as np

from model_code.core.errors import ClientError, bad_request, excerpt, unusable_series
from model_code.core.geometry import plan_resample
from model_code.core.settings import (
    SERVING_MAX_BODY_BYTES,
    SERVING_MAX_EXPANDED_BYTES,
    SERVING_MAX_JSON_BYTES,
    SERVING_MAX_JSON_DEPTH,
    SERVING_MAX_MODEL_VOXELS,
    SERVING_MAX_SERIES_PIXELS,
    SERVING_MAX_SPACING_MM,
    SERVING_MAX_ZIP_MEMBERS,
    SERVING_MIN_SLICES,
    SERVING_MIN_SPACING_MM,
    InputLimits,
)

# What the model reads: grayscale pixels of 8, 16 or 32 bits (a 1-bit "CT" is a bitmap, not an image).
READABLE_BITS_ALLOCATED = frozenset({8, 16, 32})
READABLE_PHOTOMETRIC = frozenset({"MONOCHROME1", "MONOCHROME2"})


def too_large(message: str) -> ClientError:
    return ClientError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, message)


def check_body(size: int, limits: InputLimits) -> None:
    if size > limits.max_body_bytes:
        raise too_large(
            f"the body is {size} bytes, over this server's limit of {limits.max_body_bytes} "
            f"({SERVING_MAX_BODY_BYTES}): send one series"
        )


def json_depth(raw: bytes) -> int:
    """The deepest nesting of objects and arrays in ``raw``, counted without parsing (so without recursion)."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return deepest


def check_json(raw: bytes, limits: InputLimits) -> None:
    """Size first, then depth: ``json.loads`` recurses per level, 100k levels is a RecursionError."""
    if len(raw) > limits.max_json_bytes:
        raise too_large(
            f"the JSON body is {len(raw)} bytes, over the limit of {limits.max_json_bytes} ({SERVING_MAX_JSON_BYTES}): "
            "a request names its series in a few keys"
        )
    depth = json_depth(raw)
    if depth > limits.max_json_depth:
        raise bad_request(
            f"the JSON body nests {depth} levels deep, over the limit of {limits.max_json_depth} "
            f"({SERVING_MAX_JSON_DEPTH}): send one flat object"
        )


def unsafe_member_name(name: str) -> bool:
    """An absolute path, a drive, or a ``..`` component: a name no extraction may follow (zip slip)."""
    windows = PureWindowsPath(name)
    if name.startswith(("/", "\\")) or windows.drive or windows.is_absolute():
        return True
    return any(part == ".." for part in (*PurePosixPath(name).parts, *windows.parts))


def check_zip_members(members: Sequence[zipfile.ZipInfo], limits: InputLimits) -> None:
    """Refuse a zip from its central directory alone: zipfile never yields more than a member's declared
    ``file_size`` (a member that inflates further fails its CRC), so the declared sum bounds every later read."""
    if len(members) > limits.max_zip_members:
        raise too_large(
            f"the zip holds {len(members)} members, over the limit of {limits.max_zip_members} "
            f"({SERVING_MAX_ZIP_MEMBERS}): send one series"
        )
    unsafe = [member.filename for member in members if unsafe_member_name(member.filename)]
    if unsafe:
        shown = ", ".join(excerpt(name, 60) for name in unsafe[:3])
        raise bad_request(
            f"{len(unsafe)} zip member name(s) are absolute or climb out of the archive with '..' ({shown}): "
            "zip the series folder with relative names"
        )
    expanded = sum(member.file_size for member in members)
    if expanded > limits.max_expanded_bytes:
        raise too_large(
            f"the zip expands to {expanded} bytes, over this server's limit of {limits.max_expanded_bytes} "
            f"({SERVING_MAX_EXPANDED_BYTES}): send one series"
        )


def model_spacing(segmenter: Any) -> tuple[float, float, float] | None:
    """The spacing a segmenter resamples to (its metadata's pre-processing), None when it does not say."""
    spacing = getattr(getattr(getattr(segmenter, "metadata", None), "preprocessing", None), "spacing_mm", None)
    if spacing is None:
        return None
    values = tuple(float(v) for v in spacing)
    return (values[0], values[1], values[2]) if len(values) == 3 else None


# keyword -> the first slice's value (datasets and HealthImaging metadata both answer it).
FirstValue = Callable[[str], Any]


@dataclass(frozen=True)
class SeriesGuard:
    """A series' headers checked against the limits; ``pixdim`` is the model's spacing (None: no grid bound)."""

    limits: InputLimits = field(default_factory=InputLimits)
    pixdim: tuple[float, float, float] | None = None

    def check_header(
        self, *, slices: int, rows: int, cols: int, affine: np.ndarray, spacing: Sequence[float], first: FirstValue
    ) -> None:
        """Everything known before a pixel is decoded; raises ClientError (413/422) naming the setting."""
        limits = self.limits
        bits = first("BitsAllocated")
        if bits is not None and int(bits) not in READABLE_BITS_ALLOCATED:
            raise unusable_series(
                f"BitsAllocated is {int(bits)}: the model reads grayscale images of 8, 16 or 32 bits"
            )
        photometric = first("PhotometricInterpretation")
        if photometric is not None and str(photometric).strip().upper() not in READABLE_PHOTOMETRIC:
            raise unusable_series(
                f"PhotometricInterpretation is {excerpt(str(photometric), 40)}: the model reads MONOCHROME1 or "
                "MONOCHROME2 images"
            )
        if slices < limits.min_slices:
            raise unusable_series(
                f"the series has {slices} slice(s), fewer than {limits.min_slices} ({SERVING_MIN_SLICES}): "
                "the model segments volumes; send the whole series"
            )
        pixels = slices * rows * cols
        if pixels > limits.max_series_pixels:
            raise too_large(
                f"the series holds {slices}x{rows}x{cols} = {pixels} pixels, over the limit of "
                f"{limits.max_series_pixels} ({SERVING_MAX_SERIES_PIXELS}): send one series"
            )
        if not np.isfinite(affine).all():
            raise unusable_series(
                "the slice geometry is not finite (ImagePositionPatient, ImageOrientationPatient or PixelSpacing "
                "holds NaN or infinity): re-export the series with its geometry"
            )
        names = ("slice spacing", "row spacing (PixelSpacing[0])", "column spacing (PixelSpacing[1])")
        for name, value in zip(names, spacing, strict=True):
            if slices == 1 and name == "slice spacing":
                continue
            if not limits.min_spacing_mm <= value <= limits.max_spacing_mm:
                raise unusable_series(
                    f"the {name} is {value:.4g} mm, outside {limits.min_spacing_mm}..{limits.max_spacing_mm} mm "
                    f"({SERVING_MIN_SPACING_MM}..{SERVING_MAX_SPACING_MM}): check the series' geometry attributes"
                )
        if self.pixdim is not None:
            self._check_model_grid(affine, (slices, rows, cols))

    def _check_model_grid(self, affine: np.ndarray, shape: tuple[int, int, int]) -> None:
        plan = plan_resample(affine, shape, pixdim=self.pixdim or (1.0, 1.0, 1.0))
        voxels = math.prod(plan.model_shape)
        if voxels > self.limits.max_model_voxels:
            grid = "x".join(str(n) for n in plan.model_shape)
            raise too_large(
                f"resampled to the model's spacing {list(self.pixdim or ())} mm the series becomes {grid} = "
                f"{voxels} voxels, over the limit of {self.limits.max_model_voxels} ({SERVING_MAX_MODEL_VOXELS}): "
                "check PixelSpacing and the slice positions"
            )

    def check_series(self, series: Any) -> None:
        """The same checks on a loaded ImageSeries (sources whose loader decodes as it reads, HealthImaging)."""
        slices, rows, cols = (int(n) for n in series.volume.shape)
        first = series.datasets[0] if series.datasets else None
        self.check_header(
            slices=slices,
            rows=rows,
            cols=cols,
            affine=series.affine,
            spacing=series.spacing,
            first=(lambda keyword: getattr(first, keyword, None)) if first is not None else (lambda keyword: None),
        )
