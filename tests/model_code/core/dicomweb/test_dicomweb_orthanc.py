"""The DICOMweb client against a real DICOMweb server: Orthanc with its DICOMweb plugin on loopback
(testkit/orthanc.py). Store, search, retrieve; a series that does not exist; a server answering errors
(refusals, throttling and 5xx through a loopback front, testkit/dicomweb.py); STOWs the server rejects.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

from model_code.core.dicom.files import load_series
from model_code.core.dicomweb import (
    DicomWebAccessDenied,
    DicomWebError,
    DicomWebNotFound,
    DicomWebSession,
    DicomWebStoreRejected,
)
from testkit.dicomweb import dicomweb_front
from testkit.orthanc import OrthancServer, orthanc_server
from testkit.series import SeriesZip, series_zip, zip_datasets

# Orthanc's Lua hooks (https://orthanc.uclouvain.be/book/users/lua.html): refuse every request from a client
# whose path names the blocked study, and drop every SEG it receives while its STOW-RS answer still says stored.
LUA = """
function IncomingHttpRequestFilter(method, uri, ip, username, httpHeaders)
  return not string.find(uri, "1.2.3.666", 1, true)
end
function ReceivedInstanceFilter(dicom, origin, info)
  return dicom.Modality ~= "SEG"
end
"""
FAST = 1  # backoff_ms: retrying waits 2**attempt * backoff_ms; keep the suite fast


@pytest.fixture(scope="module")
def orthanc() -> Iterator[OrthancServer]:
    with orthanc_server(LUA) as server:
        yield server


@pytest.fixture(scope="module")
def stored(orthanc: OrthancServer) -> tuple[SeriesZip, list[pydicom.Dataset]]:
    """A phantom CT series stored with our own STOW-RS."""
    series = series_zip(shape=(6, 24, 24), seed=3)
    datasets = zip_datasets(series.payload)
    DicomWebSession(orthanc.dicomweb_url, backoff_ms=FAST).store(datasets, study_instance_uid=str(datasets[0].StudyInstanceUID))
    return series, datasets


def test_store_lists_every_instance_with_its_retrieve_url(orthanc: OrthancServer) -> None:
    datasets = zip_datasets(series_zip(shape=(3, 16, 16), seed=4).payload)
    study = str(datasets[0].StudyInstanceUID)
    stored = DicomWebSession(orthanc.dicomweb_url).store(datasets, study_instance_uid=study)
    assert [s.sop_instance_uid for s in stored] == [str(d.SOPInstanceUID) for d in datasets]
    assert all(s.sop_class_uid == str(d.SOPClassUID) for s, d in zip(stored, datasets, strict=True))
    assert all(s.retrieve_url.endswith(f"/instances/{s.sop_instance_uid}") for s in stored)


def test_search_finds_the_stored_series(orthanc: OrthancServer, stored: tuple[SeriesZip, list]) -> None:
    series, datasets = stored
    session = DicomWebSession(orthanc.dicomweb_url)
    found = session.search_series(str(datasets[0].StudyInstanceUID))
    assert [item["0020000E"]["Value"][0] for item in found] == [series.series_instance_uid]
    # must-not beside the must: another study's search finds nothing
    assert session.search_series("1.2.3.4.5") == []


def test_retrieve_gives_the_series_a_folder_gives(orthanc: OrthancServer, stored: tuple[SeriesZip, list],
                                                   tmp_path) -> None:
    series, datasets = stored
    zipped = tmp_path / "series.zip"
    zipped.write_bytes(series.payload)
    expected = load_series(zipped)
    loaded = DicomWebSession(orthanc.dicomweb_url, max_workers=3).load_series(
        str(datasets[0].StudyInstanceUID), series.series_instance_uid
    )
    assert loaded.series_instance_uid == series.series_instance_uid
    np.testing.assert_array_equal(loaded.volume, expected.volume)
    np.testing.assert_allclose(loaded.affine, expected.affine)
    assert loaded.metadata["source"].endswith(f"/series/{series.series_instance_uid}")


def test_metadata_names_every_instance(orthanc: OrthancServer, stored: tuple[SeriesZip, list]) -> None:
    series, datasets = stored
    metadata = DicomWebSession(orthanc.dicomweb_url).series_metadata(
        str(datasets[0].StudyInstanceUID), series.series_instance_uid)
    assert sorted(item["00080018"]["Value"][0] for item in metadata) == sorted(series.sop_instance_uids)


def test_a_series_that_does_not_exist_is_not_found(orthanc: OrthancServer, stored: tuple[SeriesZip, list]) -> None:
    _, datasets = stored
    with pytest.raises(DicomWebNotFound, match=r"HTTP 404.*check the UIDs") as caught:
        DicomWebSession(orthanc.dicomweb_url).load_series(str(datasets[0].StudyInstanceUID), "1.2.3.4.5.6")
    assert caught.value.status == 404
    assert "/series/1.2.3.4.5.6/metadata" in caught.value.url


def test_a_refusal_is_access_denied_at_once(orthanc: OrthancServer) -> None:
    front_calls: list[int] = []
    with dicomweb_front(orthanc.dicomweb_url) as front:
        with pytest.raises(DicomWebAccessDenied, match=r"HTTP 403.*check the credentials"):
            DicomWebSession(front.url, backoff_ms=FAST).search_series("1.2.3.666")
        front_calls.append(len(front.requests))
    assert front_calls == [1]  # a 403 is not retried


@pytest.mark.parametrize(
    ("status", "failures", "attempts", "outcome"),
    [
        (503, 2, 5, "ok"),  # throttled twice, then the real answer
        (429, 1, 5, "ok"),  # throttling: retried
        (500, 9, 3, "error"),  # a server that keeps failing: three attempts, then an error naming the status
        (400, 1, 5, "error"),  # bad request: never retried
    ],
)
def test_retries_transient_answers_only(orthanc: OrthancServer, stored: tuple[SeriesZip, list], status: int,
                                        failures: int, attempts: int, outcome: str) -> None:
    _, datasets = stored
    study = str(datasets[0].StudyInstanceUID)
    with dicomweb_front(orthanc.dicomweb_url, fail_first=failures, fail_status=status) as front:
        session = DicomWebSession(front.url, max_attempts=attempts, backoff_ms=FAST)
        if outcome == "ok":
            assert len(session.search_series(study)) == 1
            answered = [r["failed_with"] for r in front.requests]
            assert answered[: failures + 1] == [status] * failures + [None]
        else:
            with pytest.raises(DicomWebError, match=rf"HTTP {status}") as caught:
                session.search_series(study)
            assert caught.value.status == status
            assert len(front.requests) == (attempts if status >= 500 else 1)


def test_a_server_that_is_down_is_a_clear_error() -> None:
    with dicomweb_front("http://127.0.0.1:9/dicom-web") as front:
        url = front.url
    with pytest.raises(DicomWebError, match="did not answer"):  # the front is gone: connection refused
        DicomWebSession(url, max_attempts=2, backoff_ms=FAST).search_series("1.2.3")


def _seg_like(source: pydicom.Dataset) -> pydicom.Dataset:
    dataset = source.copy()
    dataset.Modality = "SEG"
    dataset.SeriesInstanceUID = generate_uid()
    dataset.SOPInstanceUID = generate_uid()
    dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    return dataset


def test_a_stow_into_another_study_is_rejected_with_the_instance(orthanc: OrthancServer,
                                                                 stored: tuple[SeriesZip, list]) -> None:
    _, datasets = stored
    instance = datasets[0].copy()
    instance.SOPInstanceUID = generate_uid()
    with pytest.raises(DicomWebStoreRejected, match=r"rejected the instances \(HTTP 409\)") as caught:
        DicomWebSession(orthanc.dicomweb_url).store([instance], study_instance_uid="1.2.3.4.5")
    assert caught.value.status == 409
    assert [f.sop_instance_uid for f in caught.value.failed] == [str(instance.SOPInstanceUID)]
    assert caught.value.failed[0].failure_reason is not None


def test_a_dropped_instance_is_a_rejection_not_a_silent_loss(orthanc: OrthancServer,
                                                             stored: tuple[SeriesZip, list]) -> None:
    # Orthanc's filter drops the SEG, yet its STOW-RS answer lists it as stored: only reading it back tells.
    _, datasets = stored
    seg = _seg_like(datasets[0])
    with pytest.raises(DicomWebStoreRejected, match="but does not hold instance") as caught:
        DicomWebSession(orthanc.dicomweb_url).store([seg], study_instance_uid=str(seg.StudyInstanceUID))
    assert [f.sop_instance_uid for f in caught.value.failed] == [str(seg.SOPInstanceUID)]
