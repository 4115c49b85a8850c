"""Harness for tests and benchmarks: the real serving stacks (TorchServe, tritonserver) started on 127.0.0.1.

Servers run in their own process group, so stopping one ends TorchServe's Java frontend and its Python
workers together; a server that does not come up raises with the tail of its logs.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SERVE_VENV = REPO_ROOT / ".venv-serve"
TRITON_VENV = REPO_ROOT / ".venv-triton"
LOCAL_SERVE = REPO_ROOT / "containers" / "pytorch-inference" / "local_serve.py"


def free_port_block(size: int = 4, *, start: int = 20000, stop: int = 40000) -> int:
    """A port P with P..P+size-1 and P+1000 free on 127.0.0.1 (local_serve derives its ports from P)."""
    for port in range(start + (os.getpid() % 997) * 10, stop, 17):
        wanted = [*range(port, port + size), port + 1000]
        if all(_free(p) for p in wanted):
            return port
    raise RuntimeError(f"no free block of {size} ports in {start}..{stop} on 127.0.0.1")


def _free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass
class ServerProcess:
    """A server started in its own process group; ``url`` is its HTTP base address."""

    process: subprocess.Popen[bytes]
    url: str
    log_path: Path
    logs_dir: Path | None = None

    def logs(self, limit: int = 6000) -> str:
        parts = [self.log_path.read_text(errors="replace")[-limit:]]
        if self.logs_dir is not None:
            for name in ("model_log.log", "ts_log.log"):
                path = self.logs_dir / name
                if path.is_file():
                    parts.append(f"--- {name}\n" + path.read_text(errors="replace")[-limit:])
        return "\n".join(parts)

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout_s: float = 20.0) -> None:
        if not self.alive():
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=timeout_s)


def server_processes(server: ServerProcess) -> dict[int, str]:
    """pid -> role ("worker", "frontend", "launcher") of every process of a TorchServe started here: each names
    its run folder on its command line (the launcher's config, the frontend's java.io.tmpdir, each worker's
    socket). Read from /proc (ps would cut long command lines to the terminal's width)."""
    marker = str(server.log_path.parent)
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = " ".join(a.decode(errors="replace") for a in (entry / "cmdline").read_bytes().split(b"\0") if a)
        except OSError:  # the process ended while we looked
            continue
        if marker in text:
            role = "worker" if "model_service_worker" in text else ("frontend" if "java" in text else "launcher")
            found[int(entry.name)] = role
    return found


def http_status(url: str, *, timeout_s: float = 5.0) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 - loopback URLs we built
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except (urllib.error.URLError, OSError):
        return None


def wait_until_ready(server: ServerProcess, path: str, *, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not server.alive():
            raise RuntimeError(f"{what} exited with {server.process.returncode} before answering:\n{server.logs()}")
        if http_status(server.url + path) == 200:
            return
        time.sleep(0.5)
    server.stop()
    raise RuntimeError(f"{what} did not answer {path} with 200 within {timeout_s:.0f} s:\n{server.logs()}")


def _require_venv(venv: Path, target: str) -> Path:
    python = venv / "bin" / "python"
    if not (venv / ".installed").is_file() or not python.is_file():
        raise RuntimeError(f"{venv} is not built: run `make {target}` (tests depend on it; it is never skipped)")
    return python


def start_torchserve(
    model_dir: Path,
    run_dir: Path,
    *,
    port: int | None = None,
    workers: int = 1,
    env: dict[str, str] | None = None,
    timeout_s: float = 180.0,
) -> ServerProcess:
    """``make serve``'s launcher, on a free loopback port, ready when /ping answers 200."""
    server = launch_torchserve(model_dir, run_dir, port=port, workers=workers, env=env)
    wait_until_ready(server, "/ping", timeout_s=timeout_s, what="TorchServe")
    return server


def launch_torchserve(
    model_dir: Path, run_dir: Path, *, port: int | None = None, workers: int = 1, env: dict[str, str] | None = None
) -> ServerProcess:
    """``make serve``'s launcher, started and not waited for (a test of what /ping says while it starts)."""
    python = _require_venv(SERVE_VENV, "venv-serve")
    port = port or free_port_block()
    run_dir.mkdir(parents=True, exist_ok=True)
    log_path = run_dir / "launcher.log"
    command = [str(python), str(LOCAL_SERVE), "--port", str(port), "--model-dir", str(model_dir)]
    command += ["--workers", str(workers), "--run-dir", str(run_dir)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
    return ServerProcess(process=process, url=f"http://127.0.0.1:{port}", log_path=log_path, logs_dir=run_dir / "logs")


@contextlib.contextmanager
def running(server: ServerProcess) -> Iterator[ServerProcess]:
    try:
        yield server
    finally:
        server.stop()


def invoke(
    url: str, body: bytes, *, content_type: str | None, accept: str | None = None, timeout_s: float = 300.0
) -> tuple[int, str, bytes]:
    """POST /invocations; returns (status, content type, body) for any status."""
    headers = {}
    if content_type is not None:
        headers["Content-Type"] = content_type
    if accept is not None:
        headers["Accept"] = accept
    request = urllib.request.Request(url + "/invocations", data=body, headers=headers, method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310 - loopback
            return int(response.status), response.headers.get("Content-Type", ""), response.read()
    except urllib.error.HTTPError as error:
        return int(error.code), error.headers.get("Content-Type", ""), error.read()


LOCAL_TRITON = REPO_ROOT / "containers" / "triton-inference" / "local_triton.py"


def start_tritonserver(
    repository: Path,
    run_dir: Path,
    *,
    port: int | None = None,
    timeout_s: float = 120.0,
    launcher_args: Sequence[str] = (),
) -> ServerProcess:
    """pytriton's tritonserver with explicit model control; ready when /v2/health/live answers 200.

    ``launcher_args`` go to local_triton.py (``--as-image``: the image's watchdog shim)."""
    python = _require_venv(TRITON_VENV, "venv-triton")
    port = port or free_port_block(3)
    run_dir.mkdir(parents=True, exist_ok=True)
    log_path = run_dir / "tritonserver.log"
    command = [str(python), str(LOCAL_TRITON), "--port", str(port), "--repository", str(repository)]
    command += ["--run-dir", str(run_dir), *launcher_args]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    server = ServerProcess(process=process, url=f"http://127.0.0.1:{port}", log_path=log_path)
    wait_until_ready(server, "/v2/health/live", timeout_s=timeout_s, what="tritonserver")
    return server


def post(url: str, body: bytes = b"", *, headers: dict[str, str] | None = None, timeout_s: float = 300.0) -> tuple[
    int, dict[str, str], bytes
]:
    request = urllib.request.Request(url, data=body, headers=headers or {}, method="POST")  # noqa: S310 - loopback
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310
            return int(response.status), dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return int(error.code), dict(error.headers), error.read()


def get(url: str, *, timeout_s: float = 30.0) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 - loopback URLs we built
            return int(response.status), dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return int(error.code), dict(error.headers), error.read()


def triton_infer_zips(
    url: str, model: str, zips: Sequence[bytes], *, timeout_s: float = 300.0
) -> tuple[int, list[bytes], list[bytes], bytes]:
    """KServe v2 over HTTP with Triton's binary-data extension: (status, SEGs, summaries, raw body).

    BYTES tensors travel as 4-byte little-endian lengths followed by the bytes (tritonclient's layout).
    """
    import json

    import numpy as np
    from tritonclient.utils import deserialize_bytes_tensor, serialize_byte_tensor

    tensor = serialize_byte_tensor(np.array([[z] for z in zips], dtype=np.object_))
    # A 0-d object array holding the serialized bytes (tobytes() would give the object pointer).
    raw = bytes(tensor.item()) if tensor is not None else b""
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "DICOM_ZIP",
                    "shape": [len(zips), 1],
                    "datatype": "BYTES",
                    "parameters": {"binary_data_size": len(raw)},
                }
            ],
            "outputs": [
                {"name": "SEG", "parameters": {"binary_data": True}},
                {"name": "SUMMARY", "parameters": {"binary_data": True}},
            ],
        }
    ).encode()
    status, headers, body = post(
        f"{url}/v2/models/{model}/infer",
        header + raw,
        headers={"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(len(header))},
        timeout_s=timeout_s,
    )
    if status != 200:
        return status, [], [], body
    header_length = int({k.lower(): v for k, v in headers.items()}.get("inference-header-content-length", len(body)))
    document = json.loads(body[:header_length])
    offset = header_length
    outputs: dict[str, list[bytes]] = {}
    for output in document["outputs"]:
        size = int(output["parameters"]["binary_data_size"])
        values = deserialize_bytes_tensor(body[offset : offset + size])
        outputs[output["name"]] = [bytes(v) for v in values]
        offset += size
    return status, outputs["SEG"], outputs["SUMMARY"], body
