"""Start the edge runner on 127.0.0.1 inside a test (in process) and talk to it with urllib."""

from __future__ import annotations

import contextlib
import io
import threading
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from model_code.core.service import Segmenter
from model_code.edge.runner import EdgeHTTPServer, EdgeService, RunnerLimits


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    body: bytes
    headers: Mapping[str, str]


@contextlib.contextmanager
def serve(model: Segmenter, limits: RunnerLimits | None = None) -> Iterator[str]:
    """The runner on a free loopback port for the block; yields its base URL."""
    with serve_server(model, limits) as server:
        yield url_of(server)


@contextlib.contextmanager
def serve_server(model: Segmenter, limits: RunnerLimits | None = None) -> Iterator[EdgeHTTPServer]:
    """The runner on a free loopback port for the block; yields the server (its URL: ``url_of``)."""
    server = EdgeHTTPServer(("127.0.0.1", 0), EdgeService(model, limits or RunnerLimits()))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()  # joins every connection's thread (EdgeHTTPServer.block_on_close)
        thread.join(timeout=10)


def url_of(server: EdgeHTTPServer) -> str:
    return f"http://127.0.0.1:{server.server_port}"


def post(
    url: str, body: bytes, *, content_type: str | None, accept: str | None = None, timeout: float = 120
) -> Answer:
    headers = {k: v for k, v in (("Content-Type", content_type), ("Accept", accept)) if v is not None}
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310 - loopback
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - loopback
            return Answer(response.status, response.headers.get("Content-Type", ""), response.read(),
                          dict(response.headers))
    except urllib.error.HTTPError as error:
        return Answer(error.code, error.headers.get("Content-Type", ""), error.read(), dict(error.headers))


def zip_folder(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(Path(folder).iterdir()):
            archive.write(path, arcname=path.name)
    return buffer.getvalue()
