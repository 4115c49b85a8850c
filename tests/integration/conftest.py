"""Session fixtures: the real serving stacks, each started once, on 127.0.0.1.

A stack's venv is built through its make target when missing (never skipped); a server that does not come
up fails the tests with its log.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from testkit.series import SeriesZip, series_zip, zip_datasets
from testkit.servers import REPO_ROOT, SERVE_VENV, TRITON_VENV, ServerProcess, start_torchserve, start_tritonserver


def ensure_venv(venv: Path, target: str) -> None:
    if (venv / ".installed").is_file():
        return
    completed = subprocess.run(
        ["make", "--no-print-directory", "-C", str(REPO_ROOT), target],
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        pytest.fail(f"`make {target}` failed:\n{completed.stdout[-3000:]}\n{completed.stderr[-3000:]}")


@pytest.fixture(scope="session")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two models honouring the contract, told apart by their HU band (and so by their masks)."""
    from testkit.models import save_threshold_model

    root = tmp_path_factory.mktemp("models")
    return {
        "spleen": save_threshold_model(root / "spleen"),
        "bright": save_threshold_model(root / "bright", low_hu=400.0, high_hu=3000.0, version="0.0.2-bright"),
    }


@pytest.fixture(scope="session")
def phantom() -> SeriesZip:
    return series_zip(shape=(16, 48, 48), seed=0)


@pytest.fixture(scope="session")
def image_set(phantom: SeriesZip) -> Any:
    from testkit.healthimaging import build_image_set

    return build_image_set(zip_datasets(phantom.payload))  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def healthimaging(image_set: Any) -> Iterator[Any]:
    """A loopback HealthImaging holding the phantom as one image set (the TorchServe workers call it)."""
    from testkit.healthimaging import serve

    with serve([image_set]) as server:
        yield server


@pytest.fixture(scope="session")
def torchserve(
    model_dirs: dict[str, Path], healthimaging: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    ensure_venv(SERVE_VENV, "venv-serve")
    server = start_torchserve(
        model_dirs["spleen"],
        tmp_path_factory.mktemp("torchserve"),
        workers=2,
        env={"HEALTHIMAGING_ENDPOINT_URL": healthimaging.url, "AWS_REGION": "us-east-1"},
    )
    yield server
    server.stop()


@pytest.fixture(scope="session")
def tritonserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, Path]]:
    """tritonserver with explicit model control over an empty repository (as a multi-model endpoint starts)."""
    ensure_venv(TRITON_VENV, "venv-triton")
    repository = tmp_path_factory.mktemp("triton-repository")
    server = start_tritonserver(repository, tmp_path_factory.mktemp("tritonserver"))
    yield server, repository
    server.stop()
