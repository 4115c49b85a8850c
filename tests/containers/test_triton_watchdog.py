"""The Triton stub watchdog's reading of tritonserver's command line and of a stub's (issue 20, /ping truthful).

Against the real server (stubs in /proc, a killed stub reloaded): tests/integration/test_triton_health.py.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

from testkit.images import image_tree

ROOT = Path(__file__).resolve().parents[2]
HERE = ROOT / "containers" / "triton-inference"


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses resolve the module's annotations through sys.modules
    spec.loader.exec_module(module)
    return module


watchdog = _load("triton_watchdog", HERE / "triton_watchdog.py")

# python_backend's StubLauncher argument order, as a pytriton 0.7.0 tritonserver's stub showed it in /proc.
STUB = [
    "/run/backends/python/triton_python_backend_stub",
    "/models/spleen-v2/1/model.py",
    "triton-7035-d8b6",
    "1048576",
    "1048576",
    "7035",
    "/run/backends/python",
    "336",
    "spleen-v2_0_0",
    "DEFAULT",
    "",
]


def test_a_stub_command_line_names_its_model_and_instance() -> None:
    stub = watchdog.parse_stub(42, STUB)
    assert (stub.pid, stub.model, stub.instance) == (42, "spleen-v2", "spleen-v2_0_0")
    assert watchdog.parse_stub(42, ["/usr/bin/python3", *STUB[1:]]) is None
    assert watchdog.parse_stub(42, STUB[:3]) is None  # not the launcher's layout: not taken for a stub
    assert watchdog.parse_stub(42, []) is None  # a kernel thread's empty cmdline


@pytest.mark.parametrize(
    ("arguments", "url"),
    [
        # make serve-triton's server
        (["--http-address=127.0.0.1", "--http-port=8100", "--model-control-mode=explicit"], "http://127.0.0.1:8100"),
        # SageMaker's serve (HTTP off, explicit) plus what the image's shim appends: the last option wins
        (
            ["--allow-http=false", "--model-control-mode=explicit", "--allow-http=true", "--http-address=127.0.0.1"],
            "http://127.0.0.1:8000",
        ),
        (["--allow-http=false", "--model-control-mode=explicit"], None),  # serve alone: no repository API
        (["--http-port", "9000"], None),  # model control "none": no load/unload
        (["--model-control-mode", "explicit", "--http-port", "9000"], "http://127.0.0.1:9000"),
    ],
)
def test_the_repository_api_is_read_from_the_server_command(arguments: list[str], url: str | None) -> None:
    assert watchdog.repository_api_url(["tritonserver", *arguments]) == url


def test_without_a_repository_api_it_refuses_to_start(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(HERE / "triton_watchdog.py"), "--", "tritonserver", "--allow-http=false"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode != 0
    assert "needs tritonserver's repository API to tell an unload from a stub's death" in result.stderr


def test_the_stub_listing_takes_only_the_server_s_children() -> None:
    # This test's process has children that are no stubs: nothing is listed, and no other process is read as one.
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert watchdog.server_stubs(os.getpid()) == {}
    finally:
        child.kill()
        child.wait()


def test_the_image_carries_the_watchdog_and_its_shim() -> None:
    tree = image_tree(HERE / "Dockerfile")
    assert tree["/opt/triton-watchdog/triton_watchdog.py"] == HERE / "triton_watchdog.py"
    assert tree["/opt/triton-watchdog/bin/tritonserver"] == HERE / "watchdog-bin" / "tritonserver"


def test_the_server_ends_when_the_watchdog_is_killed(tmp_path: Path) -> None:
    """PR_SET_PDEATHSIG: a killed watchdog takes its server with it (a stand-in server: a sleeping python)."""
    pid_file = tmp_path / "server.pid"
    server = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(120)"
    command = [sys.executable, str(HERE / "triton_watchdog.py"), "--", sys.executable, "-c", server]
    watchdog_process = subprocess.Popen([*command, "--model-control-mode=explicit"], stderr=subprocess.PIPE)
    try:
        for _ in range(600):  # the stand-in writes its pid once it runs; a bound on the loop, not a deadline
            if pid_file.is_file() and pid_file.read_text():
                break
            watchdog_process.poll()
            assert watchdog_process.returncode is None, (
                watchdog_process.stderr.read() if watchdog_process.stderr else ""
            )
            time.sleep(0.1)
        server_pid = int(pid_file.read_text())
        watchdog_process.kill()
        watchdog_process.wait(timeout=60)
        for _ in range(600):
            try:
                state = Path(f"/proc/{server_pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except FileNotFoundError:
                break
            if state == "Z":
                break  # ended, waiting for init to reap it
            time.sleep(0.1)
        else:
            os.kill(server_pid, 9)
            pytest.fail("the server outlived its killed watchdog")
    finally:
        if watchdog_process.poll() is None:
            watchdog_process.kill()
            watchdog_process.wait()
