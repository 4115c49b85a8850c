"""The SageMaker contract functions in-process, on the real pipeline with a threshold reference model.

Sources: a zip; a series under an S3 prefix (moto); a HealthImaging image set (the loopback HealthImaging
server, real botocore client). Publishing: moto S3 and a Stubber-checked StartDICOMImportJob.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import highdicom as hd
import pytest
from moto import mock_aws

from model_code.core.failures import Failure
from model_code.serving.handler import input_fn, model_fn, output_fn, predict_fn, respond, serving_settings
from model_code.serving.service import ServingModel
from model_code.serving.settings import ServingSettings
from testkit.series import SeriesZip, dice, seg_mask, series_zip, zip_datasets, zip_members

ROLE = "arn:aws:iam::123456789012:role/healthimaging-import"


class InjectedClients:
    """Clients a test built (moto S3, a loopback or stubbed HealthImaging client)."""

    def __init__(self, *, s3: Any = None, medical_imaging: Any = None) -> None:
        self._s3, self._medical_imaging = s3, medical_imaging

    def s3(self) -> Any:
        return self._s3

    def medical_imaging(self) -> Any:
        return self._medical_imaging


@pytest.fixture(scope="module")
def serving_model(threshold_model_dir: Path) -> ServingModel:
    return model_fn(str(threshold_model_dir))


@pytest.fixture
def aws() -> Iterator[Any]:
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="studies")
        yield s3


def _invoke(model: ServingModel, body: object, content_type: str, accept: str | None) -> tuple[bytes, str, int]:
    return respond(predict_fn(input_fn(body, content_type), model), accept)


def _check_seg(seg_bytes: bytes, series: SeriesZip) -> None:
    seg = hd.seg.segread(io.BytesIO(seg_bytes))
    assert seg.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.4"  # Segmentation Storage
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == series.series_instance_uid
    assert seg.SegmentSequence[0].SegmentLabel == "spleen"
    assert dice(seg_mask(seg_bytes, series.sop_instance_uids), series.mask) > 0.9


@pytest.mark.parametrize(
    ("accept", "content_type"),
    [
        ("application/dicom", "application/dicom"),  # the SEG itself
        ("application/json", "application/json"),  # the summary
        (None, "application/json"),  # no Accept: the toolkit's default, JSON
        ("text/html, application/dicom;q=0.9", "application/dicom"),  # the first type offered
    ],
)
def test_zip_request_answers_per_accept(
    serving_model: ServingModel, phantom_zip: SeriesZip, accept: str | None, content_type: str
) -> None:
    body, answered_type, status = _invoke(serving_model, phantom_zip.payload, "application/zip", accept)
    assert (status, answered_type) == (200, content_type)
    if content_type == "application/dicom":
        _check_seg(body, phantom_zip)
    else:
        document = json.loads(body)
        assert document["source"]["seriesInstanceUid"] == phantom_zip.series_instance_uid
        assert document["summary"]["model"]["name"] == "spleen_ct_segmentation"


def test_model_fn_reads_the_bundle_sagemaker_unpacks(tmp_path: Path, phantom_zip: SeriesZip) -> None:
    # SageMaker unpacks model.tar.gz into the model dir: here the zoo's spleen layout, nothing else beside it.
    from testkit.models import save_zoo_spleen_bundle

    model_dir = save_zoo_spleen_bundle(tmp_path / "model")
    assert sorted(p.name for p in model_dir.iterdir()) == ["configs", "models"]
    body, answered_type, status = _invoke(model_fn(str(model_dir)), phantom_zip.payload, "application/zip",
                                          "application/dicom")
    assert (status, answered_type) == (200, "application/dicom")
    _check_seg(body, phantom_zip)


def test_output_fn_returns_body_and_type(serving_model: ServingModel, phantom_zip: SeriesZip) -> None:
    body, content_type = output_fn(predict_fn(input_fn(phantom_zip.payload, "application/zip"), serving_model), "*/*")
    assert content_type == "application/json"
    assert json.loads(body)["seg"]["bytes"] > 0


@pytest.mark.parametrize(
    ("body", "content_type", "accept", "status", "message"),
    [
        # a zip with no DICOM in it
        ("zip-of-text", "application/zip", None, 422, "not a usable series"),
        # two series in one zip: the endpoint takes one
        ("zip-of-two-series", "application/zip", None, 422, "2 series found"),
        # an answer type the endpoint cannot give
        ("phantom", "application/zip", "image/png", 406, "cannot answer with 'image/png'"),
        # an S3 prefix with nothing under it
        (json.dumps({"dicomS3Uri": "s3://studies/missing/"}), "application/json", None, 404, "no objects under"),
        # a bucket that does not exist
        (json.dumps({"dicomS3Uri": "s3://no-such-bucket/x/"}), "application/json", None, 404, "does not exist"),
    ],
)
def test_unusable_inputs_are_4xx_json(
    serving_model: ServingModel,
    phantom_zip: SeriesZip,
    aws: Any,
    body: str,
    content_type: str,
    accept: str | None,
    status: int,
    message: str,
) -> None:
    payloads = {
        "zip-of-text": _text_zip,
        "zip-of-two-series": lambda: _merge(phantom_zip.payload, series_zip(shape=(4, 16, 16), seed=1).payload),
        "phantom": lambda: phantom_zip.payload,
    }
    payload = payloads[body]() if body in payloads else body
    model = ServingModel(serving_model.pipeline, settings=ServingSettings(), clients=InjectedClients(s3=aws))
    answer, answered_type, answered_status = _invoke(model, payload, content_type, accept)
    assert (answered_status, answered_type) == (status, "application/json")
    error = json.loads(answer)["error"]
    assert error["status"] == status
    assert message in error["message"]


@pytest.fixture
def max_expanded_bytes(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """SERVING_MAX_EXPANDED_BYTES set for one test; the worker's cached settings re-read around it."""
    monkeypatch.setenv("SERVING_MAX_EXPANDED_BYTES", "1000")
    serving_settings.cache_clear()
    yield 1000
    monkeypatch.undo()
    serving_settings.cache_clear()


def test_input_fn_bounds_zip_expansion_by_the_setting(phantom_zip: SeriesZip, max_expanded_bytes: int) -> None:
    error = input_fn(phantom_zip.payload, "application/zip")
    assert isinstance(error, Failure)
    assert error.status == 413
    assert f"over this server's limit of {max_expanded_bytes}" in error.message


def _text_zip() -> bytes:
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("notes.txt", b"not a DICOM file")
    return buffer.getvalue()


def _merge(*payloads: bytes) -> bytes:
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for number, payload in enumerate(payloads):
            for name, data in zip_members(payload).items():
                archive.writestr(f"{number}/{name}", data)
    return buffer.getvalue()


def test_s3_series_is_segmented(serving_model: ServingModel, phantom_zip: SeriesZip, aws: Any) -> None:
    for name, data in zip_members(phantom_zip.payload).items():
        aws.put_object(Bucket="studies", Key=f"study-1/{name}", Body=data)
    aws.put_object(Bucket="studies", Key="study-1/", Body=b"")  # a console folder marker is skipped
    model = ServingModel(serving_model.pipeline, settings=ServingSettings(), clients=InjectedClients(s3=aws))

    body, answered_type, status = _invoke(
        model, json.dumps({"dicomS3Uri": "s3://studies/study-1/"}), "application/json", "application/dicom"
    )
    assert (status, answered_type) == (200, "application/dicom")
    _check_seg(body, phantom_zip)


def test_healthimaging_image_set_is_segmented(serving_model: ServingModel, phantom_zip: SeriesZip) -> None:
    from testkit.healthimaging import build_image_set, loopback_client, serve

    image_set = build_image_set(zip_datasets(phantom_zip.payload))  # type: ignore[arg-type]
    with serve([image_set]) as server:
        model = ServingModel(
            serving_model.pipeline,
            settings=ServingSettings(),
            clients=InjectedClients(medical_imaging=loopback_client(server.url)),
        )
        found = json.dumps({"datastoreId": image_set.datastore_id, "imageSetId": image_set.image_set_id})
        body, _, status = _invoke(model, found, "application/json", "application/dicom")
        missing = json.dumps({"datastoreId": image_set.datastore_id, "imageSetId": "f" * 32})
        error_body, _, error_status = _invoke(model, missing, "application/json", None)
    assert status == 200
    _check_seg(body, phantom_zip)
    assert error_status == 404
    assert "image set ffffffffffffffffffffffffffffffff was not found" in json.loads(error_body)["error"]["message"]


def test_dicomweb_series_is_segmented(serving_model: ServingModel, phantom_zip: SeriesZip) -> None:
    # The predict CLI's --dicomweb-url/--study-uid/--series-uid source in the request JSON, read from a real
    # DICOMweb server (Orthanc on loopback).
    from model_code.core.dicomweb import DicomWebSession
    from testkit.orthanc import orthanc_server

    datasets = zip_datasets(phantom_zip.payload)
    study = str(datasets[0].StudyInstanceUID)
    with orthanc_server() as orthanc:
        DicomWebSession(orthanc.dicomweb_url).store(datasets, study_instance_uid=study)
        model = ServingModel(serving_model.pipeline, settings=ServingSettings(), clients=InjectedClients())
        request = {"dicomwebUrl": orthanc.dicomweb_url, "studyInstanceUid": study,
                   "seriesInstanceUid": phantom_zip.series_instance_uid}
        body, _, status = _invoke(model, json.dumps(request), "application/json", "application/dicom")
        summary, _, _ = _invoke(model, json.dumps(request), "application/json", "application/json")
        missing = {**request, "seriesInstanceUid": "1.2.3.4"}
        error_body, _, error_status = _invoke(model, json.dumps(missing), "application/json", None)
    assert status == 200
    _check_seg(body, phantom_zip)
    assert json.loads(summary)["source"]["dicomwebUrl"] == orthanc.dicomweb_url
    assert error_status == 404
    assert "1.2.3.4" in json.loads(error_body)["error"]["message"]
