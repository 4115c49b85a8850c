"""Write a volume as a single-frame DICOM series (one Part-10 file per slice).

Used to build test fixtures and benchmark inputs from phantoms or real slices. Geometry comes
from the affine (voxel (slice, row, col) -> LPS mm), so a series written here and read back by
:func:`model_code.core.dicom.files.load_series` reproduces the affine (slices sorted ascending).
"""

from __future__ import annotations

import datetime
import random
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, MRImageStorage, generate_uid

# CT scanners store unsigned-looking values shifted by 1024; we keep signed int16 with the same
# intercept so air (-1000 HU) and dense bone (up to ~31000 HU) both fit.
_RESCALE_INTERCEPT = -1024.0
_RESCALE_SLOPE = 1.0
_SOP_CLASSES = {"CT": CTImageStorage, "MR": MRImageStorage}


def _unit(vector: np.ndarray, what: str) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    if norm == 0.0:
        raise ValueError(f"the affine's {what} axis has zero length: it cannot describe a slice grid")
    return vector / norm


def _ds_decimal(value: float) -> str:
    # DS values are at most 16 characters; 10 significant digits keeps sub-micron precision.
    return f"{value:.10g}"


def _stored_values(slice_hu: np.ndarray, *, rescaled: bool) -> np.ndarray:
    stored = np.rint((slice_hu - _RESCALE_INTERCEPT) / _RESCALE_SLOPE) if rescaled else np.rint(slice_hu)
    info = np.iinfo(np.int16)
    return np.clip(stored, info.min, info.max).astype(np.int16)


def _modality_attributes(ds: pydicom.Dataset, modality: str) -> None:
    """Attributes the CT/MR Image modules require (type 1 given a value, type 2 present)."""
    if modality == "CT":
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.KVP = "120"
        ds.AcquisitionNumber = "1"
    else:
        ds.ImageType = ["ORIGINAL", "PRIMARY", "OTHER"]
        ds.ScanningSequence = "SE"
        ds.SequenceVariant = "NONE"
        ds.ScanOptions = ""
        ds.MRAcquisitionType = "3D"
        ds.RepetitionTime = "500"
        ds.EchoTime = "10"
        ds.EchoTrainLength = "1"
        ds.MagneticFieldStrength = "1.5"
        ds.ImagedNucleus = "1H"
        ds.AcquisitionNumber = "1"


def write_dicom_series(
    volume_hu: np.ndarray,
    affine: np.ndarray,
    out_dir: Path,
    *,
    modality: str = "CT",
    patient_id: str = "PHANTOM-001",
    patient_name: str = "Phantom^Spleen",
    study_uid: str | None = None,
    series_uid: str | None = None,
    frame_of_reference_uid: str | None = None,
    series_description: str = "Synthetic phantom",
    shuffle_names: bool = False,
    seed: int = 0,
) -> list[Path]:
    """Write ``volume_hu[i]`` as instance ``i + 1``; return the paths in volume order.

    Files are Part-10, explicit VR little endian, int16 stored values with RescaleSlope/Intercept.
    ``shuffle_names`` gives the files random-order names (``seed``), so a loader that trusts
    file-name order instead of geometry gets the volume wrong.
    """
    volume = np.asarray(volume_hu)
    if volume.ndim != 3:
        raise ValueError(f"volume_hu must be (slices, rows, cols), got shape {volume.shape}")
    if affine.shape != (4, 4):
        raise ValueError(f"affine must be 4x4, got shape {affine.shape}")
    if modality not in _SOP_CLASSES:
        raise ValueError(f"modality must be one of {sorted(_SOP_CLASSES)}, got {modality!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    slices, rows, cols = volume.shape
    row_dir = _unit(affine[:3, 2], "column")
    col_dir = _unit(affine[:3, 1], "row")
    pixel_spacing = [float(np.linalg.norm(affine[:3, 1])), float(np.linalg.norm(affine[:3, 2]))]
    slice_gap = float(np.linalg.norm(affine[:3, 0]))
    study_uid = study_uid or generate_uid()
    series_uid = series_uid or generate_uid()
    frame_of_reference_uid = frame_of_reference_uid or generate_uid()
    now = datetime.datetime(2024, 1, 1, 12, 0, 0)  # fixed: fixtures must be reproducible

    names = [f"slice_{i:04d}.dcm" for i in range(slices)]
    if shuffle_names:
        order = list(range(slices))
        random.Random(seed).shuffle(order)  # noqa: S311 (fixture names, not secrets)
        names = [f"img_{order[i]:04d}_{generate_uid()[-6:]}.dcm" for i in range(slices)]

    paths: list[Path] = []
    for index in range(slices):
        sop_uid = generate_uid()
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = _SOP_CLASSES[modality]
        meta.MediaStorageSOPInstanceUID = sop_uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = pydicom.uid.PYDICOM_IMPLEMENTATION_UID

        ds = pydicom.Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = _SOP_CLASSES[modality]
        ds.SOPInstanceUID = sop_uid
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.PatientName = patient_name
        ds.PatientID = patient_id
        ds.PatientBirthDate = ""
        ds.PatientSex = "O"
        ds.StudyInstanceUID = study_uid
        ds.StudyDate = ds.SeriesDate = ds.ContentDate = now.strftime("%Y%m%d")
        ds.StudyTime = ds.SeriesTime = ds.ContentTime = now.strftime("%H%M%S")
        ds.ReferringPhysicianName = ""
        ds.StudyID = "1"
        ds.AccessionNumber = ""
        ds.Modality = modality
        ds.SeriesInstanceUID = series_uid
        ds.SeriesNumber = "1"
        ds.SeriesDescription = series_description
        ds.PatientPosition = "HFS"
        # Naming an unpaired body part lets Laterality (type 2C) be absent, as dciodvfy expects.
        ds.BodyPartExamined = "ABDOMEN"
        ds.FrameOfReferenceUID = frame_of_reference_uid
        ds.PositionReferenceIndicator = ""
        ds.Manufacturer = "MONAI Imaging Platform phantom"
        ds.InstanceNumber = str(index + 1)
        ds.PatientOrientation = ""
        _modality_attributes(ds, modality)

        position = affine @ np.array([index, 0.0, 0.0, 1.0])
        ds.ImagePositionPatient = [_ds_decimal(v) for v in position[:3]]
        ds.ImageOrientationPatient = [_ds_decimal(v) for v in (*row_dir, *col_dir)]
        ds.PixelSpacing = [_ds_decimal(v) for v in pixel_spacing]
        ds.SliceThickness = _ds_decimal(slice_gap)
        ds.SliceLocation = _ds_decimal(float(position[:3] @ np.cross(row_dir, col_dir)))

        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows = rows
        ds.Columns = cols
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1
        # The MR Image IOD has no Modality LUT: MR values are stored as they are.
        rescaled = modality == "CT"
        if rescaled:
            ds.RescaleIntercept = _ds_decimal(_RESCALE_INTERCEPT)
            ds.RescaleSlope = _ds_decimal(_RESCALE_SLOPE)
            ds.RescaleType = "HU"
        ds.WindowCenter = "40"
        ds.WindowWidth = "400"
        ds.PixelData = _stored_values(volume[index], rescaled=rescaled).tobytes()

        path = out_dir / names[index]
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths
