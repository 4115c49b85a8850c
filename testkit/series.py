"""Synthetic series zips with their truth, and a SEG read back onto the series: what the serving tests post."""

from __future__ import annotations

import io
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
from pydicom.uid import generate_uid

from model_code.synthetic.dicom_writer import write_dicom_series
from model_code.synthetic.phantom import make_phantom


@dataclass(frozen=True)
class SeriesZip:
    """A zipped synthetic CT series with its truth: the organ mask, in the order of ``sop_instance_uids``."""

    payload: bytes
    series_instance_uid: str
    sop_instance_uids: tuple[str, ...]
    mask: np.ndarray


def series_zip(
    *,
    shape: tuple[int, int, int] = (16, 48, 48),
    spacing: tuple[float, float, float] = (2.5, 2.0, 2.0),
    seed: int = 0,
    patient_id: str = "PHANTOM-001",
    extra_files: Sequence[tuple[str, bytes]] = (),
) -> SeriesZip:
    """A zip of one synthetic CT series (phantom with a spleen-like organ), slices ascending."""
    phantom = make_phantom(shape=shape, spacing=spacing, seed=seed)
    series_uid = generate_uid()
    buffer = io.BytesIO()
    with tempfile.TemporaryDirectory() as folder:
        paths = write_dicom_series(
            phantom.volume_hu, phantom.affine, Path(folder), patient_id=patient_id, series_uid=series_uid, seed=seed
        )
        sop_uids = tuple(str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID) for path in paths)
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
            for path in paths:
                archive.write(path, arcname=f"series/{path.name}")
            for name, data in extra_files:
                archive.writestr(name, data)
    return SeriesZip(buffer.getvalue(), series_uid, sop_uids, np.asarray(phantom.mask, dtype=bool))


def seg_mask(seg_bytes: bytes, sop_instance_uids: Sequence[str]) -> np.ndarray:
    """The SEG's first segment as a (slices, rows, cols) bool mask, slices in ``sop_instance_uids`` order."""
    seg = hd.seg.segread(io.BytesIO(seg_bytes))
    referenced = {
        str(item.ReferencedSOPInstanceUID) for item in seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence
    }
    pixels = seg.get_pixels_by_source_instance(
        source_sop_instance_uids=[uid for uid in sop_instance_uids if uid in referenced],
        segment_numbers=[1],
        combine_segments=True,
    )
    mask = np.zeros((len(sop_instance_uids), *pixels.shape[1:3]), dtype=bool)
    index = {uid: i for i, uid in enumerate(sop_instance_uids)}
    for row, uid in enumerate(uid for uid in sop_instance_uids if uid in referenced):
        mask[index[uid]] = pixels[row] > 0
    return mask


def dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int(np.logical_and(a, b).sum()) / total


def zip_datasets(payload: bytes) -> list[pydicom.Dataset]:
    """The DICOM datasets of a series zip (for building a HealthImaging image set or an S3 prefix)."""
    with zipfile.ZipFile(io.BytesIO(payload)) as archive:
        return [pydicom.dcmread(io.BytesIO(archive.read(name))) for name in sorted(archive.namelist())]


def zip_members(payload: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(payload)) as archive:
        return {name: archive.read(name) for name in sorted(archive.namelist())}
