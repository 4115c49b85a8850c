"""The loopback HealthImaging speaks the service model: concurrent loads, GetImageSet, search pagination."""

from __future__ import annotations

import numpy as np
import pytest

from model_code.healthimaging import ImageSetNotFound, load_image_set, search_image_sets
from model_code.healthimaging.client import get_image_set, get_image_set_metadata
from testkit.healthimaging import build_image_set, loopback_client, serve
from tests.model_code.healthimaging.hi_helpers import other_pixels, shuffled, synthetic_series


@pytest.mark.parametrize(
    ("max_workers", "latency_s"),
    [
        (1, 0.0),  # one thread: the Stubber-equivalent path over HTTP
        (6, 0.0),  # threads racing: results still land in slice order
        (6, 0.01),  # with a network round trip per frame
    ],
)
def test_concurrent_load_over_http_matches_the_stored_series(ct_slices, max_workers, latency_s):
    datasets, arrays = ct_slices
    order = shuffled(list(range(len(datasets))), seed=3)
    fake = build_image_set([datasets[i] for i in order], pixel_arrays=[arrays[i] for i in order])
    with serve([fake], latency_s=latency_s) as server:
        client = loopback_client(server.url, max_workers=max_workers)
        loaded = load_image_set(client, fake.datastore_id, fake.image_set_id, max_workers=max_workers)
        assert server.requests["GetImageFrame"] == len(datasets)
    slope, intercept = float(datasets[0].RescaleSlope), float(datasets[0].RescaleIntercept)
    expected = np.stack(arrays).astype(np.float32) * np.float32(slope) + np.float32(intercept)
    np.testing.assert_array_equal(loaded.volume, expected)
    assert [str(ds.SOPInstanceUID) for ds in loaded.datasets] == [str(ds.SOPInstanceUID) for ds in datasets]


def test_metadata_blob_arrives_gzip_and_is_parsed(ct_slices):
    datasets, arrays = ct_slices
    fake = build_image_set(datasets[:1], pixel_arrays=arrays[:1])
    with serve([fake]) as server:
        client = loopback_client(server.url)
        raw = client.get_image_set_metadata(datastoreId=fake.datastore_id, imageSetId=fake.image_set_id)
        assert raw["contentEncoding"] == "gzip"
        assert raw["imageSetMetadataBlob"].read()[:2] == b"\x1f\x8b"  # botocore does not inflate it
        assert get_image_set_metadata(client, fake.datastore_id, fake.image_set_id) == fake.document
        properties = get_image_set(client, fake.datastore_id, fake.image_set_id)
        assert properties["imageSetState"] == "ACTIVE"
        with pytest.raises(ImageSetNotFound, match="not found in data store"):
            get_image_set(client, fake.datastore_id, "e" * 32)


@pytest.mark.parametrize(
    ("in_study", "page_size"),
    [
        (5, 2),  # three pages: nextToken followed twice
        (2, 50),  # one page, no nextToken
        (0, 2),  # nothing in the study
    ],
)
def test_search_follows_every_page_of_one_study(in_study, page_size):
    image_sets = []
    for index in range(in_study):
        datasets, arrays = synthetic_series(1, study_uid="1.2.3.10", seed=index, size=(2, 2))
        image_sets.append(build_image_set(datasets, pixel_arrays=arrays, image_set_id=f"{index:032d}"))
    other, other_arrays = synthetic_series(1, study_uid="1.2.3.11", size=(2, 2))
    image_sets.append(build_image_set(other, pixel_arrays=other_arrays, image_set_id="a" * 32))
    with serve(image_sets, page_size=page_size) as server:
        client = loopback_client(server.url)
        found = search_image_sets(client, image_sets[0].datastore_id, "1.2.3.10")
        pages = server.requests["SearchImageSets"]
    assert sorted(summary["imageSetId"] for summary in found) == [f"{i:032d}" for i in range(in_study)]
    assert pages == max(1, -(-in_study // page_size))


def test_the_earliest_bad_frame_is_reported_whatever_the_thread_timing(ct_slices):
    """Two corrupted frames, six fetch threads: the error names the first in plan order, every time."""
    from model_code.healthimaging import FrameIntegrityError

    datasets, arrays = ct_slices
    fake = build_image_set(datasets, pixel_arrays=arrays)
    first_bad, second_bad = fake.frame_ids()[1], fake.frame_ids()[3]
    fake.frames[first_bad] = other_pixels(fake, first_bad)
    fake.frames[second_bad] = b"\x00" * 64
    with serve([fake]) as server:
        client = loopback_client(server.url, max_workers=6)
        for _ in range(3):
            with pytest.raises(FrameIntegrityError, match="checksum") as raised:
                load_image_set(client, fake.datastore_id, fake.image_set_id, max_workers=6)
            assert raised.value.frame_id == first_bad


def test_loaded_volume_is_an_ordinary_writable_array(ct_slices):
    import pickle

    datasets, arrays = ct_slices
    fake = build_image_set(datasets, pixel_arrays=arrays)
    with serve([fake]) as server:
        loaded = load_image_set(loopback_client(server.url), fake.datastore_id, fake.image_set_id)
    volume = loaded.volume
    assert volume.dtype == np.int16  # the CT's rescale is an integer shift
    assert volume.flags.c_contiguous
    assert volume.flags.writeable
    copy = pickle.loads(pickle.dumps(volume))  # noqa: S301 - our own bytes, made one line above
    np.testing.assert_array_equal(copy, volume)
    volume[0, 0, 0] = 12345  # the caller owns it
    assert copy[0, 0, 0] != 12345


def test_requests_carry_the_connector_user_agent(ct_slices):
    from model_code.healthimaging.client import USER_AGENT

    datasets, arrays = ct_slices
    fake = build_image_set(datasets[:1], pixel_arrays=arrays[:1])
    agents: list[str] = []
    with serve([fake]) as server:
        client = loopback_client(server.url)
        client.meta.events.register(
            "before-send.medical-imaging", lambda request, **_: agents.append(request.headers["User-Agent"])
        )
        load_image_set(client, fake.datastore_id, fake.image_set_id)
    assert len(agents) == 2  # GetImageSetMetadata, GetImageFrame
    for agent in agents:
        text = agent.decode() if isinstance(agent, bytes) else agent
        assert text.startswith(USER_AGENT + " Botocore/")  # ours, then the botocore version botocore appends
    assert USER_AGENT.startswith("monai-imaging-platform-healthimaging/")
