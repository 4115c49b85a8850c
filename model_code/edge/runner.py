"""The offline edge runner: ``POST /invocations`` with a zip of one DICOM series, answered with the SEG.

Same contract as the async endpoint, through the same core (``model_code.core``): the body is decoded by
``decode_request``, the series loaded and segmented by ``SegmentationService.predict``, and the answer rendered
by ``respond``, so bodies, content types and statuses are identical (400/404/406/415/422 as JSON
``{"error": {...}}``).
Differences an offline device forces, each answered with a status of its own:

* only ``application/zip`` bodies: a HealthImaging or S3 request needs the network (415, saying so);
* bounded memory: a body over ``--max-request-mb`` is refused before it is read (413), and so is a zip
  whose member headers declare more than ``--max-series-mb`` (decoding's bound, before any
  decompression); a missing Content-Length is 411;
* a bounded request queue: ``--workers`` requests run at once, ``--queue`` more wait, the rest get 503
  with ``Retry-After``; a request is admitted only once its whole body has arrived, so a slow upload holds
  no worker or queue place;
* slow and idle clients cannot hold the runner: every socket read waits at most ``--read-timeout-s`` (an idle
  keep-alive connection is closed after it), a body must arrive within that plus its length at
  ``--min-upload-mb-per-s`` (else 408), at most ``--max-connections`` connections are open at once and at
  most ``max_uploads`` bodies are read at once (503 beyond either); closing the server ends every
  connection's thread;
* ``GET /ping`` answers 200 only when a request would be admitted now: 503 while the runner warms up (a
  phantom segmented end to end at start, so the first request costs what the next does; ``SERVING_WARMUP=0``
  skips it) and while every worker and queue place is taken;
* nothing leaves the device (no S3, no HealthImaging): the SEG travels in the response.

Run: ``python -m model_code.edge.runner --bundle DIR --port 8080`` (``--workers``/``--threads`` 0 or unset:
derived, workers x threads <= the device's CPUs; stdlib HTTP server,
numpy, pydicom, highdicom, onnxruntime; no torch, no network).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import socket
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from model_code.core.errors import ClientError, ModelDirectoryError, error_body
from model_code.core.failures import failure_of
from model_code.core.http import JSON, encode_error, negotiate, respond
from model_code.core.requests import ZipSeriesRequest, decode_request
from model_code.core.service import SegmentationService, Segmenter
from model_code.core.settings import InputLimits, ServerSettings
from model_code.core.threads import ThreadPlan, machine_vcpus, plan_threads
from model_code.edge.engine import EdgeModel
from model_code.edge.layout import BundleError
from model_code.synthetic.warmup import settle_after_warm_up, warmup_zip

logger = logging.getLogger("model_code.edge.runner")
MIB = 1 << 20
READY_LINE = "edge runner listening on"
WARMED_UP = "warmed up"
WARMING_UP = "warming up (segmenting a phantom before the first request): retry later"
_DRAIN_CHUNK = 64 * 1024
# A refused body up to this many times the request bound is read and dropped (in chunks, no memory kept) so
# the client sees the answer; a larger one gets the answer and a closed socket.
_DRAIN_FACTOR = 4


@dataclass(frozen=True)
class RunnerLimits:
    workers: int = 1
    queue: int = 2
    max_request_bytes: int = 256 * MIB
    max_series_bytes: int = 1024 * MIB
    # Every socket read (request line, headers, each body chunk, an idle keep-alive connection) waits this long.
    read_timeout_s: float = 15.0
    # A body of N bytes must arrive within read_timeout_s + N / this rate: a trickling client cannot stay forever.
    min_upload_bytes_per_s: int = 1 * MIB
    # Open connections, and bodies being read, at once: beyond them a client gets 503 at once (bounded threads
    # and memory: max_uploads x max_request_bytes).
    max_connections: int = 64
    max_uploads: int = 4

    def __post_init__(self) -> None:
        for name in ("workers", "max_request_bytes", "max_series_bytes", "min_upload_bytes_per_s",
                     "max_connections", "max_uploads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.queue < 0:
            raise ValueError(f"queue must be >= 0, got {self.queue}")
        if not self.read_timeout_s > 0:
            raise ValueError(f"read_timeout_s must be > 0, got {self.read_timeout_s}")

    def body_deadline_s(self, length: int) -> float:
        return self.read_timeout_s + length / self.min_upload_bytes_per_s


class _Counter:
    """A bounded count of places (admitted requests, uploads): ``take`` never blocks, ``free`` is visible."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._taken = 0
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            if self._taken >= self.size:
                return False
            self._taken += 1
            return True

    def give_back(self) -> None:
        with self._lock:
            if self._taken <= 0:
                raise RuntimeError("a place was given back that was never taken")
            self._taken -= 1

    @property
    def taken(self) -> int:
        with self._lock:
            return self._taken


class EdgeService:
    """Admission (queue bound), then one request: decode, then the core's request flow. Thread-safe.

    The flow's fetcher reads zip requests only: nothing leaves the device (no S3, no HealthImaging)."""

    def __init__(
        self, model: Segmenter, limits: RunnerLimits, inputs: InputLimits | None = None, *, warming: bool = False
    ) -> None:
        # The server's input limits (SERVING_* in the environment) with the runner's own two bounds.
        self.inputs = dataclasses.replace(
            inputs or InputLimits.from_env(),
            max_body_bytes=limits.max_request_bytes,
            max_expanded_bytes=limits.max_series_bytes,
        )
        self.model = SegmentationService(model, limits=self.inputs)
        self.limits = limits
        # Admitted = running + waiting; beyond that a request is turned away at once (503).
        self._admitted = _Counter(limits.workers + limits.queue)
        self._running = threading.Semaphore(limits.workers)
        self.uploads = _Counter(limits.max_uploads)
        # warming: not ready (/ping 503, requests 503) until warm_up has segmented a phantom end to end.
        self._warm = threading.Event()
        if not warming:
            self._warm.set()

    @property
    def warm(self) -> bool:
        return self._warm.is_set()

    def warm_up(self, payload: bytes) -> float:
        """Segment the zip ``payload`` through the whole flow, then report ready; the seconds it took."""
        seconds = self.model.warm_up(payload)
        settle_after_warm_up()  # the start-up's objects out of the collector's view (warmup.py says why)
        logger.info("%s in %.2f s: ready", WARMED_UP, seconds)  # logged before /ping can say 200
        self._warm.set()
        return seconds

    def admit(self) -> bool:
        return self._admitted.take()

    def release(self) -> None:
        self._admitted.give_back()

    def ready(self) -> tuple[bool, str]:
        """(whether a request would be admitted now, why not): what /ping answers."""
        if self.model.pipeline is None:
            return False, "no model is loaded"
        if not self.warm:
            return False, WARMING_UP
        admitted = self._admitted.taken
        if admitted >= self._admitted.size:
            return False, (f"busy: {min(admitted, self.limits.workers)} running, "
                           f"{max(admitted - self.limits.workers, 0)} waiting; retry later")
        return True, "healthy"

    def handle(self, body: bytes, content_type: str | None, accept: str | None) -> tuple[bytes, str, int]:
        try:
            negotiate(accept)  # a 406 before the work, not after it
            request = decode_request(body, content_type, limits=self.inputs)
            if not isinstance(request, ZipSeriesRequest):
                raise ClientError(
                    HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                    "the edge runner works offline and reads only application/zip (a zip of one series' DICOM "
                    "files); HealthImaging and S3 requests go to the cloud endpoint",
                )
            with self._running:
                prediction = self.model.predict(request)
        except Exception as error:  # one mapping for every server: the core's (a 500 carries an error ID)
            return encode_error(failure_of(error))
        return respond(prediction, accept)


class _Handler(BaseHTTPRequestHandler):
    server: EdgeHTTPServer
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        # Every read waits at most this long; a timed-out request line or header ends the connection
        # (BaseHTTPRequestHandler.handle_one_request catches the TimeoutError).
        self.connection.settimeout(self.server.service.limits.read_timeout_s)

    def log_message(self, format: str, *args: Any) -> None:
        logger.info("%s " + format, self.address_string(), *args)

    def _send(
        self, body: bytes, content_type: str, status: int, *, close: bool = False, extra: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        if close:
            # The unread body is still on the socket: the connection cannot be reused.
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def _refusal(self, length: int | None) -> tuple[int, str] | None:
        """(status, message) when a request must be turned away before its body is read; None admits it."""
        limits = self.server.service.limits
        if self.path != "/invocations":
            return 404, f"no route {self.path}: POST /invocations or GET /ping"
        if length is None:
            return 411, "send a Content-Length header (chunked bodies are not accepted)"
        if length > limits.max_request_bytes:
            return 413, (f"the body is {length} bytes, over this runner's {limits.max_request_bytes}: "
                         "send one series, or start the runner with a larger --max-request-mb")
        return None

    def _content_length(self) -> int | None:
        header = self.headers.get("Content-Length")
        return int(header) if header is not None and header.strip().isdigit() else None

    def handle_expect_100(self) -> bool:
        # A client that asks first (curl does for large bodies) learns of a refusal before it uploads.
        refusal = self._refusal(self._content_length())
        if refusal is None:
            return super().handle_expect_100()
        self._send(error_body(*refusal), JSON, refusal[0], close=True)
        return False

    def _drain(self, length: int | None) -> None:
        limits = self.server.service.limits
        if length is None or length > _DRAIN_FACTOR * limits.max_request_bytes:
            return
        while length > 0:
            chunk = self.rfile.read(min(_DRAIN_CHUNK, length))
            if not chunk:
                return
            length -= len(chunk)

    def _refuse(self, status: int, message: str, length: int | None, extra: dict[str, str] | None = None) -> None:
        self._drain(length)
        self._send(error_body(status, message), JSON, status, close=True, extra=extra)

    def _read_body(self, length: int) -> bytes | None:
        """The whole body, or None when it did not arrive in time (each read bounded by the socket timeout, the
        whole by ``body_deadline_s``) or the client went away."""
        deadline = time.monotonic() + self.server.service.limits.body_deadline_s(length)
        parts: list[bytes] = []
        remaining = length
        try:
            while remaining > 0:
                if time.monotonic() > deadline:
                    return None
                chunk = self.rfile.read1(min(_DRAIN_CHUNK * 16, remaining))
                if not chunk:
                    return None
                parts.append(chunk)
                remaining -= len(chunk)
        except (TimeoutError, ConnectionError):
            return None
        return b"".join(parts)

    def do_GET(self) -> None:
        if self.path == "/ping":
            ready, why = self.server.service.ready()
            if ready:
                self._send(b'{"status": "healthy"}', JSON, 200)
            else:
                self._send(error_body(503, why), JSON, 503, extra={"Retry-After": "5"})
        else:
            self._send(error_body(404, f"no route {self.path}: POST /invocations or GET /ping"), JSON, 404)

    def do_POST(self) -> None:
        service = self.server.service
        limits = service.limits
        length = self._content_length()
        refusal = self._refusal(length)
        if refusal is not None:
            self._refuse(*refusal, length)
            return
        assert length is not None  # _refusal answered 411 otherwise
        if not service.uploads.take():
            message = f"the runner is reading {limits.max_uploads} uploads already: retry later"
            self._refuse(503, message, None, extra={"Retry-After": "5"})
            return
        try:
            body = self._read_body(length)
        finally:
            service.uploads.give_back()
        if body is None:
            message = (f"the body ({length} bytes declared) did not arrive within "
                       f"{limits.body_deadline_s(length):.0f} s: send it at once")
            with contextlib.suppress(OSError):
                self._refuse(408, message, None)
            return
        if not service.warm:
            self._send(error_body(503, WARMING_UP), JSON, 503, extra={"Retry-After": "5"})
            return
        # Admission only now: a slow upload held no worker or queue place while it arrived.
        if not service.admit():
            message = (f"the runner is busy ({limits.workers} running, {limits.queue} waiting): retry later")
            self._send(error_body(503, message), JSON, 503, extra={"Retry-After": "5"})
            return
        try:
            try:
                answer = service.handle(body, self.headers.get("Content-Type"), self.headers.get("Accept"))
            except Exception as error:  # handle maps everything; this is the last guard, same mapping
                answer = encode_error(failure_of(error))
        finally:
            service.release()
        self._send(*answer)


class EdgeHTTPServer(ThreadingHTTPServer):
    """One thread per connection, at most ``max_connections`` of them; ``server_close`` ends them all.

    Threads are not daemons and the server joins them on close (``block_on_close``); the sockets still open
    are shut down first, so a thread waiting on an idle client wakes at once instead of at its read timeout.
    """

    daemon_threads = False
    block_on_close = True

    def __init__(self, address: tuple[str, int], service: EdgeService) -> None:
        super().__init__(address, _Handler)
        self.service = service
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            full = len(self._open) >= self.service.limits.max_connections
            if not full:
                self._open.add(request)
        if full:
            # No thread for it: a short answer on the raw socket, then closed.
            message = f"the runner has {self.service.limits.max_connections} connections open: retry later"
            body = error_body(503, message)
            head = (f"HTTP/1.1 503 Service Unavailable\r\nContent-Type: {JSON}\r\nContent-Length: {len(body)}\r\n"
                    "Retry-After: 5\r\nConnection: close\r\n\r\n").encode("ascii")
            with contextlib.suppress(OSError):
                request.settimeout(1.0)
                request.sendall(head + body)
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    @property
    def open_connections(self) -> int:
        with self._open_lock:
            return len(self._open)

    def server_close(self) -> None:
        with self._open_lock:
            still_open = list(self._open)
        for connection in still_open:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        super().server_close()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m model_code.edge.runner", description=__doc__.split("\n")[0])
    parser.add_argument("--bundle", type=Path, required=True, help="the exported edge bundle folder")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0 to serve the site network)")
    parser.add_argument("--port", type=int, default=8080, help="0 picks a free port (printed on start)")
    parser.add_argument("--threads", type=int, default=0,
                        help="onnxruntime intra-op threads per request (0: derived, workers x threads <= CPUs)")
    parser.add_argument("--workers", type=int, default=0, help="requests segmented at once (0: derived)")
    parser.add_argument("--queue", type=int, default=2, help="requests allowed to wait; more get 503")
    parser.add_argument("--max-request-mb", type=int, default=256)
    parser.add_argument("--max-series-mb", type=int, default=1024, help="bound on the zip's expanded size")
    parser.add_argument("--read-timeout-s", type=float, default=15.0, help="bound on every socket read")
    parser.add_argument("--min-upload-mb-per-s", type=int, default=1, help="slowest accepted upload")
    parser.add_argument("--max-connections", type=int, default=64, help="open connections at once; more get 503")
    parser.add_argument("--no-verify", action="store_true", help="skip the manifest checksums at start")
    return parser.parse_args(argv)


def runner_plan(workers: int, threads: int) -> ThreadPlan:
    """``--workers`` and ``--threads`` (0: derived from this device's CPUs, model_code.core.threads)."""
    for name, value in (("--workers", workers), ("--threads", threads)):
        if value < 0:
            raise ValueError(f"{name} must be >= 0 (0 derives it from the device's CPUs), got {value}")
    return plan_threads(machine_vcpus(), 0, workers=workers or None, threads=threads or None)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    args = parse_args(argv)
    try:
        plan = runner_plan(args.workers, args.threads)
        limits = RunnerLimits(
            workers=plan.workers,
            queue=args.queue,
            max_request_bytes=args.max_request_mb * MIB,
            max_series_bytes=args.max_series_mb * MIB,
            read_timeout_s=args.read_timeout_s,
            min_upload_bytes_per_s=args.min_upload_mb_per_s * MIB,
            max_connections=args.max_connections,
            max_uploads=plan.workers + args.queue + 1,
        )
        model = EdgeModel.load(args.bundle, threads=plan.threads, verify=not args.no_verify)
    except (BundleError, ModelDirectoryError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    warmup = ServerSettings.from_env().warmup
    service = EdgeService(model, limits, warming=warmup)
    server = EdgeHTTPServer((args.host, args.port), service)
    print(f"{READY_LINE} http://{args.host}:{server.server_port}", flush=True)
    failed: list[BaseException] = []
    if warmup:
        # Listening already, so /ping can say "warming up" (503) instead of refusing the connection.
        threading.Thread(target=_warm_up, args=(service, server, failed), name="warm-up", daemon=True).start()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    if failed:
        print(f"error: the warm-up segmentation of a phantom failed, so the runner never reported ready: "
              f"{failed[0]}", file=sys.stderr)
        return 2
    return 0


def _warm_up(service: EdgeService, server: EdgeHTTPServer, failed: list[BaseException]) -> None:
    try:
        service.warm_up(warmup_zip())
    except Exception as error:  # a model that cannot segment a phantom must not serve: stop the runner
        logger.exception("warm-up failed")
        failed.append(error)
        server.shutdown()


if __name__ == "__main__":
    raise SystemExit(main())
