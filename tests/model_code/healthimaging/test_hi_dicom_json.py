"""HealthImaging metadata JSON <-> pydicom: the real CT header survives the round trip; copies are independent."""

from __future__ import annotations

import pydicom
import pytest
from pydicom.data import get_testdata_file

from model_code.healthimaging.dicom_json import ElementCache, dataset_from_json, dataset_to_json


def _header(name: str) -> pydicom.Dataset:
    path = get_testdata_file(name)
    assert isinstance(path, str), f"pydicom's test file {name} is missing"
    dataset = pydicom.dcmread(path)
    del dataset.PixelData
    return dataset


@pytest.mark.parametrize(
    "name",
    [
        "J2K_pixelrep_mismatch.dcm",  # real CT: private tags (UN), multi-valued DS, empty values
        "CT_small.dcm",  # sequences and private elements with explicit VRs
    ],
)
def test_header_round_trips_through_healthimaging_json(name):
    original = _header(name)
    attributes, vrs = dataset_to_json(original)
    rebuilt = dataset_from_json(attributes, vrs, signed=original.get("PixelRepresentation", 0) == 1)
    for element in original:
        assert element.tag in rebuilt, f"{element.tag} {element.keyword} lost"
        assert rebuilt[element.tag].value == element.value, f"{element.tag} {element.keyword} changed"


@pytest.mark.parametrize(
    ("signed", "vr"),
    [
        (True, "SS"),  # PixelRepresentation 1: "US or SS" attributes are signed
        (False, "US"),
    ],
)
def test_ambiguous_vr_follows_pixel_representation(signed, vr):
    dataset = dataset_from_json({"SmallestImagePixelValue": 3}, signed=signed)
    assert vr == dataset["SmallestImagePixelValue"].VR


def test_unknown_keys_are_left_out_not_guessed():
    dataset = dataset_from_json({"NotAKeyword": "x", "00091001": "y", "Modality": "CT"})
    assert [element.keyword for element in dataset] == ["Modality"]  # private tag without a DICOMVRs entry


@pytest.mark.parametrize(
    "change",
    [
        lambda ds: setattr(ds, "PatientName", "Changed^Name"),  # a single value, replaced in place by pydicom
        lambda ds: ds.ImageOrientationPatient.__setitem__(0, 0.5),  # an item of a multi-valued attribute
    ],
)
def test_datasets_built_from_one_cache_do_not_share_elements(change):
    cache = ElementCache()
    attributes = {"PatientName": "Doe^Jane", "ImageOrientationPatient": ["1", "0", "0", "0", "1", "0"]}
    first, second = (dataset_from_json(attributes, cache=cache) for _ in range(2))
    change(first)
    assert first.PatientName != second.PatientName or first.ImageOrientationPatient != second.ImageOrientationPatient
    assert second.PatientName == "Doe^Jane"
    assert list(second.ImageOrientationPatient) == [1, 0, 0, 0, 1, 0]
