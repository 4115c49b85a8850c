"""``segment``: request JSON in the moto inference bucket, moto's InvokeEndpointAsync, the result downloaded.

moto answers InvokeEndpointAsync with output/failure locations and writes a placeholder result there at once.
The fake endpoint below takes that placeholder back (the request is "queued"), and the fake clock's sleep hook
writes the real outcome after ``delay`` sleeps, so the CLI's waiting is exercised too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from model_code.core.requests import HealthImagingRequest, decode_request
from model_code.core.s3_uri import parse_s3_uri
from tests.platform_cli.fakes import DATASTORE_ID, ENDPOINT, Platform

IMAGE_SET = "f" * 32
SEG = b"\0" * 128 + b"DICM" + b"segmentation"


class Endpoint:
    """Records InvokeEndpointAsync calls and, after ``delay`` sleeps, writes ``outcome`` to the output or failure."""

    def __init__(self, platform: Platform, *, outcome: str | None, body: bytes, delay: int = 1) -> None:
        self.platform, self.outcome, self.body, self.delay = platform, outcome, body, delay
        self.calls: list[dict[str, Any]] = []
        self.responses: list[dict[str, Any]] = []
        client = platform.session.client("sagemaker-runtime")
        client.meta.events.register("provide-client-params.sagemaker-runtime.InvokeEndpointAsync", self._params)
        client.meta.events.register("after-call.sagemaker-runtime.InvokeEndpointAsync", self._after)
        platform.clock.hooks.append(self._tick)
        self.client = client

    def _params(self, params: dict[str, Any], **_: Any) -> None:
        self.calls.append(dict(params))

    def _after(self, parsed: dict[str, Any], **_: Any) -> None:
        self.responses.append(parsed)
        for uri in (parsed["OutputLocation"], parsed["FailureLocation"]):
            location = parse_s3_uri(uri)
            self.platform.s3.delete_object(Bucket=location.bucket, Key=location.key)

    def _tick(self) -> None:
        self.delay -= 1
        if self.delay == 0 and self.outcome is not None:
            location = parse_s3_uri(self.responses[0][{"output": "OutputLocation", "failure": "FailureLocation"}[
                self.outcome]])
            self.platform.s3.put_object(Bucket=location.bucket, Key=location.key, Body=self.body)


@pytest.fixture
def deployed(platform: Platform, imaging_stack: dict[str, str], serving_stack: dict[str, str]) -> Platform:
    return platform


def run(platform: Platform, endpoint: Endpoint, *argv: str) -> int:
    # The CLI must use this client (it carries the recording hooks): handed in like the Stubber's.
    original = platform.runtime_factory

    def factory(deployment: Any, args: Any) -> Any:
        runtime = original(deployment, args)
        runtime.client_overrides = {**runtime.client_overrides, "sagemaker-runtime": endpoint.client}
        return runtime

    from platform_cli.main import main
    from tests.platform_cli.fakes import REPO_ROOT

    return main(list(argv), runtime_factory=factory, cwd=REPO_ROOT)


def test_segments_and_downloads_the_seg(deployed: Platform, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    endpoint = Endpoint(deployed, outcome="output", body=SEG, delay=2)
    out = tmp_path / "seg.dcm"
    assert run(deployed, endpoint, "segment", IMAGE_SET, "--out", str(out), "--poll-interval", "3") == 0
    assert out.read_bytes() == SEG
    assert capsys.readouterr().out.strip() == str(out)
    assert deployed.clock.sleeps == [3, 3]

    [call] = endpoint.calls
    assert (call["EndpointName"], call["ContentType"], call["Accept"]) == (ENDPOINT, "application/json", "application/dicom")
    bucket, key = parse_s3_uri(call["InputLocation"])
    assert bucket == deployed.outputs["Data"]["InferenceBucketName"]
    assert key == f"input/{DATASTORE_ID}/{IMAGE_SET}/{call['InferenceId']}.json"
    request = deployed.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    # The endpoint's own decoder reads the request the CLI wrote.
    assert decode_request(request, "application/json") == HealthImagingRequest(DATASTORE_ID, IMAGE_SET)


def test_datastore_and_series_options(deployed: Platform, tmp_path: Path) -> None:
    endpoint = Endpoint(deployed, outcome="output", body=SEG)
    other = "e" * 32
    argv = ["segment", IMAGE_SET, "--datastore-id", other, "--series-uid", "1.2.3", "--out", str(tmp_path / "s.dcm")]
    assert run(deployed, endpoint, *argv) == 0
    bucket, key = parse_s3_uri(endpoint.calls[0]["InputLocation"])
    request = decode_request(deployed.s3.get_object(Bucket=bucket, Key=key)["Body"].read(), "application/json")
    assert request == HealthImagingRequest(other, IMAGE_SET, "1.2.3")


@pytest.mark.parametrize(
    ("outcome", "body", "expected"),
    [
        # the handler's JSON error body, as SageMaker writes it to the failure location
        ("failure", json.dumps({"error": {"status": 422, "reason": "Unprocessable Entity", "message": "not CT"}}).encode(),
         "could not segment ffff" ),
        ("failure", b"worker died", "worker died"),  # not the handler's format: shown as text
        ("output", b'{"summary": {}}', "is not a DICOM file"),  # a JSON answer where a SEG was asked for
    ],
)
def test_failures_exit_1(
    deployed: Platform, tmp_path: Path, capsys: pytest.CaptureFixture[str], outcome: str, body: bytes, expected: str
) -> None:
    endpoint = Endpoint(deployed, outcome=outcome, body=body)
    out = tmp_path / "seg.dcm"
    assert run(deployed, endpoint, "segment", IMAGE_SET, "--out", str(out)) == 1
    err = capsys.readouterr().err
    assert expected in err
    if body.startswith(b'{"error"'):
        assert "422 Unprocessable Entity: not CT" in err
    assert not out.exists()


def test_timeout_names_the_output_location(deployed: Platform, capsys: pytest.CaptureFixture[str]) -> None:
    endpoint = Endpoint(deployed, outcome=None, body=b"")
    assert run(deployed, endpoint, "segment", IMAGE_SET, "--timeout", "30", "--poll-interval", "10") == 1
    err = capsys.readouterr().err
    assert "not finished after 30 s" in err
    assert endpoint.responses[0]["OutputLocation"] in err


def test_no_wait_prints_locations(deployed: Platform, capsys: pytest.CaptureFixture[str]) -> None:
    endpoint = Endpoint(deployed, outcome=None, body=b"")
    assert run(deployed, endpoint, "segment", IMAGE_SET, "--no-wait") == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == {"outputLocation": endpoint.responses[0]["OutputLocation"],
                       "failureLocation": endpoint.responses[0]["FailureLocation"]}
    assert deployed.clock.sleeps == []


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["segment", "not-an-id"], "imageSetId must be 32 lowercase letters or digits"),  # the decoder's message
        (["segment", IMAGE_SET, "--series-uid", "1.2.x"], "seriesInstanceUid must be a DICOM UID"),
        (["segment", IMAGE_SET, "--out", "/nonexistent/dir/seg.dcm"], "does not exist"),
    ],
)
def test_bad_input_exits_2_without_invoking(
    deployed: Platform, capsys: pytest.CaptureFixture[str], argv: list[str], expected: str
) -> None:
    endpoint = Endpoint(deployed, outcome=None, body=b"")
    assert run(deployed, endpoint, *argv) == 2
    assert expected in capsys.readouterr().err
    assert endpoint.calls == []
    bucket = deployed.outputs["Data"]["InferenceBucketName"]
    assert deployed.s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_aws_error_exits_1(platform: Platform, imaging_stack: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    """An output naming a bucket that is gone: AWS's refusal is reported with the operation, not a traceback."""
    platform.deploy("Data", {"InferenceBucketName": "deleted-bucket"})
    platform.deploy("Serving", {"EndpointName": ENDPOINT})
    endpoint = Endpoint(platform, outcome=None, body=b"")
    assert run(platform, endpoint, "segment", IMAGE_SET) == 1
    assert "AWS refused PutObject: NoSuchBucket" in capsys.readouterr().err
