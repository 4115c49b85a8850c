"""Read an image set's metadata document: which series to load, which frames, and each frame's header.

Multi-frame instances are split into single-frame headers because :class:`ImageSeries` stacks one frame
per dataset. A split frame takes its geometry and rescale from the per-frame functional groups (falling
back to the shared groups, then to the instance's own attributes), or, for legacy multi-frame instances
without functional groups, its position is computed from the first frame's position along the slice
normal in steps of SpacingBetweenSlices (else SliceThickness). A split frame is a new, derived instance:
it gets a deterministic SOPInstanceUID of its own and names its source instance and frame number in
SourceImageSequence, which is how a DICOM SEG can point back at the stored frame.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydicom.uid import generate_uid

from model_code.core.dicom.series import slice_normal
from model_code.healthimaging.errors import SeriesNotFound

logger = logging.getLogger(__name__)

# Enhanced (multi-frame) storage classes and the single-frame class a split frame is written as.
_SINGLE_FRAME_CLASS = {
    "1.2.840.10008.5.1.4.1.1.2.1": "1.2.840.10008.5.1.4.1.1.2",  # Enhanced CT -> CT Image
    "1.2.840.10008.5.1.4.1.1.4.1": "1.2.840.10008.5.1.4.1.1.4",  # Enhanced MR -> MR Image
    "1.2.840.10008.5.1.4.1.1.128.1": "1.2.840.10008.5.1.4.1.1.128",  # Enhanced PET -> PET Image
}
# (functional group, attributes it carries) copied to the top level of a split frame.
_FUNCTIONAL_GROUPS = (
    ("PlanePositionSequence", ("ImagePositionPatient",)),
    ("PlaneOrientationSequence", ("ImageOrientationPatient",)),
    ("PixelMeasuresSequence", ("PixelSpacing", "SliceThickness", "SpacingBetweenSlices")),
    ("PixelValueTransformationSequence", ("RescaleIntercept", "RescaleSlope", "RescaleType")),
    ("FrameVOILUTSequence", ("WindowCenter", "WindowWidth")),
)
_MULTI_FRAME_ONLY = ("PerFrameFunctionalGroupsSequence", "SharedFunctionalGroupsSequence", "NumberOfFrames")


@dataclass(frozen=True)
class PixelFormat:
    """How a frame's stored values are laid out, from the instance header."""

    rows: int
    cols: int
    bits_allocated: int
    bits_stored: int
    signed: bool
    samples_per_pixel: int = 1

    @property
    def dtype(self) -> np.dtype:
        size = {8: 1, 16: 2, 32: 4}.get(self.bits_allocated)
        if size is None:
            raise ValueError(f"BitsAllocated {self.bits_allocated} is not 8, 16 or 32: not a grayscale image")
        return np.dtype(f"{'i' if self.signed else 'u'}{size}")


@dataclass(frozen=True)
class FramePlan:
    """One frame to fetch: where it comes from, how to check it, and the header of its slice."""

    frame_id: str
    sop_instance_uid: str
    frame_number: int  # 1-based within its source instance
    checksum: int | None  # CRC32 of the full-resolution decoded pixels, when the document records it
    pixel_format: PixelFormat
    attributes: dict[str, Any]  # merged Patient/Study/Series/Instance attributes of this single frame
    vrs: dict[str, str]


@dataclass(frozen=True)
class SeriesChoice:
    series_instance_uid: str
    frame_count: int
    reason: str


def _series_map(document: Mapping[str, Any]) -> dict[str, Any]:
    series = document.get("Study", {}).get("Series", {})
    return dict(series) if isinstance(series, Mapping) else {}


def frame_count(series: Mapping[str, Any]) -> int:
    return sum(len(instance.get("ImageFrames") or []) for instance in series.get("Instances", {}).values())


def choose_series(document: Mapping[str, Any], series_instance_uid: str | None = None) -> SeriesChoice:
    """The series to load: the one named, else the one with most frames (ties: first in the document)."""

    image_set_id = str(document.get("ImageSetID", "?"))
    counts = {uid: frame_count(series) for uid, series in _series_map(document).items()}
    with_frames = [uid for uid, count in counts.items() if count > 0]
    if series_instance_uid is not None:
        if counts.get(series_instance_uid, 0) == 0:
            raise SeriesNotFound(image_set_id, series_instance_uid, with_frames)
        return SeriesChoice(series_instance_uid, counts[series_instance_uid], "requested by SeriesInstanceUID")
    if not with_frames:
        raise SeriesNotFound(image_set_id, None, [])
    chosen = max(with_frames, key=lambda uid: counts[uid])  # max keeps the first of equal counts
    if len(with_frames) == 1:
        reason = "the only series with frames"
    else:
        others = ", ".join(f"{uid} ({counts[uid]} frames)" for uid in with_frames if uid != chosen)
        reason = f"the series with most frames; also in the image set: {others}"
    return SeriesChoice(chosen, counts[chosen], reason)


def _full_resolution_checksum(frame: Mapping[str, Any]) -> int | None:
    levels = frame.get("PixelDataChecksumFromBaseToFullResolution") or []
    if not levels:
        return None
    # The list runs from the smallest resolution up; pick by width rather than trust the order.
    full = max(levels, key=lambda level: int(level.get("Width", 0)) * int(level.get("Height", 0)))
    checksum = full.get("Checksum")
    return None if checksum is None else int(checksum)


def _first_item(attributes: Mapping[str, Any], keyword: str) -> Mapping[str, Any]:
    items = attributes.get(keyword) or []
    return items[0] if items and isinstance(items[0], Mapping) else {}


def _pixel_format(attributes: Mapping[str, Any]) -> PixelFormat:
    bits_allocated = int(attributes.get("BitsAllocated") or 16)
    return PixelFormat(
        # A missing size reads 0 here; the geometry check then names the frame (InvalidSeriesError).
        rows=int(attributes.get("Rows") or 0),
        cols=int(attributes.get("Columns") or 0),
        bits_allocated=bits_allocated,
        bits_stored=int(attributes.get("BitsStored") or bits_allocated),
        signed=int(attributes.get("PixelRepresentation") or 0) == 1,
        samples_per_pixel=int(attributes.get("SamplesPerPixel") or 1),
    )


def _split_frame(attributes: Mapping[str, Any], index: int, sop_instance_uid: str) -> dict[str, Any]:
    """The header of frame ``index`` (0-based) of a multi-frame instance, as a single-frame instance."""
    frame = {key: value for key, value in attributes.items() if key not in _MULTI_FRAME_ONLY}
    per_frame_items = attributes.get("PerFrameFunctionalGroupsSequence") or []
    per_frame = per_frame_items[index] if index < len(per_frame_items) else {}
    shared = _first_item(attributes, "SharedFunctionalGroupsSequence")
    for group, keywords in _FUNCTIONAL_GROUPS:
        source = _first_item(per_frame, group) or _first_item(shared, group)
        for keyword in keywords:
            if source.get(keyword) is not None:
                frame[keyword] = source[keyword]
    if not _first_item(per_frame, "PlanePositionSequence") and index and "ImagePositionPatient" in frame:
        # Legacy multi-frame: frames are evenly spaced along the normal from the first frame's position.
        gap = float(frame.get("SpacingBetweenSlices") or frame.get("SliceThickness") or 0.0)
        orientation = np.asarray(frame.get("ImageOrientationPatient") or [1, 0, 0, 0, 1, 0], dtype=float)
        normal = slice_normal(orientation)
        position = np.asarray(frame["ImagePositionPatient"], dtype=float) + index * gap * normal
        frame["ImagePositionPatient"] = [f"{value:.6f}" for value in position]
    source_class = str(attributes.get("SOPClassUID", ""))
    frame["SOPClassUID"] = _SINGLE_FRAME_CLASS.get(source_class, source_class)
    frame["SOPInstanceUID"] = str(generate_uid(entropy_srcs=[sop_instance_uid, str(index + 1)]))
    frame["SourceImageSequence"] = [
        {
            "ReferencedSOPClassUID": source_class,
            "ReferencedSOPInstanceUID": sop_instance_uid,
            "ReferencedFrameNumber": str(index + 1),
        }
    ]
    return frame


def plan_frames(document: Mapping[str, Any], series_instance_uid: str) -> list[FramePlan]:
    """Every frame of one series, in document order (instances as listed, frames in frame order)."""
    series = _series_map(document)[series_instance_uid]
    shared: dict[str, Any] = {}
    for level in (document.get("Patient", {}), document.get("Study", {}), series):
        shared.update(level.get("DICOM") or {})
    plans = []
    for sop_instance_uid, instance in series.get("Instances", {}).items():
        frames = instance.get("ImageFrames") or []
        if not frames:
            continue  # a non-image instance (a report, a SEG without frames) has nothing to stack
        attributes = {**shared, **(instance.get("DICOM") or {})}
        attributes.setdefault("SOPInstanceUID", sop_instance_uid)
        vrs = dict(instance.get("DICOMVRs") or {})
        for index, frame in enumerate(frames):
            header = attributes if len(frames) == 1 else _split_frame(attributes, index, sop_instance_uid)
            plans.append(
                FramePlan(
                    frame_id=str(frame["ID"]),
                    sop_instance_uid=sop_instance_uid,
                    frame_number=index + 1,
                    checksum=_full_resolution_checksum(frame),
                    pixel_format=_pixel_format(header),
                    attributes=header,
                    vrs=vrs,
                )
            )
    return plans
