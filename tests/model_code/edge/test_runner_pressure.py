"""The edge runner under pressure (issue 20): the bad-input table, idle and slow clients, a full runner's /ping,
and no connection thread left behind. Bounded waits only; no assertion on how long anything took."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from model_code.edge.runner import EdgeHTTPServer, RunnerLimits
from testkit.bad_inputs import ZIP_BAD_INPUTS, BadInput
from testkit.edge import post, serve, serve_server, url_of
from testkit.series import series_zip

ZIP = "application/zip"


@pytest.fixture(scope="module")
def valid_zip() -> bytes:
    return series_zip(shape=(8, 24, 24), seed=3).payload


@pytest.fixture(scope="module")
def url(edge_model) -> Iterator[str]:
    with serve(edge_model, RunnerLimits(workers=1, queue=2)) as base:
        yield base


@pytest.mark.parametrize("case", ZIP_BAD_INPUTS, ids=[case.name for case in ZIP_BAD_INPUTS])
def test_bad_input_gets_its_status_and_message(url: str, case: BadInput) -> None:
    answer = post(f"{url}/invocations", case.build(), content_type=case.content_type, accept=case.accept)
    assert (answer.status, answer.content_type) == (case.status, "application/json"), answer.body[:300]
    error = json.loads(answer.body)["error"]
    assert case.fragment in error["message"]
    assert "Traceback" not in error["message"]
    assert "/tmp/" not in error["message"]


def _ping(url: str) -> int:
    try:
        with urllib.request.urlopen(f"{url}/ping", timeout=30) as response:  # noqa: S310 - loopback
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def _connect(server: EdgeHTTPServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.server_port), timeout=30)


def _answer(client: socket.socket) -> bytes:
    """Everything the runner sends before it closes the connection (head and body come in separate writes)."""
    parts = []
    with contextlib.suppress(OSError):
        while chunk := client.recv(65536):
            parts.append(chunk)
    return b"".join(parts)


def _until(condition, what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout_s} s")
        time.sleep(0.02)


def _handler_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if "process_request_thread" in thread.name]


def test_idle_connections_do_not_take_the_runners_places(edge_model, valid_zip: bytes) -> None:
    # Issue 20: three idle connections (workers + queue = 2 here) made every other request a 503.
    limits = RunnerLimits(workers=1, queue=1, read_timeout_s=60.0)
    with serve_server(edge_model, limits) as server, contextlib.ExitStack() as stack:
        idle = [stack.enter_context(_connect(server)) for _ in range(3)]
        # Each has sent its headers and declared a body it does not send.
        for client in idle:
            client.sendall(f"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: {ZIP}\r\n"
                           "Content-Length: 100000\r\n\r\n".encode())
        _until(lambda: server.open_connections == 3, "three open connections")
        answer = post(f"{url_of(server)}/invocations", valid_zip, content_type=ZIP)
        assert answer.status == 200, answer.body[:300]
        assert _ping(url_of(server)) == 200


def test_a_body_that_never_arrives_is_a_408_and_its_thread_ends(edge_model) -> None:
    limits = RunnerLimits(read_timeout_s=0.5, min_upload_bytes_per_s=1 << 20)
    with serve_server(edge_model, limits) as server, _connect(server) as client:
        client.sendall(f"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: {ZIP}\r\n"
                       "Content-Length: 5000\r\n\r\nPK".encode())
        answer = _answer(client)
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert b"did not arrive within" in answer
        _until(lambda: server.open_connections == 0, "the connection's end")


def test_a_trickling_client_is_cut_off_while_others_are_served(edge_model, valid_zip: bytes) -> None:
    # Each byte arrives within the read timeout, but the whole body not within its deadline.
    limits = RunnerLimits(read_timeout_s=1.0, min_upload_bytes_per_s=1 << 20)
    answers: list[bytes] = []
    with serve_server(edge_model, limits) as server:
        def trickle() -> None:
            with _connect(server) as client:
                client.sendall(f"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: {ZIP}\r\n"
                               "Content-Length: 100000\r\n\r\n".encode())
                with contextlib.suppress(OSError):
                    for _ in range(200):
                        client.sendall(b"P")
                        time.sleep(0.05)
                answers.append(_answer(client))

        slow = threading.Thread(target=trickle)
        slow.start()
        served = post(f"{url_of(server)}/invocations", valid_zip, content_type=ZIP)
        slow.join(timeout=60)
    assert served.status == 200, served.body[:300]
    assert len(answers) == 1
    assert answers[0].startswith(b"HTTP/1.1 408"), answers


def test_connections_beyond_the_bound_get_503_without_a_thread(edge_model, valid_zip: bytes) -> None:
    limits = RunnerLimits(max_connections=2, read_timeout_s=60.0)
    with serve_server(edge_model, limits) as server:
        with _connect(server), _connect(server):
            _until(lambda: server.open_connections == 2, "two open connections")
            with _connect(server) as third:
                assert third.recv(4096).startswith(b"HTTP/1.1 503")
        _until(lambda: server.open_connections == 0, "the idle connections' end")
        assert post(f"{url_of(server)}/invocations", valid_zip, content_type=ZIP).status == 200


def test_closing_the_runner_leaves_no_connection_thread(edge_model) -> None:
    before = set(_handler_threads())
    with serve_server(edge_model, RunnerLimits(read_timeout_s=120.0)) as server, contextlib.ExitStack() as stack:
        for _ in range(3):
            stack.enter_context(_connect(server))
        _until(lambda: server.open_connections == 3, "three open connections")
    # server_close shut their sockets down and joined their threads (not left to a 120 s read timeout)
    assert [thread for thread in _handler_threads() if thread not in before and thread.is_alive()] == []


class _GatedModel:
    """The real model, held at the door until the test opens it."""

    def __init__(self, model) -> None:
        self.model = model
        self.metadata = model.metadata
        self.entered = threading.Event()
        self.gate = threading.Event()

    def run(self, series):
        self.entered.set()
        assert self.gate.wait(timeout=120)
        return self.model.run(series)


def test_ping_says_503_while_no_request_would_be_admitted(edge_model, valid_zip: bytes) -> None:
    gated = _GatedModel(edge_model)
    with serve(gated, RunnerLimits(workers=1, queue=0)) as base:
        assert _ping(base) == 200
        first: dict[str, object] = {}
        worker = threading.Thread(target=lambda: first.update(a=post(f"{base}/invocations", valid_zip,
                                                                     content_type=ZIP)))
        worker.start()
        assert gated.entered.wait(timeout=60)
        busy = _ping(base)
        gated.gate.set()
        worker.join(timeout=120)
        after = _ping(base)
    assert busy == 503
    assert first["a"].status == 200  # type: ignore[attr-defined]
    assert after == 200
