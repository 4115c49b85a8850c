"""Local harness pieces that need no server: the default model choice and the lazily built clients."""

from __future__ import annotations

from pathlib import Path

import pytest

from model_code.serving.clients import LazyClients
from model_code.serving.settings import ServingSettings
from testkit.local_model import has_model, resolve_model_dir


def test_a_named_model_directory_is_used(threshold_model_dir: Path) -> None:
    assert resolve_model_dir(threshold_model_dir) == threshold_model_dir.resolve()
    assert has_model(threshold_model_dir)


@pytest.mark.parametrize("content", [[], ["model.ts", "metadata.json"], ["models/model.ts"]],
                         ids=["empty", "the-retired-layout", "no-configs"])
def test_a_folder_that_is_not_a_bundle_is_refused(tmp_path: Path, content: list[str]) -> None:
    for name in content:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    with pytest.raises(SystemExit, match=r"is not a MONAI bundle: configs/metadata\.json is missing"):
        resolve_model_dir(tmp_path)


def test_a_bundle_archive_is_unpacked_for_the_local_servers(threshold_model_dir: Path, tmp_path: Path) -> None:
    import tarfile

    archive = tmp_path / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tarred:
        for path in sorted(threshold_model_dir.iterdir()):
            tarred.add(path, arcname=path.name)
    unpacked = resolve_model_dir(archive)
    assert has_model(unpacked)
    assert (unpacked / "configs" / "inference.json").read_bytes() == (
        threshold_model_dir / "configs" / "inference.json").read_bytes()


@pytest.mark.parametrize(
    ("settings", "service", "endpoint"),
    [
        # local runs point both services at loopback stand-ins
        (ServingSettings(s3_endpoint_url="http://127.0.0.1:9000"), "s3", "http://127.0.0.1:9000"),
        (
            ServingSettings(healthimaging_endpoint_url="http://127.0.0.1:9001"),
            "medical_imaging",
            "http://127.0.0.1:9001",
        ),
        # in AWS the region decides the endpoint
        (ServingSettings(region="eu-west-1"), "medical_imaging", "https://medical-imaging.eu-west-1.amazonaws.com"),
    ],
)
def test_clients_are_built_once_from_the_settings(settings: ServingSettings, service: str, endpoint: str) -> None:
    clients = LazyClients(settings)
    client = getattr(clients, service)()
    assert client is getattr(clients, service)()
    assert client.meta.endpoint_url == endpoint
