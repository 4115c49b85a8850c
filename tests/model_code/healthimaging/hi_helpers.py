"""Builders of tiny synthetic series for the HealthImaging connector's tests."""

from __future__ import annotations

import random
from typing import Any

import imagecodecs
import numpy as np
import pydicom
from pydicom.uid import generate_uid

CT_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.2"
ENHANCED_CT_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.2.1"


def synthetic_series(
    slices: int,
    *,
    dtype: str = "uint16",
    bits_stored: int | None = None,
    size: tuple[int, int] = (12, 10),
    slope: str = "1",
    intercept: str = "0",
    series_uid: str | None = None,
    study_uid: str = "1.2.3.4",
    gap: float = 2.5,
    seed: int = 0,
) -> tuple[list[pydicom.Dataset], list[np.ndarray]]:
    """``slices`` tiny axial single-frame instances (ascending z) and their stored values (random, full range)."""
    rng = np.random.default_rng(seed)
    info = np.iinfo(np.dtype(dtype))
    bits_stored = bits_stored or info.bits
    low, high = (
        (-(1 << (bits_stored - 1)), (1 << (bits_stored - 1)) - 1) if info.min < 0 else (0, (1 << bits_stored) - 1)
    )
    series_uid = series_uid or str(generate_uid(entropy_srcs=[dtype, str(slices), str(seed)]))
    datasets, arrays = [], []
    for index in range(slices):
        ds = pydicom.Dataset()
        ds.SOPClassUID = CT_SOP_CLASS
        ds.SOPInstanceUID = generate_uid(entropy_srcs=[series_uid, str(index)])
        ds.PatientName = "Phantom^Tiny"
        ds.PatientID = "TINY-1"
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.Modality = "CT"
        ds.SeriesNumber = 3
        ds.InstanceNumber = index + 1
        ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
        ds.ImagePositionPatient = ["-10.5", "20.25", f"{index * gap:.3f}"]
        ds.PixelSpacing = ["0.75", "0.5"]
        ds.SliceThickness = str(gap)
        ds.Rows, ds.Columns = size
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = info.bits
        ds.BitsStored = bits_stored
        ds.HighBit = bits_stored - 1
        ds.PixelRepresentation = 1 if info.min < 0 else 0
        ds.RescaleSlope = slope
        ds.RescaleIntercept = intercept
        datasets.append(ds)
        arrays.append(rng.integers(low, high, size=size, endpoint=True).astype(dtype))
    return datasets, arrays


def shuffled(items: list[Any], seed: int = 7) -> list[Any]:
    copy = list(items)
    random.Random(seed).shuffle(copy)
    return copy


def other_pixels(image_set, frame_id, *, shape=None):
    """A valid HTJ2K frame whose pixels differ from the stored one (same size unless ``shape`` is given)."""
    original = imagecodecs.htj2k_decode(image_set.frames[frame_id])
    changed = np.zeros(shape, original.dtype) if shape else original.copy()
    changed.flat[0] += 1
    return bytes(imagecodecs.htj2k_encode(changed, reversible=True))
