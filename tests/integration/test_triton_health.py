"""What tritonserver's readiness says when the python-backend model cannot serve (issue 20), on 127.0.0.1.

In the image, SageMaker's ``/ping`` is tritonserver's server readiness (``SAGEMAKER_TRITON_PING_MODE`` defaults
to "ready"; SageMaker's ``serve`` leaves ``--strict-readiness`` at its default, true), which is what
``/v2/health/ready`` answers here (``make serve-triton`` runs strict too). The authority for "would be served"
is an inference request. A server of its own (a model folder the test breaks, a stub it kills); waits are
request timeouts, nothing asserts how long anything took.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from model_code.triton_model.package import package_triton_model
from testkit.series import SeriesZip
from testkit.servers import ServerProcess, http_status, post, start_tritonserver, triton_infer_zips
from tests.integration.test_triton import deploy

pytestmark = pytest.mark.integration


def readiness(server: ServerProcess, model: str) -> tuple[int | None, int | None]:
    """(server readiness = the image's /ping, the model's readiness)."""
    return http_status(server.url + "/v2/health/ready"), http_status(f"{server.url}/v2/models/{model}/ready")


def stub_pids(repository: Path, model: str) -> list[int]:
    """The python backend stub processes of ``model`` (each names its model.py on its command line)."""
    marker = str(repository / model / "1" / "model.py")
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            arguments = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:  # ended while we looked
            continue
        if any(b"triton_python_backend_stub" in a for a in arguments[:1]) and marker.encode() in arguments:
            pids.append(int(entry.name))
    return pids


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
    (repository / broken / "1" / "model.ts").write_bytes(b"not a TorchScript archive")
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
    shutil.copy2(model_dirs["spleen"] / "model.ts", repository / broken / "1" / "model.ts")
    status, _, body = post(f"{server.url}/v2/repository/models/{broken}/load")
    assert status == 200, body
    assert readiness(server, broken) == (200, 200)


def test_a_dead_stub_is_still_reported_ready_and_a_reload_replaces_it(
    triton: tuple[ServerProcess, Path], serving: str, phantom: SeriesZip
) -> None:
    """The gap, pinned: tritonserver (pytriton 0.7.0's) keeps the model READY after its python stub died, and
    its server readiness (SageMaker's /ping) ignores instance liveness (triton-inference-server/server#8604);
    the stub is never restarted. When this fails because Triton says 400, Triton became truthful: update
    docs/containers.md (Health) and this test."""
    server, repository = triton
    pids = stub_pids(repository, serving)
    assert pids, "no python backend stub found for the loaded model"
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    # The request is the authority: Triton itself answers that no stub can serve it ...
    for _ in range(2):  # ... and keeps answering so: nothing restarts the stub
        status, _, _, body = triton_infer_zips(server.url, serving, [phantom.payload], timeout_s=120)
        assert status == 500, body[:300]
        assert "is not healthy" in json.loads(body)["error"]
    assert readiness(server, serving) == (200, 200)
    # The repository API's unload + load starts new stubs, and the model serves again.
    status, _, body = post(f"{server.url}/v2/repository/models/{serving}/unload")
    assert status == 200, body
    status, _, body = post(f"{server.url}/v2/repository/models/{serving}/load")
    assert status == 200, body
    assert set(stub_pids(repository, serving)).isdisjoint(pids)
    status, segs, _, body = triton_infer_zips(server.url, serving, [phantom.payload], timeout_s=120)
    assert status == 200, body[:300]
    assert len(segs) == 1
    assert readiness(server, serving) == (200, 200)
