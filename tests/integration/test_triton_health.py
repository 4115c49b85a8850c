"""What tritonserver's readiness says when the python-backend model cannot serve (issue 20), on 127.0.0.1.

In the image, SageMaker's ``/ping`` is tritonserver's server readiness (``SAGEMAKER_TRITON_PING_MODE`` defaults
to "ready"; SageMaker's ``serve`` leaves ``--strict-readiness`` at its default, true), which is what
``/v2/health/ready`` answers here (``make serve-triton`` runs strict too). The authority for "would be served"
is an inference request. A server of its own (a model folder the test breaks, stubs it kills), run, as
``make serve-triton`` runs it, under the stub watchdog (containers/triton-inference/triton_watchdog.py), and one
run the image's way (its PATH shim, the watchdog stopping the server). Waits are request timeouts and bounded
poll loops; nothing asserts how long anything took.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from model_code.core.bundle_layout import MODEL_PT, MODEL_TS
from model_code.triton_model.package import package_triton_model
from testkit.series import SeriesZip
from testkit.servers import REPO_ROOT, ServerProcess, http_status, post, start_tritonserver, triton_infer_zips
from tests.integration.test_triton import deploy

pytestmark = pytest.mark.integration

WATCHDOG = REPO_ROOT / "containers" / "triton-inference" / "triton_watchdog.py"
BUNDLE_WEIGHTS = (str(MODEL_TS), str(MODEL_PT))
POLLS = 1200  # readiness polls after a stub kill, 0.1 s apart: a bound on the loop, not a deadline asserted


def readiness(server: ServerProcess, model: str) -> tuple[int | None, int | None]:
    """(server readiness = the image's /ping, the model's readiness)."""
    return http_status(server.url + "/v2/health/ready"), http_status(f"{server.url}/v2/models/{model}/ready")


def _load_watchdog() -> ModuleType:
    spec = importlib.util.spec_from_file_location("triton_watchdog", WATCHDOG)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve the module's annotations through sys.modules
    spec.loader.exec_module(module)
    return module


watchdog = _load_watchdog()


def tritonserver_pid(server: ServerProcess) -> int:
    """The tritonserver process: the child the watchdog (the launcher's process) started."""
    children = Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children").read_text().split()
    servers = [int(c) for c in children if Path(f"/proc/{c}/exe").resolve().name == "tritonserver"]
    assert len(servers) == 1, f"the watchdog {server.process.pid} should have one tritonserver child: {children}"
    return servers[0]


def stub_pids(server: ServerProcess, model: str) -> list[int]:
    """The python backend stub processes of ``model``, as the watchdog sees them."""
    return sorted(s.pid for s in watchdog.server_stubs(tritonserver_pid(server)).values() if s.model == model)


@pytest.fixture(scope="module")
def triton(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, Path]]:
    repository = tmp_path_factory.mktemp("triton-health-repository")
    server = start_tritonserver(repository, tmp_path_factory.mktemp("tritonserver-health"))
    yield server, repository
    server.stop()


@pytest.fixture(scope="module")
def serving(
    triton: tuple[ServerProcess, Path], model_dirs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> str:
    server, repository = triton
    name = deploy(
        package_triton_model(model_dirs["spleen"], tmp_path_factory.mktemp("a") / "serving.tar.gz"), repository
    )
    status, _, body = post(f"{server.url}/v2/repository/models/{name}/load")
    assert status == 200, body
    assert readiness(server, name) == (200, 200)
    return name


def test_a_model_that_fails_to_load_is_not_ready_and_neither_is_the_server(
    triton: tuple[ServerProcess, Path], serving: str, model_dirs: dict[str, Path], tmp_path: Path
) -> None:
    server, repository = triton
    broken = deploy(package_triton_model(model_dirs["spleen"], tmp_path / "broken.tar.gz"), repository)
    for weights in BUNDLE_WEIGHTS:  # the bundle's network files, whichever the loader reads
        (repository / broken / "1" / weights).write_bytes(b"not a TorchScript archive")
    status, _, body = post(f"{server.url}/v2/repository/models/{broken}/load")
    assert status == 400, body
    assert f"load failed for model '{broken}'" in json.loads(body)["error"]
    # Triton's word: the model is UNAVAILABLE and not ready; under strict readiness the server is not ready
    # either (so SageMaker's /ping says 503 for the whole endpoint while one model it was asked for failed).
    index = {entry["name"]: entry for entry in json.loads(post(server.url + "/v2/repository/index")[2])}
    assert index[broken]["state"] == "UNAVAILABLE"
    assert readiness(server, broken) == (400, 400)
    assert http_status(f"{server.url}/v2/models/{serving}/ready") == 200
    # Unloading does not clear it: the failed version stays UNAVAILABLE (not "unloaded") and the server unready.
    status, _, body = post(f"{server.url}/v2/repository/models/{broken}/unload")
    assert status == 200, body
    assert http_status(server.url + "/v2/health/ready") == 400
    # A good model file loaded under that name makes both ready again.
    for weights in BUNDLE_WEIGHTS:
        shutil.copy2(model_dirs["spleen"] / weights, repository / broken / "1" / weights)
    status, _, body = post(f"{server.url}/v2/repository/models/{broken}/load")
    assert status == 200, body
    assert readiness(server, broken) == (200, 200)


def test_the_watchdog_maps_each_stub_of_the_running_server_to_its_model(
    triton: tuple[ServerProcess, Path], serving: str
) -> None:
    """Real /proc entries: the stubs tritonserver started, each named by its model.py and its instance."""
    server, repository = triton
    pid = tritonserver_pid(server)
    stubs = watchdog.server_stubs(pid)
    assert stubs, "no python backend stub found under tritonserver"
    states = {entry["name"]: entry.get("state") for entry in json.loads(post(server.url + "/v2/repository/index")[2])}
    for stub in stubs.values():
        arguments = Path(f"/proc/{stub.pid}/cmdline").read_bytes().split(b"\0")
        assert arguments[1].decode() == str(repository / stub.model / "1" / "model.py")
        assert stub.instance == f"{stub.model}_0_0"  # Triton's <model>_<group>_<index>, one CPU instance
        assert states[stub.model] == "READY"
    assert serving in {stub.model for stub in stubs.values()}
    # Only tritonserver's children count: the watchdog itself (their grandparent) has none.
    assert watchdog.server_stubs(server.process.pid) == {}


def test_a_dead_stub_makes_the_watchdog_reload_the_model_and_it_serves_again(
    triton: tuple[ServerProcess, Path], serving: str, phantom: SeriesZip
) -> None:
    """tritonserver alone keeps the model and itself READY after its python stub died, answers every request
    500 "Stub process ... is not healthy" and never restarts the stub (triton-inference-server/server#8604).
    The watchdog (triton_watchdog.py, started by the launcher) sees the stub gone while the model is READY,
    unloads it (not ready: /ping is not 200) and loads it again; the request is the authority that it serves."""
    server, _ = triton
    killed = stub_pids(server, serving)
    assert killed, "no python backend stub found for the loaded model"
    log_start = server.log_path.stat().st_size
    for pid in killed:
        os.kill(pid, signal.SIGKILL)
    killed_at = time.monotonic()
    seen: list[tuple[int | None, int | None]] = []
    not_ready_after: float | None = None
    for _ in range(POLLS):
        seen.append(readiness(server, serving))
        if not_ready_after is None and seen[-1] != (200, 200):
            not_ready_after = time.monotonic() - killed_at
        fresh = [pid for pid in stub_pids(server, serving) if pid not in killed]
        if fresh and seen[-1] == (200, 200):
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"the model never served again after its stub was killed; readiness seen: {sorted(set(seen))}")
    ready_after = time.monotonic() - killed_at
    # Ready again with a new stub: a request is served.
    status, segs, _, body = triton_infer_zips(server.url, serving, [phantom.payload], timeout_s=120)
    assert status == 200, body[:300]
    assert len(segs) == 1
    log = server.log_path.read_bytes()[log_start:].decode(errors="replace")
    assert f"model {serving}: python stub died; reloading it" in log, log[-2000:]
    assert f"model {serving}: reloaded; serving again" in log, log[-2000:]
    # Figures for the record (printed with -s, never asserted): kill -> not ready -> ready and served.
    served_after = time.monotonic() - killed_at
    print(
        f"\nstub kill: first not-ready poll after {not_ready_after} s, ready again after {ready_after:.1f} s, "
        f"served after {served_after:.1f} s; readiness in order {seen[:3]}...{seen[-3:]} ({len(seen)} polls)"
    )


def test_a_model_whose_stub_keeps_dying_is_left_unloaded(
    triton: tuple[ServerProcess, Path], model_dirs: dict[str, Path], tmp_path: Path
) -> None:
    """Bounded: the watchdog reloads a model 3 times within 600 s (its defaults); the 4th death leaves it unloaded
    and not ready, with a log line naming it, rather than crash-looping."""
    server, repository = triton
    name = deploy(package_triton_model(model_dirs["spleen"], tmp_path / "flaky.tar.gz"), repository)
    status, _, body = post(f"{server.url}/v2/repository/models/{name}/load")
    assert status == 200, body
    log_start = server.log_path.stat().st_size
    for death in range(4):
        killed = stub_pids(server, name)
        assert killed, f"no stub for {name} before death {death + 1}"
        for pid in killed:
            os.kill(pid, signal.SIGKILL)
        for _ in range(POLLS):
            log = server.log_path.read_bytes()[log_start:].decode(errors="replace")
            if death < 3 and log.count(f"model {name}: reloaded; serving again") == death + 1:
                break
            if death == 3 and f"model {name}: python stub died again after 3 reloads" in log:
                break
            time.sleep(0.1)
        else:
            pytest.fail(f"no watchdog verdict after death {death + 1}: {log[-2000:]}")
    assert "left unloaded (not ready)" in log
    assert http_status(f"{server.url}/v2/models/{name}/ready") == 400
    assert stub_pids(server, name) == []
    states = {entry["name"]: entry.get("state") for entry in json.loads(post(server.url + "/v2/repository/index")[2])}
    assert states[name] != "READY"


def test_in_the_image_a_dead_stub_stops_the_server(
    model_dirs: dict[str, Path], phantom: SeriesZip, tmp_path: Path
) -> None:
    """The image's way (``local_triton.py --as-image``): the shim the Dockerfile puts first on PATH, given SageMaker
    serve's --allow-http=false first, turns HTTP on on loopback for the watchdog (tritonserver keeps an option's
    last value), and a dead stub stops tritonserver: the container's /ping then fails and SageMaker replaces it."""
    repository = tmp_path / "repository"
    repository.mkdir()
    server = start_tritonserver(repository, tmp_path / "run", launcher_args=["--as-image"])
    try:
        name = deploy(package_triton_model(model_dirs["spleen"], tmp_path / "image.tar.gz"), repository)
        status, _, body = post(f"{server.url}/v2/repository/models/{name}/load")
        assert status == 200, body
        status, segs, _, body = triton_infer_zips(server.url, name, [phantom.payload], timeout_s=120)
        assert (status, len(segs)) == (200, 1), body[:300]
        # SageMaker unloading a model (its stub ends cleanly) is no death: the server stays up.
        status, _, body = post(f"{server.url}/v2/repository/models/{name}/unload")
        assert status == 200, body
        status, _, body = post(f"{server.url}/v2/repository/models/{name}/load")
        assert status == 200, body
        assert server.alive()
        for pid in stub_pids(server, name):
            os.kill(pid, signal.SIGKILL)
        code = server.process.wait(timeout=120)  # a bound on the wait, not a threshold asserted
        assert code == 1, f"the watchdog should exit 1 after stopping tritonserver, got {code}"
        assert http_status(server.url + "/v2/health/live") is None  # nothing answers any more
        log = server.log_path.read_text(errors="replace")
        assert "stub death -> terminate" in log
        assert f"python stub of model(s) ['{name}'] died; stopping tritonserver" in log, log[-2000:]
    finally:
        server.stop()
