"""``archives``: Triton archives under the multi-model prefix of the moto model-artifacts bucket."""

from __future__ import annotations

import io
import json
import tarfile
import zipfile
from pathlib import Path

import pytest

from model_code.triton_model.package import package_triton_model
from tests.platform_cli.fakes import Platform

PREFIX = "multi-model/"


@pytest.fixture
def deployed(platform: Platform, serving_stack: dict[str, str]) -> Platform:
    return platform


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A MONAI bundle (the threshold reference network, scripted) in the zoo's layout."""
    from testkit.models import save_threshold_model

    return save_threshold_model(tmp_path_factory.mktemp("bundle") / "spleen")


@pytest.fixture
def model_dir(bundle: Path) -> Path:
    return bundle


def contents(archive: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]


def bucket(platform: Platform) -> str:
    return platform.outputs["Data"]["ModelArtifactsBucketName"]


def members(platform: Platform, key: str) -> list[str]:
    body = platform.s3.get_object(Bucket=bucket(platform), Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as archive:
        return sorted(archive.getnames())


@pytest.mark.parametrize(
    ("name_args", "name"),
    [
        ([], "spleen_ct_segmentation"),  # triton_package's default model name
        (["--name", "spleen-v2"], "spleen-v2"),
    ],
)
def test_add_model_dir_packages_and_uploads(
    deployed: Platform, model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], name_args: list[str],
    name: str,
) -> None:
    assert deployed.run("archives", "add", "--model-dir", str(model_dir), *name_args) == 0
    assert capsys.readouterr().out.strip() == f"{name}.tar.gz"  # the TargetModel to call the endpoint with
    uploaded = deployed.s3.get_object(Bucket=bucket(deployed), Key=f"{PREFIX}{name}.tar.gz")["Body"].read()
    # What the Triton packager builds from the bundle: one model folder with its config and version folder.
    reference = package_triton_model(model_dir, tmp_path / f"{name}.tar.gz").read_bytes()
    assert contents(uploaded) == contents(reference)
    assert {f"{name}/config.pbtxt", f"{name}/1/model.py"} <= set(contents(uploaded))


@pytest.mark.parametrize("packing", ["zip", "tar.gz"])
def test_add_takes_a_zipped_or_tarred_bundle(
    deployed: Platform, bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], packing: str
) -> None:
    files = sorted(p for p in bundle.rglob("*") if p.is_file())
    if packing == "zip":  # as the zoo ships a bundle: one folder inside
        source = tmp_path / "spleen_ct_segmentation.zip"
        with zipfile.ZipFile(source, "w") as archive:
            for path in files:
                archive.write(path, f"spleen_ct_segmentation/{path.relative_to(bundle).as_posix()}")
    else:  # as SageMaker packs a training job's model directory: its files at the top
        source = tmp_path / "model.tar.gz"
        with tarfile.open(source, "w:gz") as archive:
            for path in files:
                archive.add(path, arcname=path.relative_to(bundle).as_posix())
    assert deployed.run("archives", "add", "--model-dir", str(source), "--name", "from-archive") == 0
    uploaded = deployed.s3.get_object(Bucket=bucket(deployed), Key=f"{PREFIX}from-archive.tar.gz")["Body"].read()
    reference = package_triton_model(bundle, tmp_path / "from-archive.tar.gz").read_bytes()
    assert contents(uploaded) == contents(reference)


def test_add_existing_archive_then_list(
    deployed: Platform, model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    archive = package_triton_model(model_dir, tmp_path / "out" / "liver.tar.gz")
    assert deployed.run("archives", "add", "--archive", str(archive)) == 0
    assert deployed.s3.get_object(Bucket=bucket(deployed), Key=f"{PREFIX}liver.tar.gz")["Body"].read() == (
        archive.read_bytes()
    )
    # Not archives of the endpoint: a nested key and another suffix.
    deployed.s3.put_object(Bucket=bucket(deployed), Key=f"{PREFIX}old/x.tar.gz", Body=b"x")
    deployed.s3.put_object(Bucket=bucket(deployed), Key=f"{PREFIX}README.txt", Body=b"x")
    capsys.readouterr()
    assert deployed.run("archives", "list", "--json") == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(item["targetModel"], item["size"]) for item in listed] == [("liver.tar.gz", archive.stat().st_size)]


def test_list_empty_prefix(deployed: Platform, capsys: pytest.CaptureFixture[str]) -> None:
    assert deployed.run("archives", "list") == 0
    out, err = capsys.readouterr()
    assert out == ""
    assert f"no archives under s3://{bucket(deployed)}/{PREFIX}" in err


def test_existing_archive_needs_replace(deployed: Platform, model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key = f"{PREFIX}spleen_ct_segmentation.tar.gz"
    deployed.s3.put_object(Bucket=bucket(deployed), Key=key, Body=b"old")
    assert deployed.run("archives", "add", "--model-dir", str(model_dir)) == 2
    assert "exists: pass --replace" in capsys.readouterr().err
    assert deployed.s3.get_object(Bucket=bucket(deployed), Key=key)["Body"].read() == b"old"
    assert deployed.run("archives", "add", "--model-dir", str(model_dir), "--replace") == 0
    assert deployed.s3.get_object(Bucket=bucket(deployed), Key=key)["Body"].read() != b"old"


def write_tar(path: Path, names: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name, data in names.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize(
    ("file_name", "content", "expected"),
    [
        ("model.zip", {"model/config.pbtxt": b""}, "must be <model name>.tar.gz"),
        ("-bad.tar.gz", {"-bad/config.pbtxt": b""}, "must be 1-63 letters"),  # triton_package's name rule
        ("liver.tar.gz", {"spleen/config.pbtxt": b""}, "exactly one folder liver/"),  # folder named differently
        ("liver.tar.gz", {"liver/1/model.py": b""}, "exactly one folder liver/"),  # no config.pbtxt
        ("liver.tar.gz", None, "not a readable .tar.gz"),
    ],
)
def test_bad_archive_exits_2(
    deployed: Platform, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    file_name: str, content: dict[str, bytes] | None, expected: str,
) -> None:
    path = tmp_path / file_name
    if content is None:
        path.write_bytes(b"not gzip")
    else:
        write_tar(path, content)
    assert deployed.run("archives", "add", "--archive", str(path)) == 2
    assert expected in capsys.readouterr().err
    assert deployed.s3.list_objects_v2(Bucket=bucket(deployed)).get("KeyCount") == 0


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--model-dir", "EMPTY"], "is not a MONAI bundle"),  # open_bundle's own message
        (["--model-dir", "MODEL", "--name", "bad name"], "model name 'bad name' must be"),
        (["--archive", "x.tar.gz", "--name", "y"], "--name goes with --model-dir"),
    ],
)
def test_bad_model_dir_exits_2(
    deployed: Platform, model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    argv: list[str], expected: str,
) -> None:
    (tmp_path / "empty").mkdir()
    argv = [{"EMPTY": str(tmp_path / "empty"), "MODEL": str(model_dir)}.get(a, a) for a in argv]
    assert deployed.run("archives", "add", *argv) == 2
    assert expected in capsys.readouterr().err


def test_multi_model_endpoint_off(platform: Platform, data_stack: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    """With serving.multiModelEnabled false the Serving stack has no archive prefix: say how to turn it on."""
    platform.deploy("Serving", {"EndpointName": "async"})
    assert platform.run("archives", "list") == 1
    err = capsys.readouterr().err
    assert "has no output 'MultiModelArchivePrefix'" in err
    assert "set platform.serving.multiModelEnabled to true" in err
