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
  with ``Retry-After``;
* nothing leaves the device (no S3, no HealthImaging): the SEG travels in the response.

Run: ``python -m model_code.edge.runner --bundle DIR --port 8080 --threads 2`` (stdlib HTTP server,
numpy, pydicom, highdicom, onnxruntime; no torch, no network).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import threading
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
from model_code.core.settings import InputLimits
from model_code.edge.engine import EdgeModel
from model_code.edge.layout import BundleError

logger = logging.getLogger("model_code.edge.runner")
MIB = 1 << 20
READY_LINE = "edge runner listening on"
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

    def __post_init__(self) -> None:
        for name in ("workers", "max_request_bytes", "max_series_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.queue < 0:
            raise ValueError(f"queue must be >= 0, got {self.queue}")


class EdgeService:
    """Admission (queue bound), then one request: decode, then the core's request flow. Thread-safe.

    The flow's fetcher reads zip requests only: nothing leaves the device (no S3, no HealthImaging)."""

    def __init__(self, model: Segmenter, limits: RunnerLimits, inputs: InputLimits | None = None) -> None:
        # The server's input limits (SERVING_* in the environment) with the runner's own two bounds.
        self.inputs = dataclasses.replace(
            inputs or InputLimits.from_env(),
            max_body_bytes=limits.max_request_bytes,
            max_expanded_bytes=limits.max_series_bytes,
        )
        self.model = SegmentationService(model, limits=self.inputs)
        self.limits = limits
        # Admitted = running + waiting; beyond that a request is turned away at once (503).
        self._admitted = threading.BoundedSemaphore(limits.workers + limits.queue)
        self._running = threading.Semaphore(limits.workers)

    def admit(self) -> bool:
        return self._admitted.acquire(blocking=False)

    def release(self) -> None:
        self._admitted.release()

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

    def do_GET(self) -> None:
        if self.path == "/ping":
            self._send(b'{"status": "healthy"}', JSON, 200)
        else:
            self._send(error_body(404, f"no route {self.path}: POST /invocations or GET /ping"), JSON, 404)

    def do_POST(self) -> None:
        service = self.server.service
        length = self._content_length()
        refusal = self._refusal(length)
        if refusal is not None:
            self._refuse(*refusal, length)
            return
        assert length is not None  # _refusal answered 411 otherwise
        if not service.admit():
            message = (f"the runner is busy ({service.limits.workers} running, {service.limits.queue} waiting): "
                       "retry later")
            self._refuse(503, message, length, extra={"Retry-After": "5"})
            return
        try:
            body = self.rfile.read(length)
            try:
                answer = service.handle(body, self.headers.get("Content-Type"), self.headers.get("Accept"))
            except Exception:  # an unexpected failure: logged here, never a traceback to the caller
                logger.exception("request failed")
                answer = (error_body(500, "the runner failed on this request: see its log"), JSON, 500)
        finally:
            service.release()
        self._send(*answer)


class EdgeHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], service: EdgeService) -> None:
        super().__init__(address, _Handler)
        self.service = service


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m model_code.edge.runner", description=__doc__.split("\n")[0])
    parser.add_argument("--bundle", type=Path, required=True, help="the exported edge bundle folder")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0 to serve the site network)")
    parser.add_argument("--port", type=int, default=8080, help="0 picks a free port (printed on start)")
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads")
    parser.add_argument("--workers", type=int, default=1, help="requests segmented at once")
    parser.add_argument("--queue", type=int, default=2, help="requests allowed to wait; more get 503")
    parser.add_argument("--max-request-mb", type=int, default=256)
    parser.add_argument("--max-series-mb", type=int, default=1024, help="bound on the zip's expanded size")
    parser.add_argument("--no-verify", action="store_true", help="skip the manifest checksums at start")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    args = parse_args(argv)
    try:
        limits = RunnerLimits(
            workers=args.workers,
            queue=args.queue,
            max_request_bytes=args.max_request_mb * MIB,
            max_series_bytes=args.max_series_mb * MIB,
        )
        model = EdgeModel.load(args.bundle, threads=args.threads, verify=not args.no_verify)
    except (BundleError, ModelDirectoryError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    server = EdgeHTTPServer((args.host, args.port), EdgeService(model, limits))
    print(f"{READY_LINE} http://{args.host}:{server.server_port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
