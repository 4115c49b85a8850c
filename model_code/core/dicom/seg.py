"""A label map as a DICOM SEG (highdicom): one segment per foreground label, one frame per source slice.

Segments are numbered 1..N in channel order over the model's foreground labels (channel 0 and "background"
carry none), each coded from ``metadata.segment_codes`` (resolved when the bundle loaded) or, for a description
without codes, the table of common structures (``model_code.core.segment_codes``).

Decision: empty frames are kept (``omit_empty_frames=False``). Every source instance then has
exactly one frame at its own ImagePositionPatient, in source order, so consumers that pair frames
with slices by position or by index both read it right, and a series with no spleen still yields a
valid SEG (rather than a file with no frames). A binary frame costs rows*cols/8 bytes; a 48-slice
512x512 series adds about 1.5 MB.
"""

from __future__ import annotations

import re

import highdicom as hd
import numpy as np
import pydicom
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from model_code.core.dicom.series import ImageSeries
from model_code.core.errors import InvalidSeriesError
from model_code.core.model_dir import ModelMetadata
from model_code.core.segment_codes import COMMON_STRUCTURES, SegmentCode, resolve_codes

MANUFACTURER = "MONAI Imaging Platform"
SEG_SERIES_NUMBER = 9001
# The spleen's codes, for the MONAI Deploy app's stock SEG writer (it takes one segment's codes directly).
SPLEEN_CATEGORY = COMMON_STRUCTURES["spleen"].category  # SCT 91723000
SPLEEN_TYPE = COMMON_STRUCTURES["spleen"].type  # SCT 78961009


def _long_string(text: str) -> str:
    """Fit a DICOM LO element (64 characters at most): a long model name or version must not fail the SEG."""
    return text[:64]


def build_segmentation(
    series: ImageSeries,
    mask: np.ndarray,
    *,
    metadata: ModelMetadata,
    series_instance_uid: str | None = None,
    sop_instance_uid: str | None = None,
) -> pydicom.Dataset:
    """A BINARY SEG over ``series``, one segment per foreground label of ``mask`` (uint8 channel indices, the
    series volume's shape); returned as a pydicom Dataset."""
    if mask.shape != series.volume.shape:
        raise ValueError(f"mask shape {mask.shape} must equal the series volume shape {series.volume.shape}")
    if not series.datasets:
        raise ValueError("the series carries no source datasets: a SEG must reference its source instances")
    algorithm = hd.AlgorithmIdentificationSequence(
        name=_long_string(metadata.name),
        version=_long_string(metadata.version),
        family=codes.cid7162.ArtificialIntelligence,
    )
    channels = segment_channels(metadata)
    descriptions = [
        _description(number, metadata.labels[channel], code, algorithm)
        for number, (channel, code) in enumerate(channels.items(), start=1)
    ]
    # Channel index -> segment number (0 stays background): the label map highdicom reads.
    lookup = np.zeros(max([*metadata.labels, *channels, int(mask.max(initial=0))]) + 1, dtype=np.uint8)
    for number, channel in enumerate(channels, start=1):
        lookup[channel] = number
    if mask.dtype == np.uint8 and np.array_equal(lookup, np.arange(lookup.size)):
        # Channel i is segment i already (a two-class model's 0/1 mask): the mask is the label map, and a
        # lookup would be a second copy of it beside highdicom's frames (a server's peak, issue 19).
        # highdicom reads the array, never writes it.
        pixels = mask
    else:
        # A boolean mask would index as a selection, not as channel numbers.
        pixels = lookup[mask if np.issubdtype(mask.dtype, np.integer) else mask.astype(np.uint8)]
    try:
        segmentation = _segmentation(series, pixels, descriptions, metadata, series_instance_uid, sop_instance_uid)
    except (AttributeError, KeyError, ValueError, TypeError) as error:
        # highdicom validates the source instances it references (their SOP class, UIDs, patient and study
        # attributes; a missing one is an AttributeError): a malformed header is the series' fault, not the
        # server's (issue 20's fuzz found both).
        raise InvalidSeriesError(f"the series' headers cannot be referenced by a SEG ({error})") from error
    return segmentation


def segment_channels(metadata: ModelMetadata) -> dict[int, SegmentCode]:
    """Foreground channel -> its code, in channel order: segment ``i + 1`` is the ``i``-th entry."""
    return dict(sorted((metadata.segment_codes or resolve_codes(metadata.labels)).items()))


def _description(
    number: int, label: str, code: SegmentCode, algorithm: hd.AlgorithmIdentificationSequence
) -> hd.seg.SegmentDescription:
    description = hd.seg.SegmentDescription(
        segment_number=number,
        segment_label=_long_string(label),
        segmented_property_category=code.category,
        segmented_property_type=code.type,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=algorithm,
    )
    if code.modifier is not None:
        # PS3.3 C.8.20.2: laterality qualifies the type inside its own code item; highdicom takes no argument.
        item = description.SegmentedPropertyTypeCodeSequence[0]
        item.SegmentedPropertyTypeModifierCodeSequence = [hd.sr.CodedConcept.from_code(code.modifier)]
    return description


def _segmentation(
    series: ImageSeries,
    pixels: np.ndarray,
    descriptions: list[hd.seg.SegmentDescription],
    metadata: ModelMetadata,
    series_instance_uid: str | None,
    sop_instance_uid: str | None,
) -> hd.seg.Segmentation:
    return hd.seg.Segmentation(
        # datasets[i] holds volume[i]: frame i of the mask lands on that instance's position.
        source_images=series.datasets,
        pixel_array=pixels,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=series_instance_uid or generate_uid(),
        series_number=SEG_SERIES_NUMBER,
        sop_instance_uid=sop_instance_uid or generate_uid(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        manufacturer_model_name=_long_string(metadata.name),
        software_versions=_long_string(metadata.version),
        device_serial_number="0",
        series_description=_long_string(f"{metadata.name} {metadata.version}"),
        content_label=_content_label(metadata),
        content_description=_long_string(f"{_segment_names(metadata)} by {metadata.name} {metadata.version}"),
        omit_empty_frames=False,
    )


def _segment_names(metadata: ModelMetadata) -> str:
    return ", ".join(metadata.labels[channel] for channel in segment_channels(metadata)) or "segmentation"


def _content_label(metadata: ModelMetadata) -> str:
    """A Code String (CS): upper case, digits, space and underscore, 16 characters at most."""
    names = [metadata.labels[channel] for channel in segment_channels(metadata)]
    text = names[0] if len(names) == 1 else "SEGMENTATION"
    return re.sub(r"[^A-Z0-9_ ]", "_", text.upper())[:16]
