"""The write-back's STOW-RS (import_seg -> store_seg) against a real DICOMweb server: Orthanc on loopback behind a
front that checks every SigV4 signature the way HealthImaging would (testkit/dicomweb.py, testkit/sigv4.py) and
serves it at HealthImaging's ``/datastore/<id>`` root. S3, SNS and SQS are moto's.

A stored SEG lands in its study, the result JSON names it and the results topic announces it (what its SQS subscriber
receives); a SEG the server drops, a body it rejects and a server that keeps failing are failures that raise (the
function's failure path), never a result or a notice that claims a store.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from model_code.core.dicom.files import load_series
from model_code.core.dicom.seg import build_segmentation
from model_code.core.dicomweb import DicomWebSession
from model_code.core.spleen import spleen_metadata
from model_code.core.viewer_link import viewer_link
from model_code.synthetic.dicom_writer import write_dicom_series
from model_code.synthetic.phantom import make_phantom
from stacks.inference.runtime import import_seg, store_seg
from testkit.dicomweb import Front, dicomweb_front
from testkit.orthanc import OrthancServer, orthanc_server
from tests.stacks.inference_runtime.conftest import DATASTORE_ID, IMAGE_SET_ID, INFERENCE, Aws
from tests.stacks.inference_runtime.test_import_seg import OUTPUT_KEY, SETTINGS, notification, sns_event

CREDENTIALS = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "session-token")
# Orthanc's Lua filter (https://orthanc.uclouvain.be/book/users/lua.html): it drops every SEG, while its STOW-RS
# answer still lists the SEG as stored.
# The model the phantom SEGs name (ManufacturerModelName, SoftwareVersions), as the endpoint writes them.
MODEL = spleen_metadata()
DROP_SEG = 'function ReceivedInstanceFilter(dicom, origin, info) return dicom.Modality ~= "SEG" end'


def _seg(tmp_path: Path) -> tuple[pydicom.Dataset, list[pydicom.Dataset], bytes]:
    phantom = make_phantom(shape=(6, 24, 24), spacing=(2.5, 2.0, 2.0))
    write_dicom_series(phantom.volume_hu, phantom.affine, tmp_path / "ct")
    series = load_series(tmp_path / "ct")
    seg = build_segmentation(series, phantom.organ_mask_on(series.affine, series.volume.shape),
                             metadata=spleen_metadata())
    buffer = io.BytesIO()
    seg.save_as(buffer, enforce_file_format=True)
    return seg, list(series.datasets), buffer.getvalue()


def _settings(front: Front) -> import_seg.Settings:
    # The front answers at <origin>/datastore/<id>, as HealthImaging's host does.
    return import_seg.Settings(**{**SETTINGS.__dict__, "dicomweb_endpoint": front.url.rsplit("/datastore/", 1)[0]})


@pytest.fixture
def server(request: pytest.FixtureRequest) -> Iterator[tuple[OrthancServer, Front]]:
    lua = getattr(request, "param", None)
    with orthanc_server(lua) as orthanc, dicomweb_front(
        orthanc.dicomweb_url, secret_key=CREDENTIALS.secret_key, root_path=f"/datastore/{DATASTORE_ID}"
    ) as front:
        yield orthanc, front


def _handle(aws: Aws, front: Front, **kwargs: Any) -> list[dict[str, Any]]:
    return import_seg.handle(sns_event(notification()), s3=aws.s3, medical_imaging=aws.medical_imaging, sns=aws.sns,
                             settings=_settings(front), credentials=CREDENTIALS, **kwargs)


def test_the_seg_is_stored_into_its_study_and_the_result_names_it(aws: Aws, server, tmp_path: Path) -> None:
    orthanc, front = server
    seg, ct, part10 = _seg(tmp_path)
    study = str(seg.StudyInstanceUID)
    DicomWebSession(orthanc.dicomweb_url).store(ct, study_instance_uid=study)
    aws.s3.put_object(Bucket=INFERENCE, Key=OUTPUT_KEY, Body=part10)

    (outcome,) = _handle(aws, front)

    assert outcome["status"] == "STORED"
    assert outcome["stored"]["sopInstanceUid"] == str(seg.SOPInstanceUID)
    assert outcome["stored"]["studyInstanceUid"] == study
    assert outcome["stored"]["seriesInstanceUid"] == str(seg.SeriesInstanceUID)
    assert "viewerUrl" not in outcome  # the viewer is off
    assert outcome["stored"]["retrieveUrl"].endswith(
        f"/studies/{study}/series/{seg.SeriesInstanceUID}/instances/{seg.SOPInstanceUID}")
    key = f"output/results/{DATASTORE_ID}/{IMAGE_SET_ID}.json"
    assert outcome["result"] == f"s3://{INFERENCE}/{key}"
    stored_result = aws.json_object(INFERENCE, key)
    assert stored_result["stored"] == outcome["stored"]
    assert stored_result["seg"] == f"s3://{INFERENCE}/{OUTPUT_KEY}"
    # In the source study, beside its CT, as sent; every request was signed right.
    modalities = {item["00080060"]["Value"][0] for item in DicomWebSession(orthanc.dicomweb_url).search_series(study)}
    assert modalities == {"CT", "SEG"}
    assert all(r["signature_problem"] is None for r in front.requests)
    assert [r["method"] for r in front.requests] == ["POST"]  # the read-back follows Orthanc's RetrieveURL
    # No import job: the inbox stays empty.
    assert aws.keys("inbox-bucket") == []
    # One notice, after the result JSON, naming what was stored and by which model.
    (envelope,) = aws.published()
    assert envelope["MessageId"] == outcome["notificationId"]
    assert json.loads(envelope["Message"]) == {
        "event": "SegStored",
        "inferenceId": IMAGE_SET_ID,
        "datastoreId": DATASTORE_ID,
        "imageSetId": IMAGE_SET_ID,
        "studyInstanceUid": study,
        "segSeriesInstanceUid": str(seg.SeriesInstanceUID),
        "segSopInstanceUid": str(seg.SOPInstanceUID),
        "model": {"name": MODEL.name, "version": MODEL.version},
        "result": outcome["result"],
    }  # must not: a viewerUrl, the viewer is off
    assert envelope["Subject"] == f"SEG stored: {MODEL.name} {MODEL.version}, image set {IMAGE_SET_ID}"
    assert envelope["MessageAttributes"] == {
        "modelName": {"Type": "String", "Value": MODEL.name},
        "modelVersion": {"Type": "String", "Value": MODEL.version},
    }


def test_with_the_viewer_the_result_carries_the_segs_deep_link(aws: Aws, server, tmp_path: Path) -> None:
    _, front = server
    seg, _, part10 = _seg(tmp_path)
    aws.s3.put_object(Bucket=INFERENCE, Key=OUTPUT_KEY, Body=part10)
    settings = import_seg.Settings(**{**_settings(front).__dict__, "viewer_url": "https://viewer.example.org"})
    (outcome,) = import_seg.handle(sns_event(notification()), s3=aws.s3, medical_imaging=aws.medical_imaging,
                                   sns=aws.sns, settings=settings, credentials=CREDENTIALS)
    expected = viewer_link("https://viewer.example.org", str(seg.StudyInstanceUID), str(seg.SeriesInstanceUID))
    assert outcome["viewerUrl"] == expected
    assert aws.json_object(INFERENCE, f"output/results/{DATASTORE_ID}/{IMAGE_SET_ID}.json")["viewerUrl"] == expected
    (envelope,) = aws.published()
    assert json.loads(envelope["Message"])["viewerUrl"] == expected  # the success notification carries the link too


def test_a_retried_notification_stores_once_and_announces_again(aws: Aws, server, tmp_path: Path) -> None:
    orthanc, front = server
    seg, _, part10 = _seg(tmp_path)
    aws.s3.put_object(Bucket=INFERENCE, Key=OUTPUT_KEY, Body=part10)
    _handle(aws, front)
    _handle(aws, front)  # SNS's retry of the same success notification
    # At least once: the same message twice (docs/inference.md: subscribers key on segSopInstanceUid).
    first, second = aws.published()
    assert first["Message"] == second["Message"]
    assert first["MessageId"] != second["MessageId"]
    # ... of one stored instance: the repeated STOW-RS of the same SOP Instance UID replaced it.
    metadata = DicomWebSession(orthanc.dicomweb_url).series_metadata(str(seg.StudyInstanceUID),
                                                                     str(seg.SeriesInstanceUID))
    assert len(metadata) == 1


def test_a_publish_that_fails_fails_the_invocation_after_the_result_is_written(
    aws: Aws, server, tmp_path: Path
) -> None:
    _, front = server
    _, _, part10 = _seg(tmp_path)
    aws.s3.put_object(Bucket=INFERENCE, Key=OUTPUT_KEY, Body=part10)
    aws.sns.delete_topic(TopicArn=aws.results_topic_arn)
    with pytest.raises(ClientError, match="NotFound"):
        _handle(aws, front)
    # SNS's retry then stores again (the same instance), rewrites this result and publishes.
    assert aws.keys(INFERENCE) == sorted([OUTPUT_KEY, f"output/results/{DATASTORE_ID}/{IMAGE_SET_ID}.json"])


def test_the_viewer_url_is_optional_in_the_environment() -> None:
    environment = {name: "x" for name in import_seg.Settings.variables().values()}
    assert import_seg.Settings.from_environment(environment).viewer_url == ""
    with_viewer = {**environment, import_seg.ENV_VIEWER_URL: "https://viewer.example.org"}
    assert import_seg.Settings.from_environment(with_viewer).viewer_url == "https://viewer.example.org"


@pytest.mark.parametrize("server", [DROP_SEG], indirect=True)
def test_a_seg_the_server_drops_is_a_failure_not_a_result(aws: Aws, server, tmp_path: Path) -> None:
    _, front = server
    _, _, part10 = _seg(tmp_path)
    aws.s3.put_object(Bucket=INFERENCE, Key=OUTPUT_KEY, Body=part10)
    with pytest.raises(store_seg.StoreRejectedError, match="reading it back answered HTTP 404"):
        _handle(aws, front)
    assert not [k for k in aws.keys(INFERENCE) if k.startswith("output/results/")]
    assert aws.published() == []  # must not: a notice of a SEG that is not stored


def test_a_body_the_server_rejects_is_a_failure(aws: Aws, server) -> None:
    _, front = server
    # A Part-10 preamble and magic, then nothing a DICOM parser can read.
    aws.s3.put_object(Bucket=INFERENCE, Key=OUTPUT_KEY, Body=b"\0" * 128 + b"DICM" + b"\xff" * 64)
    with pytest.raises(store_seg.StoreRejectedError, match="rejected the SEG"):
        _handle(aws, front)
    assert not [k for k in aws.keys(INFERENCE) if k.startswith("output/results/")]
    assert aws.published() == []


def test_a_wrong_signature_is_refused(aws: Aws, server, tmp_path: Path) -> None:
    _, front = server
    _, _, part10 = _seg(tmp_path)
    aws.s3.put_object(Bucket=INFERENCE, Key=OUTPUT_KEY, Body=part10)
    wrong = Credentials(CREDENTIALS.access_key, "not-the-secret", CREDENTIALS.token)
    with pytest.raises(store_seg.StoreRejectedError, match="HTTP 403"):
        import_seg.handle(sns_event(notification()), s3=aws.s3, medical_imaging=aws.medical_imaging,
                          sns=aws.sns, settings=_settings(front), credentials=wrong)
    assert front.requests[-1]["signature_problem"] == "signature does not match"


def test_a_server_that_keeps_failing_is_retried_then_raises(tmp_path: Path) -> None:
    sleeps: list[float] = []
    part10 = _seg(tmp_path)[2]
    with (orthanc_server() as orthanc,
          dicomweb_front(orthanc.dicomweb_url, fail_first=99, fail_status=503) as front,
          pytest.raises(store_seg.StoreUnavailableError, match="HTTP 503 after 4 attempts")):
        store_seg.store_seg(part10, dicomweb_root=front.url, credentials=CREDENTIALS, region="us-east-1",
                            sleep=sleeps.append)
    assert len(front.requests) == store_seg.MAX_ATTEMPTS
    assert sleeps == [0.5, 1.0, 2.0]


def test_throttling_then_success_stores_once(tmp_path: Path) -> None:
    with orthanc_server() as orthanc, dicomweb_front(orthanc.dicomweb_url, fail_first=2, fail_status=429) as front:
        stored = store_seg.store_seg(_seg(tmp_path)[2], dicomweb_root=front.url, credentials=CREDENTIALS,
                                     region="us-east-1", sleep=lambda _: None)
    assert [r["failed_with"] for r in front.requests] == [429, 429, None]
    assert stored.retrieve_url.endswith(stored.sop_instance_uid)


def test_the_multipart_body_is_one_dicom_part() -> None:
    body, content_type = store_seg.multipart_body(b"DICM-bytes")
    boundary = content_type.rsplit("boundary=", 1)[1]
    assert content_type.startswith('multipart/related; type="application/dicom"; boundary=')
    assert body == (f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + b"DICM-bytes"
                    + f"\r\n--{boundary}--\r\n".encode())
