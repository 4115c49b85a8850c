"""A loopback front for a real DICOMweb server (the private Orthanc): it checks each request's SigV4 signature the
way HealthImaging would (:mod:`testkit.sigv4`) and can answer a chosen status to the first requests (throttling,
a server error), then passes everything through to the upstream unchanged.

It stands in for HealthImaging's DICOMweb host in tests of the signed client: what the client signs is what it
sends, including STOW-RS bodies, and retries reach the real server.
"""

from __future__ import annotations

import contextlib
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

from testkit.loopback import loopback_server
from testkit.sigv4 import verify_sigv4

_PASSED_HEADERS = ("accept", "content-type")


@dataclass
class Front:
    url: str = ""  # the front's DICOMweb root: origin + the upstream's root path
    fail_first: int = 0  # answer fail_status to this many requests before passing any through
    fail_status: int = 503
    secret_key: str | None = None  # None: no signature required
    requests: list[dict[str, object]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _next(self, entry: dict[str, object]) -> int | None:
        """Record the request; the status to fail it with, or None to pass it through (``entry["failed_with"]``)."""
        with self._lock:
            self.requests.append(entry)
            status = None
            if entry["signature_problem"] is None and self.fail_first > 0:
                self.fail_first -= 1
                status = self.fail_status
            entry["failed_with"] = status
            return status


@contextlib.contextmanager
def dicomweb_front(
    upstream_root: str, *, fail_first: int = 0, fail_status: int = 503, secret_key: str | None = None,
    root_path: str | None = None,
) -> Iterator[Front]:
    """Serve a front for ``upstream_root`` (e.g. ``http://127.0.0.1:8042/dicom-web``) on loopback; ``root_path``
    is the root the front answers at (e.g. HealthImaging's ``/datastore/<id>``; default the upstream's)."""
    origin, _, upstream_path = upstream_root.partition("//")[2].partition("/")
    upstream_origin = upstream_root[: upstream_root.index(origin) + len(origin)]
    upstream_prefix = "/" + upstream_path.strip("/")
    front_prefix = "/" + (root_path if root_path is not None else upstream_path).strip("/")
    state = Front(fail_first=fail_first, fail_status=fail_status, secret_key=secret_key)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def _answer(self, status: int, body: bytes, content_type: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _handle(self, method: str) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {k.lower(): v for k, v in self.headers.items()}
            problem = None
            if state.secret_key is not None:
                problem = verify_sigv4(method, self.path, headers, state.secret_key, body=body)
            status = state._next({"method": method, "path": self.path, "signature_problem": problem})
            if problem is not None:
                return self._answer(403, f'{{"message": "{problem}"}}'.encode())
            if status is not None:
                return self._answer(status, b'{"message": "try again"}')
            forwarded = {name: headers[name] for name in _PASSED_HEADERS if name in headers}
            path = self.path
            if not path.startswith(front_prefix):
                return self._answer(404, b'{"message": "not below the DICOMweb root"}')
            request = urllib.request.Request(  # noqa: S310 - the loopback upstream's http:// URL
                upstream_origin + upstream_prefix + path[len(front_prefix):],
                data=body if method == "POST" else None, headers=forwarded, method=method,
            )
            try:
                with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
                    self._answer(response.status, response.read(), response.headers.get("Content-Type", ""))
            except urllib.error.HTTPError as error:
                self._answer(error.code, error.read(), error.headers.get("Content-Type", "") or "application/json")

        def do_GET(self) -> None:
            self._handle("GET")

        def do_POST(self) -> None:
            self._handle("POST")

    with loopback_server(Handler, name="dicomweb-front") as front_origin:
        state.url = f"{front_origin}{front_prefix}".rstrip("/")
        yield state
