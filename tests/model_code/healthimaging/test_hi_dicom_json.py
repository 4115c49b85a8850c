"""HealthImaging metadata JSON <-> pydicom: the real CT header survives the round trip; copies are independent."""

from __future__ import annotations

import pydicom
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom import DataElement
from pydicom.data import get_testdata_file
from pydicom.dataelem import convert_raw_data_element
from pydicom.tag import BaseTag

from model_code.healthimaging.dicom_json import (
    ElementCache,
    dataset_from_json,
    dataset_to_json,
    encoded_element,
    plain_text_element,
)


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


_TAGS = {"UI": 0x00080018, "IS": 0x00200013, "DS": 0x00200032}
_TEXT = {
    "UI": st.lists(st.integers(0, 10**12), min_size=1, max_size=6).map(lambda parts: ".".join(map(str, parts))),
    "IS": st.one_of(st.integers(-(10**10), 10**10), st.from_regex(r"[+-]?[0-9]{1,10}", fullmatch=True)),
    "DS": st.one_of(
        st.floats(-1e6, 1e6, allow_nan=False).map(lambda x: f"{x:.6g}"),
        st.from_regex(r"[+-]?[0-9]{1,6}(\.[0-9]{0,6})?", fullmatch=True),
    ),
}


@settings(max_examples=150, deadline=None)
@given(data=st.data(), vr=st.sampled_from(sorted(_TAGS)))
def test_plain_text_elements_read_back_as_pydicoms_own(data, vr):
    # pydicom is the authority: the element it writes and reads back for the same value must be the one made
    # from the text, byte for byte and value for value.
    value = data.draw(st.one_of(_TEXT[vr], st.lists(_TEXT[vr], min_size=1, max_size=3)))
    tag = BaseTag(_TAGS[vr])
    raw = plain_text_element(tag, vr, value)
    reference = encoded_element(DataElement(tag, vr, value))
    if raw is None:  # refused: only values pydicom would warn about (too long) may be
        assert any(
            len(str(item)) > {"UI": 64, "IS": 12, "DS": 16}[vr]
            for item in (value if isinstance(value, list) else [value])
        )
        return
    assert reference is not None
    assert raw.value == reference.value
    ours, theirs = convert_raw_data_element(raw).value, convert_raw_data_element(reference).value
    assert type(ours) is type(theirs)
    assert ours == theirs
    assert str(ours) == str(theirs)


@pytest.mark.parametrize(
    ("vr", "value"),
    [
        ("UI", "1.2.a"),  # not a UID
        ("UI", "1.02.3"),  # a component with a leading zero (PS3.5 9.1): pydicom warns
        ("UI", "1." * 40 + "1"),  # longer than 64
        ("IS", " 12"),  # padding is pydicom's to strip: keep the general path
        ("IS", "1234567890123"),  # longer than 12
        ("IS", True),
        ("DS", 1.5),  # a number, not text: pydicom formats it
        ("DS", "12345678901234567"),  # longer than 16
        ("DS", "1,5"),
        ("DS", []),
        ("DS", ""),
        ("LO", "text"),  # not a VR this path handles
    ],
)
def test_plain_text_elements_refuse_what_pydicom_must_judge(vr, value):
    assert plain_text_element(BaseTag(0x00200032), vr, value) is None
