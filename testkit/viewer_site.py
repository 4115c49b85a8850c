"""The deployed viewer's single origin, on loopback: OHIF's dist/ as the stack uploads it, the generated
``app-config.js``, the site's security headers, and ``/dicom-web/*`` proxied to a DICOMweb server behind a bearer
check (what CloudFront, the API's JWT authorizer and the signing proxy do in AWS).

One origin means what it means in the deployment: no CORS, ``connect-src 'self'``, and the DICOMweb server's
absolute BulkDataURIs rewritten by OHIF's data-source configuration (the upstream's Host header is kept, so the
server names itself, as HealthImaging does). Paths of the single-page app (no file extension) answer index.html
(stacks.viewer.ohif_site.is_app_route, the rule of the CloudFront function); a missing asset is a 404.
"""

from __future__ import annotations

import contextlib
import http.client
import mimetypes
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from stacks.viewer.ohif_site import DICOMWEB_PATH, is_app_route
from testkit.loopback import loopback_server

# The types CloudFront would send from S3 object metadata (BucketDeployment sets them from the file names).
_TYPES = {".wasm": "application/wasm", ".js": "text/javascript", ".mjs": "text/javascript", ".json": "application/json"}
_HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
               "transfer-encoding", "upgrade", "host", "content-length"}


@dataclass(frozen=True)
class ProxiedRequest:
    path: str
    status: int
    authorized: bool


@dataclass
class ViewerSite:
    """``origin`` is known once the server listens; ``app_config_js`` and ``headers`` may be set after that (the
    sign-in provider's configuration names the viewer's origin, and the viewer's names the provider's)."""

    origin: str  # e.g. http://127.0.0.1:40123
    app_config_js: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    authorize: Callable[[str | None], bool] | None = None
    requests: list[ProxiedRequest] = field(default_factory=list)

    def url(self, path: str) -> str:
        return self.origin + path


def _content_type(path: Path) -> str:
    return _TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"


def _make_handler(
    *,
    dist: Path,
    excluded: Sequence[str],
    upstream: urllib.parse.SplitResult,
    site: ViewerSite,
) -> type[BaseHTTPRequestHandler]:
    root = dist.resolve()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass  # the requests list is the log the tests read

        def _send(self, status: int, content_type: str, body: bytes, extra: Mapping[str, str] = {}) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in {**site.headers, **extra}.items():
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _static(self, path: str) -> None:
            if path == "/app-config.js":
                self._send(200, "text/javascript", site.app_config_js.encode(), {"Cache-Control": "no-cache"})
                return
            relative = path.lstrip("/")
            top = relative.split("/", 1)[0]
            file = (root / relative).resolve()
            servable = file.is_file() and file.is_relative_to(root) and top not in excluded
            if not servable:
                if not is_app_route(path):
                    self._send(404, "text/plain", b"not found")
                    return
                file = root / "index.html"
            self._send(200, _content_type(file), file.read_bytes(), {"Cache-Control": "no-cache"})

        def _proxy(self) -> None:
            authorized = site.authorize is None or site.authorize(self.headers.get("Authorization"))
            if not authorized:
                # What API Gateway's JWT authorizer answers for a missing or invalid token.
                site.requests.append(ProxiedRequest(self.path, 401, False))
                self._send(401, "application/json", b'{"message":"Unauthorized"}')
                return
            forwarded = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP | {"authorization"}}
            connection = http.client.HTTPConnection(upstream.netloc, timeout=60)
            try:
                connection.request("GET", upstream.path.rstrip("/") + self.path[len(DICOMWEB_PATH):],
                                   headers={**forwarded, "Host": upstream.netloc})
                response = connection.getresponse()
                body = response.read()
            finally:
                connection.close()
            site.requests.append(ProxiedRequest(self.path, response.status, True))
            kept = {k: v for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP | {"content-type"}}
            # The proxy's own rule in AWS: DICOM answers are never cached (stacks/viewer/runtime).
            kept["Cache-Control"] = "no-store"
            self._send(response.status, response.getheader("Content-Type", "application/octet-stream"), body, kept)

        def do_GET(self) -> None:
            path = urllib.parse.urlsplit(self.path).path
            if path == DICOMWEB_PATH or path.startswith(DICOMWEB_PATH + "/"):
                self._proxy()
            else:
                self._static(path)

        do_HEAD = do_GET  # noqa: N815

    return Handler


@contextlib.contextmanager
def serve_viewer(
    *,
    dist: Path,
    excluded: Sequence[str],
    dicomweb_url: str,
) -> Iterator[ViewerSite]:
    """Serve the site on a free loopback port until the block ends. ``dicomweb_url``: the upstream DICOMweb root
    (e.g. Orthanc's http://127.0.0.1:8042/dicom-web). Set the site's ``app_config_js``, ``headers`` and
    ``authorize`` (judges each proxied request's Authorization header; None lets every request through)."""
    site = ViewerSite(origin="")
    handler = _make_handler(dist=dist, excluded=excluded, upstream=urllib.parse.urlsplit(dicomweb_url), site=site)
    with loopback_server(handler, name="viewer-site") as origin:
        site.origin = origin
        yield site
