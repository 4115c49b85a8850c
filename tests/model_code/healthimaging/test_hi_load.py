"""load_image_set against the real service model (Stubber): round trip, order, series choice, multi-frame."""

from __future__ import annotations

import logging

import numpy as np
import pydicom
import pytest

from model_code.core.dicom import InvalidSeriesError, series_from_datasets
from model_code.healthimaging import SeriesNotFound, load_image_set
from testkit.healthimaging import build_image_set, stub_load
from tests.model_code.healthimaging.hi_helpers import ENHANCED_CT_SOP_CLASS, shuffled, synthetic_series


def _expected(datasets, arrays):
    """What the shared loader makes of the same instances and stored values."""
    return series_from_datasets(datasets, pixel_arrays=arrays)


def _assert_same_series(loaded, expected, arrays_by_uid):
    assert loaded.volume.dtype == expected.volume.dtype  # int16 for an exact integer rescale, else float32
    np.testing.assert_array_equal(loaded.volume, expected.volume)  # bit-exact, same order
    np.testing.assert_allclose(loaded.affine, expected.affine, atol=1e-6)
    assert loaded.spacing == pytest.approx(expected.spacing)
    assert [str(ds.SOPInstanceUID) for ds in loaded.datasets] == [str(ds.SOPInstanceUID) for ds in expected.datasets]
    for dataset in loaded.datasets:
        stored = arrays_by_uid[str(dataset.SOPInstanceUID)]
        assert dataset.PixelData == stored.astype(stored.dtype.newbyteorder("<")).tobytes()
        np.testing.assert_array_equal(dataset.pixel_array, stored)  # the rebuilt header describes its pixels


@pytest.mark.parametrize(
    ("kind", "slope", "intercept"),
    [
        ("ct", None, None),  # real signed 13-bit CT slices, HU via the file's own rescale
        ("uint16", "1", "-1024"),  # unsigned 16-bit with a CT-style intercept
        ("int16", "2.5", "-7"),  # signed, non-unit slope
        ("uint8", "1", "0"),  # 8-bit samples (OB pixel data)
        ("int16-12bit", "1", "0"),  # signed 12 bits stored in 16
        ("uint16-12bit", "1", "-1024"),  # unsigned 12-bit CT: int16 volume, shifted in place in int16 arithmetic
        ("int16", "1", "-1024"),  # full-range signed with a shift: frames leave int16, the volume is float32
        # Signed CT whose codestream holds unsigned 13-bit samples (as pydicom's J2K_pixelrep_mismatch.dcm
        # does): the header's PixelRepresentation wins and values are sign-extended from BitsStored.
        ("ct-unsigned-samples", None, None),
    ],
)
def test_round_trip_is_bit_exact_in_slice_order(stubbed, ct_slices, kind, slope, intercept):
    encoded = None
    if kind.startswith("ct"):
        datasets, arrays = ct_slices
        if kind == "ct-unsigned-samples":
            bits = int(datasets[0].BitsStored)
            encoded = [(array.astype(np.int32) & ((1 << bits) - 1)).astype(np.uint16) for array in arrays]
            assert any(e.max() >= 1 << (bits - 1) for e in encoded)  # some samples only make sense signed
    elif kind.endswith("-12bit"):
        datasets, arrays = synthetic_series(5, dtype=kind.split("-")[0], bits_stored=12, intercept=intercept or "0")
    else:
        datasets, arrays = synthetic_series(5, dtype=kind, slope=slope, intercept=intercept)
    order = shuffled(list(range(len(datasets))))  # instances arrive out of slice order
    stored = encoded or arrays
    image_set = build_image_set([datasets[i] for i in order], pixel_arrays=[stored[i] for i in order])
    client, stubber = stubbed
    stub_load(stubber, image_set)

    loaded = load_image_set(client, image_set.datastore_id, image_set.image_set_id, max_workers=1)

    arrays_by_uid = {str(ds.SOPInstanceUID): array for ds, array in zip(datasets, arrays, strict=True)}
    _assert_same_series(loaded, _expected(datasets, arrays), arrays_by_uid)
    assert loaded.metadata == image_set.document
    positions = loaded.slice_positions @ np.cross(*np.reshape(loaded.datasets[0].ImageOrientationPatient, (2, 3)))
    assert np.all(np.diff(positions) > 0)  # ascending along the slice normal


def test_ct_volume_is_in_hounsfield_units(stubbed, ct_slices):
    datasets, arrays = ct_slices
    image_set = build_image_set(datasets, pixel_arrays=arrays)
    client, stubber = stubbed
    stub_load(stubber, image_set)
    loaded = load_image_set(client, image_set.datastore_id, image_set.image_set_id, max_workers=1)
    assert loaded.modality == "CT"
    assert loaded.volume.min() < -1000 < 0 < loaded.volume.max()  # air and tissue of the real head CT


@pytest.mark.parametrize(
    ("requested", "expected_series", "reason"),
    [
        (None, "big", "the series with most frames"),  # default: the larger series, and the log says so
        ("small", "small", "requested by SeriesInstanceUID"),  # an explicit UID wins over size
    ],
)
def test_image_set_with_several_series(stubbed, caplog, requested, expected_series, reason):
    small = synthetic_series(2, series_uid="1.2.3.4.1", seed=1)
    big = synthetic_series(4, series_uid="1.2.3.4.2", seed=2)
    image_set = build_image_set(small[0] + big[0], pixel_arrays=small[1] + big[1])
    uid = {"small": "1.2.3.4.1", "big": "1.2.3.4.2"}
    client, stubber = stubbed
    stub_load(stubber, image_set, series_instance_uid=uid[requested] if requested else None)

    with caplog.at_level(logging.INFO, logger="model_code.healthimaging"):
        loaded = load_image_set(
            client,
            image_set.datastore_id,
            image_set.image_set_id,
            series_instance_uid=uid[requested] if requested else None,
            max_workers=1,
        )

    assert loaded.series_instance_uid == uid[expected_series]
    assert loaded.volume.shape[0] == {"small": 2, "big": 4}[expected_series]
    assert f"loading series {uid[expected_series]}" in caplog.text
    assert reason in caplog.text


def test_unknown_series_names_the_available_ones(stubbed):
    datasets, arrays = synthetic_series(2, series_uid="1.2.3.4.9")
    image_set = build_image_set(datasets, pixel_arrays=arrays)
    client, stubber = stubbed
    ids = {"datastoreId": image_set.datastore_id, "imageSetId": image_set.image_set_id}
    from testkit.healthimaging import metadata_response

    stubber.add_response("get_image_set_metadata", metadata_response(image_set), ids)
    with pytest.raises(SeriesNotFound, match=r"series 1\.2\.3\.4\.8 is not in image set .*1\.2\.3\.4\.9"):
        load_image_set(
            client, image_set.datastore_id, image_set.image_set_id, series_instance_uid="1.2.3.4.8", max_workers=1
        )


def _enhanced(frames: int, *, per_frame_positions: bool) -> tuple[pydicom.Dataset, np.ndarray]:
    datasets, arrays = synthetic_series(frames, dtype="int16", slope="1", intercept="-1024", gap=3.0)
    ds = datasets[0]
    ds.SOPClassUID = ENHANCED_CT_SOP_CLASS
    ds.NumberOfFrames = frames
    shared = pydicom.Dataset()
    orientation, measures, rescale = pydicom.Dataset(), pydicom.Dataset(), pydicom.Dataset()
    orientation.ImageOrientationPatient = ds.ImageOrientationPatient
    measures.PixelSpacing, measures.SliceThickness, measures.SpacingBetweenSlices = ds.PixelSpacing, "3.0", "3.0"
    rescale.RescaleSlope, rescale.RescaleIntercept, rescale.RescaleType = "1", "-1024", "HU"
    shared.PlaneOrientationSequence = [orientation]
    shared.PixelMeasuresSequence = [measures]
    shared.PixelValueTransformationSequence = [rescale]
    ds.SharedFunctionalGroupsSequence = [shared]
    del ds.RescaleSlope, ds.RescaleIntercept
    if per_frame_positions:
        items = []
        for source in datasets:
            item, position = pydicom.Dataset(), pydicom.Dataset()
            position.ImagePositionPatient = source.ImagePositionPatient
            item.PlanePositionSequence = [position]
            items.append(item)
        # Frames stored in reverse slice order: the loader must sort them by position, not frame number.
        ds.PerFrameFunctionalGroupsSequence = items[::-1]
        return ds, np.stack(arrays[::-1])
    return ds, np.stack(arrays)


@pytest.mark.parametrize(
    "per_frame_positions",
    [
        True,  # enhanced CT: positions from PerFrameFunctionalGroupsSequence (frames stored in reverse order)
        False,  # legacy multi-frame: positions computed from the first frame along the normal
    ],
)
def test_multi_frame_instance_is_split_into_slices(stubbed, per_frame_positions):
    dataset, frames = _enhanced(4, per_frame_positions=per_frame_positions)
    image_set = build_image_set([dataset], pixel_arrays=[frames])
    client, stubber = stubbed
    stub_load(stubber, image_set)

    loaded = load_image_set(client, image_set.datastore_id, image_set.image_set_id, max_workers=1)

    in_slice_order = frames[::-1] if per_frame_positions else frames
    np.testing.assert_array_equal(loaded.volume, in_slice_order.astype(np.float32) - 1024)
    assert loaded.spacing == pytest.approx((3.0, 0.75, 0.5))
    np.testing.assert_allclose(loaded.slice_positions[:, 2], [0.0, 3.0, 6.0, 9.0], atol=1e-5)
    references = [ds.SourceImageSequence[0] for ds in loaded.datasets]
    assert {str(ref.ReferencedSOPInstanceUID) for ref in references} == {str(dataset.SOPInstanceUID)}
    frame_numbers = [int(ref.ReferencedFrameNumber) for ref in references]
    assert frame_numbers == ([4, 3, 2, 1] if per_frame_positions else [1, 2, 3, 4])
    assert len({str(ds.SOPInstanceUID) for ds in loaded.datasets}) == 4  # each split frame is its own instance
    assert all(str(ds.SOPClassUID) == "1.2.840.10008.5.1.4.1.1.2" for ds in loaded.datasets)
    assert all("PerFrameFunctionalGroupsSequence" not in ds for ds in loaded.datasets)


def _instances(image_set):
    (series,) = image_set.document["Study"]["Series"].values()
    return [instance["DICOM"] for instance in series["Instances"].values()]


def _same_position(image_set):
    first, second, _ = _instances(image_set)
    second["ImagePositionPatient"] = first["ImagePositionPatient"]  # two slices at one position


def _no_rows(image_set):
    del _instances(image_set)[1]["Rows"]


def _one_bit(image_set):
    _instances(image_set)[0]["BitsAllocated"] = 1  # a binary SEG frame in the chosen series


@pytest.mark.parametrize(
    ("breaker", "message"),
    [
        (_same_position, "same slice position"),
        (_no_rows, "Rows is missing"),
        (_one_bit, "not a single-channel grayscale image"),
    ],
)
def test_frames_that_do_not_form_a_volume_fail_before_any_frame_is_fetched(stubbed, breaker, message):
    datasets, arrays = synthetic_series(3)
    image_set = build_image_set(datasets, pixel_arrays=arrays)
    breaker(image_set)  # the document says so; no frame answer is queued, so a fetch would fail the test
    client, stubber = stubbed
    from testkit.healthimaging import metadata_response

    ids = {"datastoreId": image_set.datastore_id, "imageSetId": image_set.image_set_id}
    stubber.add_response("get_image_set_metadata", metadata_response(image_set), ids)  # and no frame answers
    with pytest.raises(InvalidSeriesError, match=message):
        load_image_set(client, image_set.datastore_id, image_set.image_set_id, max_workers=1)


def test_fetch_frames_checks_its_arguments(stubbed):
    from model_code.healthimaging.loader import fetch_frames

    client, _ = stubbed
    assert fetch_frames(client, "d", "i", [], lambda index, pixels: index) == []
    with pytest.raises(ValueError, match="decoders must be >= 1"):
        fetch_frames(client, "d", "i", [object()], lambda index, pixels: index, decoders=0)  # type: ignore[list-item]
    with pytest.raises(ValueError, match="max_workers must be >= 1"):
        fetch_frames(client, "d", "i", [object()], lambda index, pixels: index, max_workers=0)  # type: ignore[list-item]


def test_one_frame_out_of_int16_range_makes_the_volume_float32(stubbed):
    # 12-bit unsigned CT (int16 after the -1024 shift) but one frame uses the full 16 bits: the frames placed
    # as int16 before and after it must come out of the promotion with the same numbers as the shared loader's.
    datasets, arrays = synthetic_series(6, dtype="uint16", bits_stored=16, intercept="-1024")
    arrays = [array & 0x0FFF for array in arrays]
    arrays[3][0, 0] = 65535  # 65535 - 1024 is beyond int16
    image_set = build_image_set(datasets, pixel_arrays=arrays)
    client, stubber = stubbed
    stub_load(stubber, image_set)

    loaded = load_image_set(client, image_set.datastore_id, image_set.image_set_id, max_workers=1)

    expected = _expected(datasets, arrays)
    assert expected.volume.dtype == loaded.volume.dtype == np.float32
    np.testing.assert_array_equal(loaded.volume, expected.volume)
    assert loaded.volume[3, 0, 0] == 65535 - 1024


def test_headers_only_leaves_the_pixel_data_out(stubbed, ct_slices):
    datasets, arrays = ct_slices
    image_set = build_image_set(datasets, pixel_arrays=arrays)
    client, stubber = stubbed
    stub_load(stubber, image_set)

    loaded = load_image_set(client, image_set.datastore_id, image_set.image_set_id, pixel_data=False)

    expected = _expected(datasets, arrays)
    assert loaded.volume.dtype == np.int16  # the real CT's rescale is an integer shift
    np.testing.assert_array_equal(loaded.volume, expected.volume)
    assert all("PixelData" not in ds for ds in loaded.datasets)
    assert [str(ds.SOPInstanceUID) for ds in loaded.datasets] == [str(ds.SOPInstanceUID) for ds in expected.datasets]
