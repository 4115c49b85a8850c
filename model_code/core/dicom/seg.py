"""The spleen mask as a DICOM SEG (highdicom), one frame per source slice.

Decision: empty frames are kept (``omit_empty_frames=False``). Every source instance then has
exactly one frame at its own ImagePositionPatient, in source order, so consumers that pair frames
with slices by position or by index both read it right, and a series with no spleen still yields a
valid SEG (rather than a file with no frames). A binary frame costs rows*cols/8 bytes; a 48-slice
512x512 series adds about 1.5 MB.
"""

from __future__ import annotations

import highdicom as hd
import numpy as np
import pydicom
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from model_code.core.dicom.series import ImageSeries
from model_code.core.errors import InvalidSeriesError
from model_code.core.model_dir import ModelMetadata
from model_code.core.spleen import SPLEEN_LABEL

MANUFACTURER = "MONAI Imaging Platform"
SEG_SERIES_NUMBER = 9001
# SNOMED CT codes, as the DICOM segmentation templates (CID 7150/7166) use them.
SPLEEN_CATEGORY = codes.cid7150.AnatomicalStructure  # SCT 91723000
SPLEEN_TYPE = codes.SCT.Spleen  # SCT 78961009


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
    """A BINARY SEG over ``series`` with one segment (spleen); returned as a pydicom Dataset."""
    if mask.shape != series.volume.shape:
        raise ValueError(f"mask shape {mask.shape} must equal the series volume shape {series.volume.shape}")
    if not series.datasets:
        raise ValueError("the series carries no source datasets: a SEG must reference its source instances")
    algorithm = hd.AlgorithmIdentificationSequence(
        name=_long_string(metadata.name),
        version=_long_string(metadata.version),
        family=codes.cid7162.ArtificialIntelligence,
    )
    description = hd.seg.SegmentDescription(
        segment_number=1,
        segment_label=metadata.labels.get(SPLEEN_LABEL, "spleen"),
        segmented_property_category=SPLEEN_CATEGORY,
        segmented_property_type=SPLEEN_TYPE,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=algorithm,
    )
    try:
        segmentation = _segmentation(series, mask, description, metadata, series_instance_uid, sop_instance_uid)
    except (AttributeError, KeyError, ValueError, TypeError) as error:
        # highdicom validates the source instances it references (their SOP class, UIDs, patient and study
        # attributes; a missing one is an AttributeError): a malformed header is the series' fault, not the
        # server's (issue 20's fuzz found both).
        raise InvalidSeriesError(f"the series' headers cannot be referenced by a SEG ({error})") from error
    return segmentation


def _segmentation(
    series: ImageSeries,
    mask: np.ndarray,
    description: hd.seg.SegmentDescription,
    metadata: ModelMetadata,
    series_instance_uid: str | None,
    sop_instance_uid: str | None,
) -> hd.seg.Segmentation:
    return hd.seg.Segmentation(
        # datasets[i] holds volume[i]: frame i of the mask lands on that instance's position.
        source_images=series.datasets,
        pixel_array=(mask == SPLEEN_LABEL).astype(np.uint8),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[description],
        series_instance_uid=series_instance_uid or generate_uid(),
        series_number=SEG_SERIES_NUMBER,
        sop_instance_uid=sop_instance_uid or generate_uid(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        manufacturer_model_name=_long_string(metadata.name),
        software_versions=_long_string(metadata.version),
        device_serial_number="0",
        series_description=_long_string(f"{metadata.name} {metadata.version}"),
        content_label="SPLEEN",
        content_description=_long_string(f"Spleen segmentation by {metadata.name} {metadata.version}"),
        omit_empty_frames=False,
    )
