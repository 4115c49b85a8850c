"""Write a loaded series as DICOM Part-10 files (explicit VR little endian, uncompressed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pydicom
from pydicom.dataset import FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian

from model_code.core.dicom.series import ImageSeries


def write_part10(series: ImageSeries | Sequence[pydicom.Dataset], directory: str | Path) -> list[Path]:
    """One file per slice, ``<index>_<SOPInstanceUID>.dcm`` in volume order; returns the paths written.

    The index prefix keeps a directory listing in slice order. Existing files of the same name are replaced.
    """
    datasets = series.datasets if isinstance(series, ImageSeries) else list(series)
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    width = max(4, len(str(len(datasets))))
    paths = []
    for index, dataset in enumerate(datasets):
        if "PixelData" not in dataset:
            raise ValueError(f"dataset {index} has no pixel data: load the series before writing it")
        meta = FileMetaDataset(getattr(dataset, "file_meta", FileMetaDataset()))
        meta.MediaStorageSOPClassUID = dataset.SOPClassUID
        meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = meta.get("ImplementationClassUID", PYDICOM_IMPLEMENTATION_UID)
        dataset.file_meta = meta
        path = target / f"{index:0{width}d}_{dataset.SOPInstanceUID}.dcm"
        dataset.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths
