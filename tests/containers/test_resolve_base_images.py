"""Base images resolve offline with the SageMaker SDK v3, and no registry account is written in containers/."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

CONTAINERS = Path(__file__).resolve().parents[2] / "containers"


def _load():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("resolve_base_images", CONTAINERS / "resolve_base_images.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["resolve_base_images"] = module
    spec.loader.exec_module(module)
    return module


resolver = _load()
URI = re.compile(r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com/(?P<repo>[a-z-]+):(?P<tag>.+)$")


@pytest.mark.parametrize(
    ("image", "region", "repository", "tag"),
    [
        ("pytorch-inference", "us-east-1", "pytorch-inference", "2.6.0-gpu-py312"),
        ("pytorch-inference", "eu-west-1", "pytorch-inference", "2.6.0-gpu-py312"),
        ("triton-inference", "us-east-1", "sagemaker-tritonserver", "26.05-py3"),
        ("triton-inference", "ap-southeast-2", "sagemaker-tritonserver", "26.05-py3"),
        ("training", "us-west-2", "pytorch-training", "2.8.0-gpu-py312"),
    ],
)
def test_images_resolve_offline(image: str, region: str, repository: str, tag: str) -> None:
    match = URI.match(resolver.resolve(image, region))
    assert match is not None
    assert (match["region"], match["repo"], match["tag"]) == (region, repository, tag)


def test_cpu_instance_type_gives_the_cpu_flavour() -> None:
    assert resolver.resolve("pytorch-inference", "us-east-1", instance_type="ml.m5.xlarge").endswith(
        ":2.6.0-cpu-py312"
    )


@pytest.mark.parametrize(
    ("image", "region", "message"),
    [
        ("nginx", "us-east-1", "unknown image 'nginx'"),
        ("training", "mars-1", "Unsupported region"),
    ],
)
def test_unknown_image_or_region_raises(image: str, region: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        resolver.resolve(image, region)


def test_cli_prints_the_build_args(capsys: pytest.CaptureFixture[str]) -> None:
    assert resolver.main(["--region", "eu-west-1"]) == 0
    lines = dict(line.split("=", 1) for line in capsys.readouterr().out.splitlines())
    assert sorted(lines) == ["PYTORCH_INFERENCE_BASE_IMAGE", "TRAINING_BASE_IMAGE", "TRITON_INFERENCE_BASE_IMAGE"]
    assert all(URI.match(uri) for uri in lines.values())


def test_cli_fails_with_a_message_for_a_bad_region(capsys: pytest.CaptureFixture[str]) -> None:
    assert resolver.main(["--region", "mars-1", "--image", "training"]) == 2
    assert "cannot resolve a base image" in capsys.readouterr().err


@pytest.mark.parametrize("path", sorted(p for p in CONTAINERS.rglob("*") if p.is_file() and p.suffix != ".pyc"))
def test_no_registry_account_is_written_down(path: Path) -> None:
    text = path.read_text(errors="replace")
    assert not re.search(r"\b\d{12}\.dkr\.ecr\.", text), f"{path} names a registry account: resolve it instead"
