"""Errors a user can act on: missing image sets and frames that fail to decode or to match their checksum."""

from __future__ import annotations

import pytest

from model_code.healthimaging import FrameIntegrityError, ImageSetNotFound, load_image_set
from testkit.healthimaging import build_image_set, stub_load
from tests.model_code.healthimaging.hi_helpers import other_pixels, synthetic_series

MISSING_SET = "f" * 32


@pytest.mark.parametrize(
    "operation",
    [
        "get_image_set_metadata",  # the image set itself is gone (or the ID is wrong)
        "get_image_frame",  # the image set went away between the metadata and a frame
    ],
)
def test_resource_not_found_names_both_ids(stubbed, operation):
    datasets, arrays = synthetic_series(2)
    image_set = build_image_set(datasets, pixel_arrays=arrays, image_set_id=MISSING_SET)
    client, stubber = stubbed
    if operation == "get_image_frame":
        from testkit.healthimaging import metadata_response

        ids = {"datastoreId": image_set.datastore_id, "imageSetId": MISSING_SET}
        stubber.add_response("get_image_set_metadata", metadata_response(image_set), ids)
    stubber.add_client_error(
        operation, service_error_code="ResourceNotFoundException", service_message="not found", http_status_code=404
    )

    with pytest.raises(ImageSetNotFound) as raised:
        load_image_set(client, image_set.datastore_id, MISSING_SET, max_workers=1)

    assert MISSING_SET in str(raised.value)
    assert image_set.datastore_id in str(raised.value)
    assert (raised.value.datastore_id, raised.value.image_set_id) == (image_set.datastore_id, MISSING_SET)


@pytest.mark.parametrize(
    ("corruption", "message"),
    [
        ("truncated", "cannot be decoded"),  # the codestream is cut short in transit
        ("garbage", "cannot be decoded"),  # not HTJ2K at all
        ("one pixel off", "checksum"),  # decodes fine, but not to the pixels recorded at import
        ("wrong size", "decoded to shape"),  # a frame of another instance
    ],
)
def test_bad_frame_raises_frame_integrity_error_naming_the_frame(stubbed, corruption, message):
    datasets, arrays = synthetic_series(3)
    image_set = build_image_set(datasets, pixel_arrays=arrays)
    bad_id = image_set.frame_ids()[1]
    data = image_set.frames[bad_id]
    bad = {
        "truncated": data[: len(data) // 2],
        "garbage": b"\x00" * 64,
        "one pixel off": other_pixels(image_set, bad_id) if corruption == "one pixel off" else b"",
        "wrong size": other_pixels(image_set, bad_id, shape=(4, 4)) if corruption == "wrong size" else b"",
    }[corruption]
    client, stubber = stubbed
    stub_load(stubber, image_set, frames={bad_id: bad}, stop_after=bad_id)  # the load stops at the bad frame

    with pytest.raises(FrameIntegrityError, match=message) as raised:
        load_image_set(client, image_set.datastore_id, image_set.image_set_id, max_workers=1)

    assert raised.value.frame_id == bad_id
    assert bad_id in str(raised.value)
    assert image_set.image_set_id in str(raised.value)
    assert raised.value.frame_number == 1


@pytest.mark.parametrize(
    ("checksums", "fails"),
    [
        (True, True),  # a recorded checksum catches a frame with other pixels
        (False, False),  # older image sets without checksums: nothing to verify against, the frame loads
    ],
)
def test_checksum_is_verified_where_present(stubbed, checksums, fails):
    datasets, arrays = synthetic_series(2)
    image_set = build_image_set(datasets, pixel_arrays=arrays, checksums=checksums)
    bad_id = image_set.frame_ids()[0]
    client, stubber = stubbed
    stub_load(
        stubber, image_set, frames={bad_id: other_pixels(image_set, bad_id)}, stop_after=bad_id if fails else None
    )
    if fails:
        with pytest.raises(FrameIntegrityError, match="checksum"):
            load_image_set(client, image_set.datastore_id, image_set.image_set_id, max_workers=1)
    else:
        loaded = load_image_set(client, image_set.datastore_id, image_set.image_set_id, max_workers=1)
        assert loaded.volume.shape == (2, *arrays[0].shape)
