"""The edge runner on 127.0.0.1: phantom series in, a SEG that passes the segmentation issue's checks out;
the async endpoint's error contract; request size and queue bounds; the bundle runs on its own, offline."""

from __future__ import annotations

import gc
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest

from model_code.core.errors import ClientError
from model_code.core.http import negotiate
from model_code.core.requests import decode_request
from model_code.core.threads import machine_vcpus
from model_code.edge.runner import (
    READY_LINE,
    WARMED_UP,
    WARMING_UP,
    EdgeHTTPServer,
    EdgeService,
    RunnerLimits,
    runner_plan,
)
from model_code.synthetic.dicom_writer import write_dicom_series
from model_code.synthetic.phantom import Phantom, make_phantom
from model_code.synthetic.warmup import warmup_zip
from testkit.edge import post, serve, zip_folder
from tests.model_code.segmentation.test_predict_phantoms import _frames_by_source, _mask_in_phantom_order

ZIP, JSON, DICOM = "application/zip", "application/json", "application/dicom"
SHAPE = (20, 56, 48)
PHANTOMS = [
    # (orientation, descending, spacing (slice,row,col) mm)
    ("axial", False, (2.5, 1.6, 1.6)),
    ("sagittal", True, (2.0, 1.8, 1.8)),  # permuted, flipped axes
    ("coronal", True, (2.0, 1.2, 2.2)),  # descending, non-square pixels
]


@pytest.fixture(scope="module")
def url(edge_model):
    with serve(edge_model, RunnerLimits(workers=1, queue=4, max_request_bytes=8 << 20)) as base:
        yield base


def _phantom_zip(folder: Path, **kwargs) -> tuple[Phantom, list[pydicom.Dataset], bytes]:
    phantom = make_phantom(shape=SHAPE, **kwargs)
    paths = write_dicom_series(phantom.volume_hu, phantom.affine, folder)
    return phantom, [pydicom.dcmread(p) for p in paths], zip_folder(folder)


@pytest.fixture(scope="module", params=PHANTOMS, ids=[p[0] for p in PHANTOMS])
def answered(request, url, tmp_path_factory):
    orientation, descending, spacing = request.param
    phantom, sources, payload = _phantom_zip(
        tmp_path_factory.mktemp("series"), orientation=orientation, descending=descending, spacing=spacing
    )
    answer = post(f"{url}/invocations", payload, content_type=ZIP, accept=DICOM)
    assert answer.status == 200, answer.body[:500]
    out = tmp_path_factory.mktemp("seg") / "seg.dcm"
    out.write_bytes(answer.body)
    return phantom, sources, out, hd.seg.segread(out), answer


def test_seg_frames_sit_on_the_source_slices(answered) -> None:
    _, sources, _, seg, answer = answered
    assert answer.content_type == DICOM
    frames = _frames_by_source(seg)
    assert int(seg.NumberOfFrames) == len(sources) == len(frames)
    for source in sources:
        item = seg.PerFrameFunctionalGroupsSequence[frames[source.SOPInstanceUID]]
        assert [float(v) for v in item.PlanePositionSequence[0].ImagePositionPatient] == [
            float(v) for v in source.ImagePositionPatient
        ]


def test_seg_mask_is_the_planted_organ_within_one_voxel(answered, band) -> None:
    phantom, sources, _, seg, _ = answered
    mask = _mask_in_phantom_order(seg, sources)
    assert not np.any((mask != phantom.mask) & ~band(phantom.mask))
    assert 2 * np.sum(mask & phantom.mask) / (mask.sum() + phantom.mask.sum()) > 0.85


def test_seg_passes_dciodvfy(answered, dciodvfy) -> None:
    _, _, out, seg, _ = answered
    assert dciodvfy(out) == []
    assert seg.SegmentSequence[0].SegmentedPropertyTypeCodeSequence[0].CodeValue == "78961009"  # SCT Spleen


def test_json_answer_is_the_endpoint_summary(url, tmp_path) -> None:
    phantom, sources, payload = _phantom_zip(tmp_path)
    answer = post(f"{url}/invocations", payload, content_type=ZIP, accept=JSON)
    assert answer.status == 200
    document = json.loads(answer.body)
    assert set(document) == {"summary", "source", "seg"}  # handler.respond's keys
    assert document["summary"]["series_instance_uid"] == sources[0].SeriesInstanceUID
    assert document["summary"]["runtime"] == "onnx"
    assert document["summary"]["spleen_volume_ml"] == pytest.approx(phantom.organ_volume_ml, rel=0.2)
    assert document["source"] == {"zipBytes": len(payload), "seriesInstanceUid": sources[0].SeriesInstanceUID}


def _decode_error(body: bytes, content_type: str | None, accept: str | None) -> ClientError:
    """What the async endpoint's own decoders say about the same input."""
    try:
        negotiate(accept)
        decode_request(body, content_type)
    except ClientError as error:
        return error
    raise AssertionError("the endpoint's decoders accepted this input")


@pytest.mark.parametrize(
    ("body", "content_type", "accept", "status"),
    [
        (b"", ZIP, None, 400),  # empty body
        (b"PK\x03\x04 not really a zip", ZIP, None, 400),
        (b"{}", "text/plain", None, 415),
        (b"{", JSON, None, 400),  # malformed JSON: the endpoint's 400, before the offline check
        (b"anything", ZIP, "image/png", 406),  # Accept nobody offers, refused before any work
    ],
    ids=["empty", "not-a-zip", "text-plain", "bad-json", "accept-png"],
)
def test_errors_are_the_async_endpoints(url, body, content_type, accept, status) -> None:
    answer = post(f"{url}/invocations", body, content_type=content_type, accept=accept)
    assert answer.status == status
    assert answer.content_type == JSON
    assert answer.body == _decode_error(body, content_type, accept).to_json()


@pytest.mark.parametrize(
    ("make_body", "content_type", "status", "message"),
    [
        (lambda t: json.dumps({"datastoreId": "a" * 32, "imageSetId": "b" * 32}).encode(), JSON, 415, "offline"),
        (lambda t: json.dumps({"dicomS3Uri": "s3://bucket/prefix/"}).encode(), JSON, 415, "offline"),
        (lambda t: zip_folder(_readme(t)), ZIP, 422, "not a usable series"),  # a zip with no DICOM
        (lambda t: _mr_zip(t), ZIP, 422, "reads CT"),  # the spleen model reads Hounsfield units
    ],
    ids=["healthimaging-request", "s3-request", "no-dicom", "mr-series"],
)
def test_requests_the_edge_cannot_serve(url, tmp_path, make_body, content_type, status, message) -> None:
    answer = post(f"{url}/invocations", make_body(tmp_path), content_type=content_type, accept=JSON)
    assert answer.status == status
    error = json.loads(answer.body)["error"]
    assert error["status"] == status
    assert message in error["message"]


def _readme(folder: Path) -> Path:
    (folder / "notes").mkdir()
    (folder / "notes" / "README.txt").write_text("not DICOM")
    return folder / "notes"


def _mr_zip(folder: Path) -> bytes:
    phantom = make_phantom(shape=(6, 24, 24))
    write_dicom_series(phantom.volume_hu, phantom.affine, folder / "mr", modality="MR")
    return zip_folder(folder / "mr")


def test_routes_ping_and_size_bounds(url, edge_model) -> None:
    with urllib.request.urlopen(f"{url}/ping", timeout=10) as response:  # noqa: S310 - loopback
        assert response.status == 200
    assert post(f"{url}/other", b"x", content_type=ZIP).status == 404
    # Over max_request_bytes (8 MiB here): refused from the header, the body never read into memory.
    answer = post(f"{url}/invocations", b"\0" * ((8 << 20) + 1), content_type=ZIP)
    assert answer.status == 413
    assert "--max-request-mb" in json.loads(answer.body)["error"]["message"]


@pytest.mark.parametrize(
    ("length", "first_line"),
    [
        ((8 << 20) + 1, b"HTTP/1.1 413"),  # refused before the client uploads a byte
        (10, b"HTTP/1.1 100"),  # within bounds: the client is told to go on
    ],
    ids=["over-bound", "within-bound"],
)
def test_expect_100_continue_is_answered_before_the_upload(url, length, first_line) -> None:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as connection:
        connection.sendall(
            f"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: {ZIP}\r\nContent-Length: {length}\r\n"
            "Expect: 100-continue\r\n\r\n".encode()
        )
        assert connection.recv(4096).startswith(first_line)


def test_a_zip_expanding_past_the_series_bound_is_refused(edge_model, tmp_path) -> None:
    _, _, payload = _phantom_zip(tmp_path)  # ~100 kB of DICOM, deflated
    with serve(edge_model, RunnerLimits(max_series_bytes=10_000)) as base:
        answer = post(f"{base}/invocations", payload, content_type=ZIP)
    assert answer.status == 413
    assert "over this server's limit of 10000" in json.loads(answer.body)["error"]["message"]


class _GatedModel:
    """The real model, held at the door until the test opens it: fills the queue deterministically."""

    def __init__(self, model) -> None:
        self.model = model
        self.entered = threading.Event()
        self.gate = threading.Event()

    def run(self, series):
        self.entered.set()
        assert self.gate.wait(timeout=120)
        return self.model.run(series)


def test_a_full_queue_answers_503_and_the_admitted_request_completes(edge_model, tmp_path) -> None:
    _, _, payload = _phantom_zip(tmp_path)
    gated = _GatedModel(edge_model)
    with serve(gated, RunnerLimits(workers=1, queue=0)) as base:
        first: dict[str, object] = {}
        worker = threading.Thread(target=lambda: first.update(a=post(f"{base}/invocations", payload, content_type=ZIP)))
        worker.start()
        assert gated.entered.wait(timeout=60)
        refused = post(f"{base}/invocations", payload, content_type=ZIP)
        gated.gate.set()
        worker.join(timeout=120)
    assert refused.status == 503
    assert refused.headers.get("Retry-After") == "5"
    assert first["a"].status == 200  # type: ignore[attr-defined]


def _start_from_bundle(bundle: Path, cwd: Path, log: Path | None = None) -> subprocess.Popen:
    # Only the bundle's own copy of model_code is importable, and torch is made unimportable.
    code = ("import sys; sys.modules['torch'] = None; import runpy; "
            "runpy.run_module('model_code.edge.runner', run_name='__main__')")
    env = {**os.environ, "PYTHONPATH": str(bundle / "runner"), "PYTHONNOUSERSITE": "1"}
    stderr = subprocess.STDOUT if log is None else log.open("w")
    return subprocess.Popen(
        [sys.executable, "-c", code, "--bundle", str(bundle), "--port", "0", "--threads", "1"],
        cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True,
    )


def _ping_until_ready(base: str) -> list[tuple[int, bytes]]:
    """Every /ping answer until the first 200 (at most ~2 minutes of 503s)."""
    answers = []
    for _ in range(1200):
        try:
            with urllib.request.urlopen(f"{base}/ping", timeout=30) as response:  # noqa: S310 - loopback
                answers.append((int(response.status), response.read()))
                return answers
        except urllib.error.HTTPError as error:
            answers.append((int(error.code), error.read()))
        time.sleep(0.1)
    return answers


def test_the_bundle_runs_alone_without_torch(onnx_bundle: Path, tmp_path: Path) -> None:
    _, _, payload = _phantom_zip(tmp_path / "series")
    process = _start_from_bundle(onnx_bundle, tmp_path)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert READY_LINE in line, line
        base = line.split()[-1]
        assert _ping_until_ready(base)[-1][0] == 200
        answer = post(f"{base}/invocations", payload, content_type=ZIP, accept=JSON)
        assert answer.status == 200, answer.body[:300]
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_the_runner_reports_ready_only_after_its_warm_up(onnx_bundle: Path, tmp_path: Path) -> None:
    log = tmp_path / "runner.log"
    process = _start_from_bundle(onnx_bundle, tmp_path, log=log)
    try:
        assert process.stdout is not None
        base = process.stdout.readline().split()[-1]
        answers = _ping_until_ready(base)
        # The warm-up's line is written before the runner may answer 200: it is in the log at the first 200.
        warmed = log.read_text()
        early = post(f"{base}/invocations", b"PK", content_type=ZIP)  # ready now: a real answer, not 503
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert answers[-1][0] == 200
    assert all(status == 503 and b"warming up" in body for status, body in answers[:-1])
    assert f"{WARMED_UP} in " in warmed, warmed[-2000:]
    assert early.status == 400


def test_a_warming_runner_answers_503_to_ping_and_requests(edge_model) -> None:
    service = EdgeService(edge_model, RunnerLimits(), warming=True)
    assert service.ready() == (False, WARMING_UP)
    server = EdgeHTTPServer(("127.0.0.1", 0), service)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        pinged = _ping_until_ready_once(base)
        refused = post(f"{base}/invocations", b"PK", content_type=ZIP)
        gc.unfreeze()
        service.warm_up(warmup_zip())
        frozen = gc.get_freeze_count()  # the start-up's objects settled out of the collector's view
        ready = _ping_until_ready_once(base)
    finally:
        gc.unfreeze()
        server.shutdown()
        server.server_close()
    assert frozen > 0
    assert pinged == 503
    assert (refused.status, refused.headers.get("Retry-After")) == (503, "5")
    assert b"warming up" in refused.body
    assert ready == 200


def _ping_until_ready_once(base: str) -> int:
    try:
        with urllib.request.urlopen(f"{base}/ping", timeout=30) as response:  # noqa: S310 - loopback
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def test_the_runner_imports_from_the_bundle_alone(onnx_bundle: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(onnx_bundle / "runner")}
    code = "import model_code.edge.runner as r, sys; print(r.__file__); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                         check=True).stdout.split()
    assert out[0].startswith(str(onnx_bundle / "runner"))
    assert out[1] == "False"  # the runner module itself pulls in no torch


def test_runner_cli_refuses_a_folder_that_is_not_a_bundle(tmp_path: Path) -> None:
    from model_code.edge import runner

    assert runner.main(["--bundle", str(tmp_path), "--port", "0"]) == 2


@pytest.mark.parametrize(
    ("workers", "threads", "expected"),
    [
        # (--workers, --threads, (workers, threads)); 0 derives it from this device's CPUs
        (0, 0, None),  # both derived: within the CPUs
        (2, 0, (2, max(1, machine_vcpus() // 2))),
        (0, 1, (machine_vcpus(), 1)),
        (3, 2, (3, 2)),  # both given: as given
    ],
)
def test_runner_plan(workers: int, threads: int, expected: tuple[int, int] | None) -> None:
    plan = runner_plan(workers, threads)
    if expected is None:
        assert plan.workers * plan.threads <= machine_vcpus()
    else:
        assert (plan.workers, plan.threads) == expected


def test_runner_plan_refuses_negative_counts() -> None:
    with pytest.raises(ValueError, match=r"--threads must be >= 0 \(0 derives it from the device's CPUs\), got -1"):
        runner_plan(1, -1)
