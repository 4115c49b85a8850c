"""A private Orthanc with its DICOMweb plugin on loopback: the real DICOMweb server the tests talk to.

Each server gets its own temp folder with a JSON config, storage/index folder and log file, a free
HTTP port, no DICOM (DIMSE) listener, and optionally a Lua script (filters that reject instances or
requests, to test failures deterministically). `orthanc_server()` yields once /dicom-web answers and
always stops the process (SIGTERM, then SIGKILL), so no Orthanc outlives the test.

Orthanc 1.10 has no bind-address option: it listens on every interface. "RemoteAccessAllowed": false
makes it refuse (403) any client that is not on loopback, so nothing off the machine can use it.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ORTHANC_BINARY = "Orthanc"  # /usr/sbin/Orthanc from Debian's `orthanc`
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")  # Debian's `orthanc-dicomweb`
DICOMWEB_ROOT = "/dicom-web/"
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


@dataclass(frozen=True)
class OrthancServer:
    http_url: str  # e.g. http://127.0.0.1:40123
    folder: Path  # config, storage and log live here
    pid: int

    @property
    def dicomweb_url(self) -> str:
        return self.http_url + DICOMWEB_ROOT.rstrip("/")

    @property
    def log_file(self) -> Path:
        return self.folder / "orthanc.log"


def _free_port() -> int:
    # Bind to port 0 and release it: the kernel does not hand the same port out again at once, so the
    # race with another process is negligible for tests.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _missing_install_message() -> str:
    return (
        "Orthanc with its DICOMweb plugin is not installed: run "
        "`make orthanc` (Debian packages orthanc and orthanc-dicomweb; the tests start their own server and "
        "never use the system service)."
    )


def check_installed() -> None:
    if shutil.which(ORTHANC_BINARY) is None or not DICOMWEB_PLUGIN.is_file():
        raise RuntimeError(_missing_install_message())


def _config(folder: Path, port: int, lua_script: Path | None) -> dict[str, object]:
    storage = folder / "storage"
    storage.mkdir()
    config: dict[str, object] = {
        "Name": "test-orthanc",
        "StorageDirectory": str(storage),
        "IndexDirectory": str(storage),
        "HttpServerEnabled": True,
        "HttpPort": port,
        "DicomServerEnabled": False,  # no DIMSE listener: DICOMweb is all the tests speak
        "RemoteAccessAllowed": False,  # only loopback clients (see module docstring)
        "AuthenticationEnabled": False,
        "Plugins": [str(DICOMWEB_PLUGIN)],
        "DicomWeb": {"Enable": True, "Root": DICOMWEB_ROOT, "EnableWado": False},
        "HttpThreadsCount": 32,  # >= the client's parallel GETs: extra keep-alive connections would queue
        # Orthanc gzips every answer by default: ~100 ms per 0.5 MB instance, 20x the transfer itself.
        "HttpCompressionEnabled": False,
        "ConcurrentJobs": 1,
        "SaveJobs": False,
        "StorageCompression": False,
        "LuaScripts": [str(lua_script)] if lua_script is not None else [],
    }
    return config


def _die_with_parent() -> None:
    # Runs in the child before exec: the kernel sends Orthanc SIGTERM when the test process dies, even by
    # SIGKILL (no finally runs then), so a killed test run leaves no Orthanc behind. Linux only.
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _wait_until_ready(server: OrthancServer, process: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    probe = server.dicomweb_url + "/studies"
    while True:
        if process.poll() is not None:
            raise RuntimeError(
                f"Orthanc exited with status {process.returncode} before answering; its log:\n"
                + server.log_file.read_text(errors="replace")[-4000:]
            )
        try:
            with urllib.request.urlopen(probe, timeout=1) as response:  # noqa: S310 - our own http:// URL
                if response.status == 200:
                    return
        except urllib.error.HTTPError as error:
            # The HTTP server is up but the request was refused (e.g. a Lua filter the test installed):
            # the server is ready all the same.
            if error.code in (400, 401, 403, 404):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"Orthanc did not answer {probe} within {timeout_s} s; its log:\n"
                + server.log_file.read_text(errors="replace")[-4000:]
            )
        time.sleep(0.05)


def _stop(process: subprocess.Popen[bytes], timeout_s: float = 20) -> None:
    if process.poll() is not None:
        return
    process.terminate()  # Orthanc shuts down cleanly on SIGTERM
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextlib.contextmanager
def orthanc_server(
    lua: str | None = None, *, config: dict[str, object] | None = None, startup_timeout_s: float = 60
) -> Iterator[OrthancServer]:
    """Start a private Orthanc; ``lua`` is the text of a Lua script to load (filters, callbacks) and
    ``config`` overrides configuration options (e.g. ``{"AuthenticationEnabled": True, ...}``)."""
    check_installed()
    with tempfile.TemporaryDirectory(prefix="orthanc-") as tmp:
        folder = Path(tmp)
        lua_path = None
        if lua is not None:
            lua_path = folder / "filters.lua"
            lua_path.write_text(lua)
        port = _free_port()
        config_path = folder / "orthanc.json"
        config_path.write_text(json.dumps({**_config(folder, port, lua_path), **(config or {})}, indent=2))
        log_path = folder / "orthanc.log"
        process = subprocess.Popen(
            [ORTHANC_BINARY, "--no-jobs", f"--logfile={log_path}", str(config_path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
        server = OrthancServer(http_url=f"http://127.0.0.1:{port}", folder=folder, pid=process.pid)
        try:
            _wait_until_ready(server, process, startup_timeout_s)
            yield server
        finally:
            _stop(process)

