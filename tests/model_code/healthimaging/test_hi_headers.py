"""Per-frame headers from what a series shares: the same datasets as converting every frame on its own."""

from __future__ import annotations

import pydicom
import pytest

from model_code.healthimaging.dicom_json import dataset_from_json
from model_code.healthimaging.document import choose_series, plan_frames
from model_code.healthimaging.headers import SeriesHeaders, shared_keys
from testkit.healthimaging import build_image_set
from tests.model_code.healthimaging.hi_helpers import synthetic_series


def _plans(datasets, arrays):
    image_set = build_image_set(datasets, pixel_arrays=arrays)
    return plan_frames(image_set.document, choose_series(image_set.document).series_instance_uid)


def _elements(dataset: pydicom.Dataset) -> list[tuple[int, str, object]]:
    return [(int(element.tag), element.VR, element.value) for element in dataset]


def test_headers_equal_a_conversion_of_each_frame_on_its_own(ct_slices):
    plans = _plans(*ct_slices)
    headers = SeriesHeaders(plans)
    for plan in plans:
        built = headers.build(plan)
        alone = dataset_from_json(plan.attributes, plan.vrs, signed=plan.pixel_format.signed)
        assert _elements(built) == _elements(alone)
        assert built.file_meta.MediaStorageSOPInstanceUID == plan.attributes["SOPInstanceUID"]
        assert built.file_meta.MediaStorageSOPClassUID == plan.attributes["SOPClassUID"]
        assert built.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian


def test_only_what_varies_is_converted_per_frame(ct_slices):
    plans = _plans(*ct_slices)
    varying = set(plans[0].attributes) - shared_keys(plans)
    assert varying == {"SOPInstanceUID", "InstanceNumber", "ImagePositionPatient"}


def test_an_attribute_that_differs_in_one_frame_keeps_its_own_value():
    datasets, arrays = synthetic_series(4)
    datasets[2].WindowCenter = "40"
    for other in (0, 1, 3):
        datasets[other].WindowCenter = "50"
    plans = _plans(datasets, arrays)
    assert "WindowCenter" not in shared_keys(plans)
    built = [SeriesHeaders(plans).build(plan) for plan in plans]
    assert [float(ds.WindowCenter) for ds in built] == [50, 50, 40, 50]


def test_equal_values_of_another_json_type_are_not_shared():
    plans = _plans(*synthetic_series(3))
    assert "SeriesNumber" in shared_keys(plans)
    plans[1].attributes["SeriesNumber"] = float(plans[0].attributes["SeriesNumber"])  # 3.0 == 3, but not an IS
    assert "SeriesNumber" not in shared_keys(plans)


@pytest.mark.parametrize(
    "change",
    [
        lambda ds: setattr(ds, "PatientName", "Changed^Name"),
        lambda ds: ds.ImageOrientationPatient.__setitem__(0, 0.5),
        lambda ds: setattr(ds.file_meta, "TransferSyntaxUID", pydicom.uid.ImplicitVRLittleEndian),
    ],
)
def test_frames_do_not_share_mutable_elements(ct_slices, change):
    plans = _plans(*ct_slices)
    headers = SeriesHeaders(plans)
    first, second = headers.build(plans[0]), headers.build(plans[1])
    change(first)
    assert second.PatientName == plans[1].attributes["PatientName"]
    assert list(second.ImageOrientationPatient) == [float(v) for v in plans[1].attributes["ImageOrientationPatient"]]
    assert second.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    assert headers.build(plans[0]).PatientName == plans[0].attributes["PatientName"]
