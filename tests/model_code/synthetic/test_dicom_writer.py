"""write_dicom_series: valid CT/MR Part-10 files whose headers reproduce the volume and its affine."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, MRImageStorage

from model_code.core.dicom.series import series_from_datasets
from model_code.synthetic.dicom_writer import write_dicom_series
from model_code.synthetic.phantom import make_phantom

GEOMETRIES = [
    # (orientation, descending, shuffle_names, spacing)
    ("axial", False, False, (2.5, 1.5, 1.5)),  # the common case
    ("axial", True, True, (3.0, 0.8, 0.8)),  # head-to-feet, files named out of order
    ("sagittal", False, True, (2.0, 1.2, 0.7)),  # non-square pixels
    ("coronal", True, False, (1.5, 2.0, 1.0)),
]


@pytest.mark.parametrize(("orientation", "descending", "shuffle", "spacing"), GEOMETRIES)
def test_round_trip_reproduces_volume_and_geometry(tmp_path, orientation, descending, shuffle, spacing):
    phantom = make_phantom(shape=(6, 20, 16), spacing=spacing, orientation=orientation, descending=descending)
    paths = write_dicom_series(phantom.volume_hu, phantom.affine, tmp_path, shuffle_names=shuffle)
    assert len(paths) == 6
    if shuffle:
        assert sorted(paths) != paths  # name order no longer follows slice order
    series = series_from_datasets([pydicom.dcmread(p) for p in paths])

    # The loader sorts ascending along the normal: a descending acquisition comes back reversed.
    expected = phantom.volume_hu[::-1] if descending else phantom.volume_hu
    assert np.abs(series.volume - expected).max() <= 0.5  # integer HU storage
    expected_affine = phantom.affine.copy()
    if descending:
        # The last acquired slice becomes slice 0 and the slice axis turns around.
        expected_affine[:3, 3] = (phantom.affine @ np.array([5.0, 0.0, 0.0, 1.0]))[:3]
        expected_affine[:3, 0] = -phantom.affine[:3, 0]
    assert series.affine == pytest.approx(expected_affine, abs=1e-6)
    assert series.spacing == pytest.approx(spacing)


@pytest.mark.parametrize(
    ("modality", "sop_class", "rescaled"),
    [
        ("CT", CTImageStorage, True),  # HU via RescaleIntercept -1024
        ("MR", MRImageStorage, False),  # the MR IOD has no modality LUT
    ],
)
def test_files_are_valid_part10(tmp_path, dciodvfy, modality, sop_class, rescaled):
    phantom = make_phantom(shape=(2, 16, 16))
    paths = write_dicom_series(phantom.volume_hu, phantom.affine, tmp_path, modality=modality, patient_id="P-7")
    dataset = pydicom.dcmread(paths[0])
    assert dataset.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert dataset.SOPClassUID == sop_class
    assert dataset.PatientID == "P-7"
    assert ("RescaleIntercept" in dataset) is rescaled
    assert dataset.pixel_array.dtype == np.int16
    for path in paths:
        assert dciodvfy(path) == []


def test_uids_are_shared_or_given(tmp_path):
    phantom = make_phantom(shape=(3, 8, 8))
    paths = write_dicom_series(phantom.volume_hu, phantom.affine, tmp_path, study_uid="1.2.3", series_uid="1.2.3.4")
    datasets = [pydicom.dcmread(p) for p in paths]
    assert {ds.StudyInstanceUID for ds in datasets} == {"1.2.3"}
    assert {ds.SeriesInstanceUID for ds in datasets} == {"1.2.3.4"}
    assert len({ds.FrameOfReferenceUID for ds in datasets}) == 1
    assert len({ds.SOPInstanceUID for ds in datasets}) == 3
    assert [int(ds.InstanceNumber) for ds in datasets] == [1, 2, 3]


@pytest.mark.parametrize(
    ("volume_shape", "affine", "modality", "message"),
    [
        ((4, 4), np.eye(4), "CT", "volume_hu must be"),
        ((2, 4, 4), np.eye(3), "CT", "affine must be 4x4"),
        ((2, 4, 4), np.eye(4), "US", "modality must be one of"),
    ],
)
def test_invalid_arguments(tmp_path, volume_shape, affine, modality, message):
    with pytest.raises(ValueError, match=message):
        write_dicom_series(np.zeros(volume_shape, np.float32), affine, tmp_path, modality=modality)
