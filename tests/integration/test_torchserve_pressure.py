"""TorchServe + the SageMaker toolkit on 127.0.0.1 under pressure (issue 20): the bad-input table, a fuzz of
every parser, a mixed load whose every answer belongs to its request, and a worker killed mid-request.

Runs on the session's one TorchServe (tests/integration/conftest.py); no extra server start. Waits are bounded
(request timeouts, polling deadlines); nothing asserts how long anything took.
"""

from __future__ import annotations

import http.client
import io
import json
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from urllib.parse import urlsplit

import highdicom as hd
import pytest
from hypothesis import HealthCheck, given, seed, settings

from testkit.bad_inputs import BAD_INPUTS, BadInput
from testkit.fuzz import dicom_zip_bodies, json_bodies, zip_bodies
from testkit.series import series_zip
from testkit.servers import ServerProcess, http_status, server_processes

pytestmark = pytest.mark.integration
# A hang is what issue 20 found (900 s): far below that, a request that does not answer fails the test.
REQUEST_TIMEOUT_S = 120
FUZZ = settings(max_examples=25, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
FUZZ_STATUSES: Counter[str] = Counter()


@pytest.fixture(scope="module", autouse=True)
def report_fuzz() -> Iterator[None]:
    yield
    print(f"\nfuzz statuses (TorchServe): {dict(sorted(FUZZ_STATUSES.items()))}")


def post(url: str, body: bytes, content_type: str | None, accept: str | None = None) -> tuple[int, str, str, bytes]:
    """(status, reason phrase, content type, body) straight from the status line."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=REQUEST_TIMEOUT_S)
    headers = {k: v for k, v in (("Content-Type", content_type), ("Accept", accept)) if v is not None}
    try:
        connection.request("POST", "/invocations", body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.reason, response.getheader("Content-Type", ""), response.read()
    finally:
        connection.close()


def check_error(status: int, reason: str, content_type: str, body: bytes) -> dict[str, object]:
    """What every error answer here is: JSON, the standard phrase, a bounded body, no traceback or path."""
    assert reason == HTTPStatus(status).phrase
    assert content_type == "application/json"
    assert len(body) < 2000
    text = body.decode("ascii")
    assert "Traceback" not in text
    assert "/tmp/" not in text
    assert "site-packages" not in text
    error = json.loads(text)["error"]
    assert error["status"] == status
    return error


@pytest.mark.parametrize("case", BAD_INPUTS, ids=[case.name for case in BAD_INPUTS])
def test_bad_input_gets_its_status_and_message(torchserve: ServerProcess, case: BadInput) -> None:
    status, reason, content_type, body = post(torchserve.url, case.build(), case.content_type, case.accept)
    assert status == case.status, body[:300]
    error = check_error(status, reason, content_type, body)
    assert case.fragment in str(error["message"])


def _fuzz_once(server: ServerProcess, what: str, body: bytes, content_type: str) -> None:
    status, reason, answered_type, answer = post(server.url, body, content_type, "application/json")
    FUZZ_STATUSES[f"{what} {status}"] += 1
    assert status == 200 or 400 <= status < 500, answer[:300]
    if status != 200:
        check_error(status, reason, answered_type, answer)


@seed(20)
@FUZZ
@given(body=json_bodies())
def test_fuzzed_json_is_answered(torchserve: ServerProcess, body: bytes) -> None:
    _fuzz_once(torchserve, "json", body, "application/json")


@seed(20)
@FUZZ
@given(body=zip_bodies())
def test_fuzzed_zips_are_answered(torchserve: ServerProcess, body: bytes) -> None:
    _fuzz_once(torchserve, "zip", body, "application/zip")


@seed(20)
@FUZZ
@given(body=dicom_zip_bodies())
def test_fuzzed_dicom_is_answered(torchserve: ServerProcess, body: bytes) -> None:
    _fuzz_once(torchserve, "dicom", body, "application/zip")


def test_after_the_fuzz_the_server_is_healthy(torchserve: ServerProcess) -> None:
    assert http_status(torchserve.url + "/ping") == 200


def test_a_mixed_load_answers_every_request_with_its_own_answer(torchserve: ServerProcess) -> None:
    valid = [series_zip(shape=(10, 32, 32), seed=100 + n, patient_id=f"LOAD{n}") for n in range(8)]
    invalid = [case for case in BAD_INPUTS if case.name in {"two-slices", "pixel-spacing-20mm", "json-nested-40",
                                                           "zip-member-climbs-out", "not-a-zip"}]
    jobs: list[tuple[str, object]] = [("valid", item) for item in valid]
    jobs += [("invalid", case) for case in invalid] * 2

    def send(job: tuple[str, object]) -> tuple[tuple[str, object], tuple[int, str, str, bytes]]:
        kind, item = job
        if kind == "valid":
            return job, post(torchserve.url, item.payload, "application/zip", "application/dicom")  # type: ignore[attr-defined]
        case: BadInput = item  # type: ignore[assignment]
        return job, post(torchserve.url, case.build(), case.content_type, case.accept)

    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(send, jobs))
    for (kind, item), (status, reason, content_type, body) in answers:
        if kind == "valid":
            assert status == 200, body[:300]
            seg = hd.seg.segread(io.BytesIO(body))
            assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == item.series_instance_uid  # type: ignore[attr-defined]
        else:
            case = item
            assert status == case.status, (case.name, body[:300])  # type: ignore[attr-defined]
            assert case.fragment in str(check_error(status, reason, content_type, body)["message"])  # type: ignore[attr-defined]


def _workers(server: ServerProcess) -> list[int]:
    return [pid for pid, role in server_processes(server).items() if role == "worker"]


def _received(server: ServerProcess) -> int:
    assert server.logs_dir is not None
    path = server.logs_dir / "model_log.log"
    return path.read_text(errors="replace").count("Backend received inference") if path.is_file() else 0


def _until(condition, what: str, timeout_s: float = 180.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout_s:.0f} s")
        time.sleep(0.05)


def test_a_worker_killed_mid_request_fails_that_request_and_the_server_recovers(
    torchserve: ServerProcess, phantom
) -> None:
    large = series_zip(shape=(48, 256, 256), spacing=(2.5, 0.8, 0.8), seed=5)
    _until(lambda: len(_workers(torchserve)) == 2, "two workers")
    seen = _received(torchserve)
    answer: dict[str, tuple[int, str, str, bytes]] = {}
    sender = threading.Thread(target=lambda: answer.update(a=post(torchserve.url, large.payload, "application/zip")))
    sender.start()
    # A worker has the request once it logs "Backend received inference"; then every worker is killed.
    _until(lambda: _received(torchserve) > seen or not sender.is_alive(), "the request reaching a worker")
    killed = _workers(torchserve)
    for pid in killed:
        os.kill(pid, signal.SIGKILL)
    sender.join(timeout=REQUEST_TIMEOUT_S)
    status, _, _, body = answer["a"]
    print(f"\nkilled mid-request: TorchServe answered {status} {body[:120]!r}")
    assert status >= 500, body[:300]  # TorchServe answers for its dead worker itself
    assert b"Traceback" not in body
    # TorchServe starts new workers; the server serves again.
    _until(lambda: set(_workers(torchserve)).isdisjoint(killed) and len(_workers(torchserve)) == 2, "new workers")
    _until(lambda: http_status(torchserve.url + "/ping") == 200, "/ping 200")
    again = post(torchserve.url, phantom.payload, "application/zip", "application/json")
    assert again[0] == 200, again[3][:300]
