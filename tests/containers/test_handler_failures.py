"""The handler's failures that are not bad input (issue 20): dependencies as 502/503 naming the cause, anything
unexpected as a 500 with an error ID, always with the standard reason phrase on the TorchServe context.

The dependencies are real botocore clients (LazyClients) against what they would meet: no credentials at all,
a loopback port nobody listens on, and a loopback S3 answering SlowDown (the error S3 throttles with).
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Iterator
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from model_code.core.dicom.series import ImageSeries
from model_code.serving.clients import LazyClients
from model_code.serving.handler import input_fn, model_fn, output_fn, predict_fn
from model_code.serving.service import ServingModel
from model_code.serving.settings import ServingSettings
from testkit.series import SeriesZip

S3_REQUEST = json.dumps({"dicomS3Uri": "s3://studies/study-1/"})


@pytest.fixture(scope="module")
def serving_model(threshold_model_dir: Path) -> ServingModel:
    return model_fn(str(threshold_model_dir))


class RecordingContext:
    """The two calls output_fn makes on TorchServe's context, recorded."""

    def __init__(self) -> None:
        self.status: tuple[int, str] | None = None
        self.headers: dict[str, str] = {}

    def set_response_status(self, code: int, phrase: str) -> None:
        self.status = (code, phrase)

    def set_response_header(self, idx: int, key: str, value: str) -> None:
        self.headers[key] = value


def _answer(model: ServingModel, body: object, content_type: str) -> tuple[dict[str, Any], RecordingContext]:
    context = RecordingContext()
    answer, _ = output_fn(predict_fn(input_fn(body, content_type), model), None, context)
    return json.loads(answer)["error"], context


@pytest.fixture
def no_aws_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def _model(pipeline: Any, endpoint: str | None) -> ServingModel:
    settings = ServingSettings(s3_endpoint_url=endpoint, region="us-east-1")
    return ServingModel(pipeline, settings=settings, clients=LazyClients(settings))


def test_missing_credentials_are_a_503_naming_them(serving_model: ServingModel, no_aws_credentials: None) -> None:
    error, context = _answer(_model(serving_model.pipeline, None), S3_REQUEST, "application/json")
    assert error["status"] == 503
    assert "no usable AWS credentials" in error["message"]
    assert context.status == (503, "Service Unavailable")


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_an_unreachable_service_is_a_502(serving_model: ServingModel, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    model = _model(serving_model.pipeline, f"http://127.0.0.1:{_closed_port()}")
    error, context = _answer(model, S3_REQUEST, "application/json")
    assert error["status"] == 502
    assert "did not answer (EndpointConnectionError)" in error["message"]
    assert context.status == (502, "Bad Gateway")


class _SlowDown(BaseHTTPRequestHandler):
    """S3's throttling answer (the S3 API reference's error code list: SlowDown, 503)."""

    def do_GET(self) -> None:
        body = b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>'
        self.send_response(503)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def _throttling_s3() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SlowDown)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def test_throttling_is_a_503_with_retry_after(serving_model: ServingModel, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with _throttling_s3() as endpoint:
        error, context = _answer(_model(serving_model.pipeline, endpoint), S3_REQUEST, "application/json")
    assert error["status"] == 503
    assert "throttled ListObjectsV2 (SlowDown)" in error["message"]
    assert context.headers == {"Retry-After": "5"}


class _Exploding:
    """A segmenter that fails as no input should make it fail, with a non-ASCII message."""

    metadata = None

    def run(self, series: ImageSeries) -> Any:
        raise RuntimeError("could not convert string to float: '-10\xff4' in /opt/program/model_code/x.py")


def test_an_unexpected_failure_is_a_500_with_an_error_id_and_an_ascii_phrase(
    serving_model: ServingModel, phantom_zip: SeriesZip, caplog: pytest.LogCaptureFixture
) -> None:
    model = ServingModel(_Exploding(), settings=ServingSettings(), clients=LazyClients(ServingSettings()))
    error, context = _answer(model, phantom_zip.payload, "application/zip")
    assert error["status"] == 500
    assert context.status == (500, HTTPStatus.INTERNAL_SERVER_ERROR.phrase)
    assert error["errorId"] in error["message"]
    assert "-10" not in error["message"]
    assert "/opt/program" not in error["message"]
    assert any(error["errorId"] in record.getMessage() and record.exc_info for record in caplog.records)
