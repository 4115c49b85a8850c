"""What the results index needs from a DICOM SEG, read with the standard library (the functions carry no pydicom).

A BINARY SEG as ``model_code/core/dicom/seg.py`` writes it (highdicom, Explicit VR Little Endian, native pixel data):
the study, source series and SEG UIDs, the model that made it (ManufacturerModelName / SoftwareVersions), each
segment's label, and each segment's volume in mL: the set bits of its frames (PixelData packs rows x columns bits a
frame, frames back to back, DICOM PS3.5 section 8.1.1) times the voxel of the shared Pixel Measures
(PixelSpacing x SpacingBetweenSlices, or SliceThickness), in cubic millimetres / 1000.

Only what the walk needs is decoded; anything else a SEG holds is skipped by its length. A file this reader cannot
read (another transfer syntax, a FRACTIONAL SEG, a missing attribute) raises :class:`SegReadError` naming it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"
# VRs whose length is 4 bytes after 2 reserved ones (PS3.5 section 7.1.2); the others have a 2-byte length.
_LONG_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR", b"UT"})
_UNDEFINED = 0xFFFFFFFF
_ITEM, _ITEM_END, _SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD

TRANSFER_SYNTAX = 0x00020010
SOP_INSTANCE_UID = 0x00080018
MANUFACTURER_MODEL_NAME = 0x00081090
REFERENCED_SERIES = 0x00081115
SOFTWARE_VERSIONS = 0x00181020
SLICE_THICKNESS = 0x00180050
SPACING_BETWEEN_SLICES = 0x00180088
STUDY_INSTANCE_UID = 0x0020000D
SERIES_INSTANCE_UID = 0x0020000E
NUMBER_OF_FRAMES = 0x00280008
ROWS, COLUMNS = 0x00280010, 0x00280011
PIXEL_SPACING = 0x00280030
PIXEL_MEASURES = 0x00289110
SEGMENTATION_TYPE = 0x00620001
SEGMENT_SEQUENCE = 0x00620002
SEGMENT_NUMBER = 0x00620004
SEGMENT_LABEL = 0x00620005
SEGMENT_IDENTIFICATION = 0x0062000A
REFERENCED_SEGMENT_NUMBER = 0x0062000B
SHARED_GROUPS = 0x52009229
PER_FRAME_GROUPS = 0x52009230
PIXEL_DATA = 0x7FE00010

Dataset = dict[int, Any]  # tag -> bytes, or a list of Datasets for a sequence


class SegReadError(ValueError):
    """The object is not a SEG this reader can summarize: the message names what is missing or unsupported."""


@dataclass(frozen=True)
class SegSummary:
    study_instance_uid: str
    source_series_instance_uid: str
    seg_series_instance_uid: str
    seg_sop_instance_uid: str
    model_name: str
    model_version: str
    label_volumes_ml: dict[str, float]  # segment label -> volume in mL


def _parse(data: bytes, offset: int, end: int) -> tuple[Dataset, int]:
    """Elements from ``offset`` to ``end`` (or to an item delimiter): the dataset and where it stopped."""
    dataset: Dataset = {}
    while offset < end:
        group, element = struct.unpack_from("<HH", data, offset)
        tag = group << 16 | element
        if tag in (_ITEM_END, _SEQUENCE_END):
            return dataset, offset + 8
        vr = data[offset + 4 : offset + 6]
        if vr in _LONG_VRS:
            (length,) = struct.unpack_from("<I", data, offset + 8)
            offset += 12
        else:
            (length,) = struct.unpack_from("<H", data, offset + 6)
            offset += 8
        if vr == b"SQ":
            items, offset = _sequence(data, offset, length)
            dataset[tag] = items
            continue
        if length == _UNDEFINED:
            raise SegReadError(f"element ({group:04X},{element:04X}) has an undefined length (encapsulated data): "
                               "only native (uncompressed) SEGs can be indexed")
        dataset[tag] = data[offset : offset + length]
        offset += length
    return dataset, offset


def _sequence(data: bytes, offset: int, length: int) -> tuple[list[Dataset], int]:
    end = len(data) if length == _UNDEFINED else offset + length
    items: list[Dataset] = []
    while offset < end:
        group, element, item_length = struct.unpack_from("<HHI", data, offset)
        tag = group << 16 | element
        offset += 8
        if tag == _SEQUENCE_END:
            break
        if tag != _ITEM:
            raise SegReadError(f"expected a sequence item, found ({group:04X},{element:04X})")
        item_end = len(data) if item_length == _UNDEFINED else offset + item_length
        item, offset = _parse(data, offset, item_end)
        items.append(item)
    return items, offset


def _text(dataset: Dataset, tag: int, what: str) -> str:
    value = dataset.get(tag)
    if not isinstance(value, bytes):
        raise SegReadError(f"the SEG has no {what}")
    return value.decode("ascii", "replace").strip("\x00 ")


def _us(dataset: Dataset, tag: int, what: str) -> int:
    value = dataset.get(tag)
    if not isinstance(value, bytes) or len(value) < 2:
        raise SegReadError(f"the SEG has no {what}")
    return int(struct.unpack_from("<H", value)[0])


def _decimals(dataset: Dataset, tag: int) -> list[float]:
    value = dataset.get(tag)
    if not isinstance(value, bytes):
        return []
    return [float(part) for part in value.decode("ascii").strip("\x00 ").split("\\")]


def _items(dataset: Dataset, tag: int) -> list[Dataset]:
    value = dataset.get(tag)
    return value if isinstance(value, list) else []


def _voxel_ml(dataset: Dataset) -> float:
    """PixelSpacing x slice spacing of the SEG's Pixel Measures, shared or (the same for all) on the first frame."""
    groups = _items(dataset, SHARED_GROUPS) + _items(dataset, PER_FRAME_GROUPS)[:1]
    for group in groups:
        for measures in _items(group, PIXEL_MEASURES):
            spacing = _decimals(measures, PIXEL_SPACING)
            between = _decimals(measures, SPACING_BETWEEN_SLICES) or _decimals(measures, SLICE_THICKNESS)
            if len(spacing) == 2 and between:
                return abs(spacing[0] * spacing[1] * between[0]) / 1000.0
    raise SegReadError("the SEG has no Pixel Measures (PixelSpacing and SpacingBetweenSlices or SliceThickness)")


def read_seg(data: bytes) -> SegSummary:
    """The summary of a Part-10 BINARY SEG (128-byte preamble, "DICM", the file meta group, the dataset)."""
    if data[128:132] != b"DICM":
        raise SegReadError("not a DICOM Part-10 file (no DICM at byte 128)")
    dataset, _ = _parse(data, 132, len(data))
    syntax = _text(dataset, TRANSFER_SYNTAX, "TransferSyntaxUID")
    if syntax != EXPLICIT_VR_LITTLE_ENDIAN:
        raise SegReadError(f"transfer syntax {syntax} is not Explicit VR Little Endian ({EXPLICIT_VR_LITTLE_ENDIAN})")
    kind = _text(dataset, SEGMENTATION_TYPE, "SegmentationType")
    if kind != "BINARY":
        raise SegReadError(f"SegmentationType {kind} is not BINARY: only binary SEGs can be indexed")
    labels = {
        _us(segment, SEGMENT_NUMBER, "SegmentNumber"): _text(segment, SEGMENT_LABEL, "SegmentLabel")
        for segment in _items(dataset, SEGMENT_SEQUENCE)
    }
    if not labels:
        raise SegReadError("the SEG has no SegmentSequence")
    rows, columns = _us(dataset, ROWS, "Rows"), _us(dataset, COLUMNS, "Columns")
    frames = _items(dataset, PER_FRAME_GROUPS)
    count = int(_text(dataset, NUMBER_OF_FRAMES, "NumberOfFrames") or 0)
    if len(frames) != count:
        raise SegReadError(f"NumberOfFrames is {count} but {len(frames)} per-frame functional groups are present")
    pixels = dataset.get(PIXEL_DATA)
    bits_per_frame = rows * columns
    if not isinstance(pixels, bytes) or len(pixels) * 8 < bits_per_frame * count:
        raise SegReadError(f"PixelData holds fewer than {count} frames of {rows}x{columns} bits")
    # Bit i of the pixel data is bit (i % 8) of byte i // 8: the whole as one little-endian integer keeps that order.
    bits = int.from_bytes(pixels, "little")
    mask = (1 << bits_per_frame) - 1
    voxels = dict.fromkeys(labels, 0)
    # With one segment, highdicom names it once in the shared groups rather than in every frame's.
    shared = [item for group in _items(dataset, SHARED_GROUPS) for item in _items(group, SEGMENT_IDENTIFICATION)]
    for index, frame in enumerate(frames):
        (identification,) = (_items(frame, SEGMENT_IDENTIFICATION) or shared)[:1] or [{}]
        segment = _us(identification, REFERENCED_SEGMENT_NUMBER, f"ReferencedSegmentNumber of frame {index + 1}")
        if segment not in voxels:
            raise SegReadError(f"frame {index + 1} references segment {segment}, which the SegmentSequence lacks")
        voxels[segment] += ((bits >> (index * bits_per_frame)) & mask).bit_count()
    voxel_ml = _voxel_ml(dataset)
    (source_series, *_) = _items(dataset, REFERENCED_SERIES) or [{}]
    return SegSummary(
        study_instance_uid=_text(dataset, STUDY_INSTANCE_UID, "StudyInstanceUID"),
        source_series_instance_uid=_text(source_series, SERIES_INSTANCE_UID, "ReferencedSeriesSequence"),
        seg_series_instance_uid=_text(dataset, SERIES_INSTANCE_UID, "SeriesInstanceUID"),
        seg_sop_instance_uid=_text(dataset, SOP_INSTANCE_UID, "SOPInstanceUID"),
        model_name=_text(dataset, MANUFACTURER_MODEL_NAME, "ManufacturerModelName (the model name)"),
        model_version=_text(dataset, SOFTWARE_VERSIONS, "SoftwareVersions (the model version)"),
        label_volumes_ml={labels[n]: round(voxels[n] * voxel_ml, 3) for n in sorted(labels)},
    )
