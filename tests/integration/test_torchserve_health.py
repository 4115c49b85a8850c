"""TorchServe's /ping on 127.0.0.1 is truthful (issue 20): 200 only while a request would be served now.

The image's ``ping`` endpoint plugin (containers/pytorch-inference/ts-plugins, loaded through ``plugins_path``)
replaces the frontend's own, which answered 200 for minutes after its only worker was killed and the model
folder deleted. The authority for "would be served" is TorchServe itself: its management API's worker status
(READY is WorkerState.WORKER_MODEL_LOADED) and an /invocations request. One server of its own (one worker, a
model folder the tests may delete); every wait is a bounded poll, nothing asserts how long anything took.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from testkit.series import SeriesZip
from testkit.servers import (
    LOCAL_SERVE,
    SERVE_VENV,
    ServerProcess,
    invoke,
    launch_torchserve,
    server_processes,
    start_torchserve,
)

pytestmark = pytest.mark.integration
STARTUP_TIMEOUT_S = 180.0
POLL_S = 0.05


@dataclass
class Startup:
    """Every /ping answer from launch until the first 200, and TorchServe's worker status right after it."""

    answers: list[tuple[int | None, dict[str, object] | None]] = field(default_factory=list)
    launch_to_first_answer_s: float | None = None
    launch_to_first_200_s: float | None = None
    workers_at_first_200: list[str] = field(default_factory=list)


def ping(server: ServerProcess) -> tuple[int | None, dict[str, object] | None]:
    """(status, JSON body) of GET /ping; (None, None) while nothing listens."""
    try:
        with urllib.request.urlopen(server.url + "/ping", timeout=10) as response:  # noqa: S310 - loopback
            return int(response.status), json.loads(response.read())
    except urllib.error.HTTPError as error:
        status, content_type, body = int(error.code), error.headers.get("Content-Type"), error.read()
    except (urllib.error.URLError, OSError):
        return None, None
    assert content_type == "application/json", body[:300]
    return status, json.loads(body)


def worker_statuses(server: ServerProcess) -> list[str]:
    """TorchServe's own word on its workers: the management API's describe (READY = model loaded)."""
    with urllib.request.urlopen(server.url + "/models/model", timeout=10) as response:  # noqa: S310 - loopback
        return [str(worker["status"]) for worker in json.loads(response.read())[0]["workers"]]


def until(condition: Callable[[], bool], what: str, server: ServerProcess, timeout_s: float = 180.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout_s:.0f} s\n{server.logs(3000)}")
        time.sleep(POLL_S)


def retries(server: ServerProcess) -> int:
    """Worker restarts TorchServe has scheduled ("Retry worker: ID in N seconds."; each line is logged twice)."""
    assert server.logs_dir is not None
    log = (server.logs_dir / "ts_log.log").read_text(errors="replace")
    return len({line for line in log.splitlines() if "Retry worker:" in line})


def kill_workers(server: ServerProcess) -> list[int]:
    killed = [pid for pid, role in server_processes(server).items() if role == "worker"]
    assert killed, "no worker process found"
    for pid in killed:
        os.kill(pid, signal.SIGKILL)
    return killed


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from testkit.models import save_threshold_model

    return save_threshold_model(tmp_path_factory.mktemp("health-model") / "spleen")


@pytest.fixture(scope="module")
def started(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, Startup]]:
    """A one-worker TorchServe, with every /ping it answered from launch until it said 200."""
    launched = time.monotonic()
    server = launch_torchserve(
        model_dir, tmp_path_factory.mktemp("torchserve-health"), workers=1, env={"AWS_REGION": "us-east-1"}
    )
    startup = Startup()
    try:
        while True:
            if not server.alive():
                pytest.fail(f"TorchServe exited with {server.process.returncode}:\n{server.logs()}")
            if time.monotonic() - launched > STARTUP_TIMEOUT_S:
                pytest.fail(f"/ping never answered 200 within {STARTUP_TIMEOUT_S:.0f} s:\n{server.logs()}")
            status, body = ping(server)
            startup.answers.append((status, body))
            if status is not None and startup.launch_to_first_answer_s is None:
                startup.launch_to_first_answer_s = time.monotonic() - launched
            if status == 200:
                startup.launch_to_first_200_s = time.monotonic() - launched
                startup.workers_at_first_200 = worker_statuses(server)
                break
            time.sleep(POLL_S)
        answered = [status for status, _ in startup.answers if status is not None]
        print(
            f"\nTorchServe startup: first /ping answered after {startup.launch_to_first_answer_s:.1f} s, first 200"
            f" after {startup.launch_to_first_200_s:.1f} s; {len(answered) - 1} answers before it"
            f" ({sorted(set(answered[:-1]))}); workers at the first 200: {startup.workers_at_first_200}"
        )
        yield server, startup
    finally:
        server.stop()


def test_ping_says_503_until_the_model_is_loaded(started: tuple[ServerProcess, Startup]) -> None:
    _, startup = started
    before = startup.answers[:-1]
    answered = [(status, body) for status, body in before if status is not None]
    # The frontend listens while the worker still loads the model: those pings were answered, and with 503.
    assert answered, "no /ping was answered before the first 200: nothing here shows what /ping says during load"
    for status, body in answered:
        assert status == 503
        assert body is not None
        assert body["status"] == "Unhealthy"
        error = body["error"]
        assert isinstance(error, dict)
        assert error["status"] == 503
        assert any(
            cause in str(error["message"])
            for cause in ("model loaded", "no model is registered", "the frontend is warming up")
        ), error
    # ... and when it says 200, TorchServe's own management API reports a worker with the model loaded.
    assert "READY" in startup.workers_at_first_200
    assert startup.answers[-1][1] == {"status": "Healthy", "models": {"model": {"workers": 1, "ready": 1}}}


def test_ping_says_200_only_after_the_frontend_warmed_up(started: tuple[ServerProcess, Startup]) -> None:
    """Issue 19: once the worker is loaded, /ping holds 503 while the frontend sends one request of its own
    through /invocations (a zip-typed body of zeros the worker refuses with 400), and says 200 after it."""
    server, startup = started
    messages = [str(body["error"]["message"]) for status, body in startup.answers[:-1]  # type: ignore[index]
                if status == 503 and body is not None]
    warming = [index for index, message in enumerate(messages) if "the frontend is warming up" in message]
    # The warm-up starts only once the model has a loaded worker: every "warming up" 503 comes after the last
    # "no worker with the model loaded" one (a poll may or may not fall into its window, hence no count).
    loading = [index for index, message in enumerate(messages) if "model loaded" in message]
    assert not warming or not loading or min(warming) > max(loading), messages
    ts_log = (server.logs_dir / "ts_log.log").read_text()  # type: ignore[operator]
    assert "frontend warmed up in" in ts_log, ts_log[-3000:]
    assert "/invocations answered 400 to its warm-up request" in ts_log
    model_log = (server.logs_dir / "model_log.log").read_text()  # type: ignore[operator]
    assert "not a readable zip" in model_log  # the worker's answer: input_fn refused it, no model work


def test_a_killed_worker_makes_ping_503_until_torchserve_replaces_it(
    started: tuple[ServerProcess, Startup], phantom: SeriesZip
) -> None:
    server, _ = started
    until(lambda: ping(server)[0] == 200, "/ping 200 before the kill", server)
    seen = retries(server)
    kill_workers(server)
    # TorchServe waits before it restarts a dead worker (1 s first), then the new one loads the model.
    until(lambda: ping(server)[0] == 503, "/ping 503 after the only worker was killed", server)
    status, body = ping(server)
    if status == 503:  # (unless the replacement is already loaded)
        assert body is not None
        assert "model 'model' has no worker with the model loaded" in str(body["error"])
    until(lambda: retries(server) > seen, "TorchServe scheduling the worker's restart", server)
    until(lambda: ping(server)[0] == 200, "/ping 200 once TorchServe restarted the worker", server)
    assert "READY" in worker_statuses(server)
    answer = invoke(server.url, phantom.payload, content_type="application/zip", accept="application/json")
    assert answer[0] == 200, answer[2][:300]


def test_ping_stays_503_while_the_model_folder_is_gone(
    started: tuple[ServerProcess, Startup], model_dir: Path, phantom: SeriesZip, tmp_path: Path
) -> None:
    server, _ = started
    until(lambda: ping(server)[0] == 200, "/ping 200 before the model folder is removed", server)
    kept = shutil.copytree(model_dir, tmp_path / "kept")
    shutil.rmtree(model_dir)
    seen = retries(server)
    kill_workers(server)
    answers: list[int | None] = []

    def failed_restarts() -> bool:
        answers.append(ping(server)[0])
        return retries(server) >= seen + 3

    # Each restarted worker fails to load the model (its folder is gone); TorchServe retries with back-off.
    # Every /ping across three failed restarts, after the frontend noticed the kill, says 503.
    until(failed_restarts, "three failed worker restarts", server)
    first_503 = answers.index(503)
    assert set(answers[first_503:]) == {503}, answers
    assert all(status in (200, 503) for status in answers[:first_503]), answers
    assert worker_statuses(server).count("READY") == 0
    body = ping(server)[1]
    assert body is not None
    assert body["models"] == {"model": {"workers": 1, "ready": 0}}
    # The model is back: TorchServe's next restart loads it and /ping says 200 again.
    shutil.copytree(kept, model_dir)
    until(lambda: ping(server)[0] == 200, "/ping 200 once the model folder is back", server)
    answer = invoke(server.url, phantom.payload, content_type="application/zip", accept="application/json")
    assert answer[0] == 200, answer[2][:300]


def test_serving_warmup_0_skips_both_warm_ups(model_dir: Path, tmp_path: Path, phantom: SeriesZip) -> None:
    """SERVING_WARMUP=0: no phantom in model_fn, no request of the frontend's own; /ping 200 once the worker is
    loaded, and requests are served."""
    server = start_torchserve(model_dir, tmp_path / "run", workers=1,
                              env={"AWS_REGION": "us-east-1", "SERVING_WARMUP": "0"})
    try:
        assert ping(server)[0] == 200
        status, _, body = invoke(server.url, phantom.payload, content_type="application/zip",
                                 accept="application/dicom")
        assert status == 200, body[:300]
        assert server.logs_dir is not None
        log = server.logs_dir / "model_log.log"
        # the frontend copies the worker's stdout into the log on a thread of its own: wait for the request's line
        until(lambda: "request stages (s), status 200" in log.read_text(), "the request's line in the log", server)
    finally:
        server.stop()
    model_log = log.read_text()
    ts_log = (server.logs_dir / "ts_log.log").read_text()
    assert "warmed up in" not in model_log
    assert "warm-up request" not in ts_log
    assert "not a readable zip" not in model_log


@pytest.mark.parametrize(
    ("multi_model", "expected"),
    [
        (False, 503),  # a single-model endpoint with no model serves nothing
        (True, 200),  # a multi-model endpoint starts empty; SageMaker loads models once /ping is 200
    ],
    ids=["single-model", "multi-model"],
)
def test_with_no_model_registered(model_dir: Path, tmp_path: Path, multi_model: bool, expected: int) -> None:
    env = {"AWS_REGION": "us-east-1"}
    if multi_model:
        env["SAGEMAKER_MULTI_MODEL"] = "true"
    server = start_torchserve(model_dir, tmp_path / "run", workers=1, env=env)
    try:
        # The management API (same port, as SageMaker's toolkit binds it) unregisters the model.
        request = urllib.request.Request(server.url + "/models/model", method="DELETE")  # noqa: S310 - loopback
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 - loopback
            assert response.status == 200
        until(lambda: ping(server)[0] == expected, f"/ping {expected} with no model", server)
        status, body = ping(server)
        assert status == expected
        assert body is not None
        assert body["models"] == {}
        if expected == 503:
            assert "no model is registered" in str(body["error"])
    finally:
        server.stop()


def test_the_images_properties_give_torchserve_the_plugins_folder(tmp_path: Path) -> None:
    """The Dockerfile's own properties edit, run by bash on copies of the toolkit's files, then the toolkit's
    properties generator and TorchServe's launcher parser (both in .venv-serve) read `plugins_path` from it."""
    spec = importlib.util.spec_from_file_location("local_serve", LOCAL_SERVE)
    assert spec is not None
    assert spec.loader is not None
    local_serve = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(local_serve)
    python = str(SERVE_VENV / "bin" / "python")
    text = (LOCAL_SERVE.parent / "Dockerfile").read_text().replace("\\\n", " ")
    loop = text[text.index('for f in "${toolkit_etc}/default-ts.properties"') :]
    loop = loop[: loop.index("done") + len("done")]
    toolkit = subprocess.run(
        [python, "-c", "import os, sagemaker_pytorch_serving_container as m; print(os.path.dirname(m.__file__))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    etc = tmp_path / "etc"
    shutil.copytree(Path(toolkit) / "etc", etc)  # a copy: the venv's own files stay as pip installed them
    subprocess.run(["bash", "-c", f"set -euo pipefail; toolkit_etc={etc}; {loop}"], check=True)
    script = (
        "import json, os, sys\n"
        "from sagemaker_pytorch_serving_container import torchserve\n"
        "from ts.model_server import load_properties\n"
        "torchserve.DEFAULT_TS_CONFIG_FILE = sys.argv[1]\n"
        "generated = torchserve._generate_ts_config_properties(torchserve.DEFAULT_HANDLER_SERVICE)\n"
        "open(sys.argv[2], 'w').write(generated)\n"
        "print(json.dumps(load_properties(sys.argv[2])))\n"
    )
    completed = subprocess.run(
        [python, "-c", script, str(etc / "default-ts.properties"), str(tmp_path / "ts.properties")],
        capture_output=True,
        text=True,
        check=True,
    )
    properties = json.loads(completed.stdout.splitlines()[-1])
    assert properties["plugins_path"] == local_serve.IMAGE_PLUGINS_DIR
    assert properties["enable_model_api"] == "true"  # the newline fix: no key glued to the next
    assert (etc / "mme-ts.properties").read_text().splitlines()[-1] == f"plugins_path={local_serve.IMAGE_PLUGINS_DIR}"
