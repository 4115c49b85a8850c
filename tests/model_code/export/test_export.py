"""python -m model_code.export: bundle layout, checksums, ONNX agreement with the TorchScript, CLI errors."""

from __future__ import annotations

import hashlib
import json
import shutil
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

import model_code
from model_code.edge.layout import (
    DESCRIPTION_FILE,
    EDGE_KEY,
    MANIFEST_FILE,
    ONNX_FILE,
    TORCHSCRIPT_FILE,
    BundleError,
    BundleFormat,
    verify_manifest,
)
from model_code.export import __main__ as cli
from model_code.export.bundle import export_bundle
from model_code.export.onnx_export import ATOL, RTOL, compare, phantom_windows
from model_code.runtimes import package_files
from model_code.segmentation.bundle import ModelBundle

MODEL_TS = "models/model.ts"


def _description(path: Path):
    return ModelBundle.load(path).description


@pytest.fixture(scope="module")
def onnx_bundle(pooled_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bundles") / "onnx"
    archive = out.parent / "onnx.zip"
    assert cli.main(["--model-dir", str(pooled_model_dir), "--out", str(out), "--archive", str(archive)]) == 0
    return out


def test_onnx_bundle_holds_model_metadata_runner_and_manifest(onnx_bundle: Path, pooled_model_dir: Path) -> None:
    manifest = json.loads((onnx_bundle / MANIFEST_FILE).read_text())
    listed = {entry["path"] for entry in manifest["files"]}
    assert {ONNX_FILE, DESCRIPTION_FILE, "source/configs/metadata.json", "source/configs/inference.json",
            "runner/requirements.txt"} <= listed
    runner = {path for path in listed if path.startswith("runner/model_code/")}
    # The core and the runner, nothing else: no other runtime, no test support.
    assert runner == {f"runner/model_code/{m}" for m in package_files("edge")}
    assert {path.split("/")[2] for path in runner} == {"__init__.py", "core", "edge", "synthetic"}  # + the warm-up
    assert TORCHSCRIPT_FILE not in listed  # an ONNX bundle carries no TorchScript
    assert len(verify_manifest(onnx_bundle)) == len(listed)
    described = json.loads((onnx_bundle / DESCRIPTION_FILE).read_text())
    # What the serving side reads from the same MONAI bundle, so the edge applies what the cloud applies.
    source = _description(pooled_model_dir)
    assert [described["preprocessing"], described["inference"]] == json.loads(json.dumps(
        [source.to_json()["preprocessing"], source.to_json()["inference"]]))
    assert (onnx_bundle / "source/configs/inference.json").read_bytes() == (
        pooled_model_dir / "configs/inference.json").read_bytes()
    edge = described[EDGE_KEY]
    assert edge["format"] == "onnx"
    assert edge["tolerance"] == {"atol": ATOL, "rtol": RTOL}
    assert edge["maxAbsLogitDifference"] <= ATOL
    assert edge["sourceModelSha256"] == hashlib.sha256((pooled_model_dir / MODEL_TS).read_bytes()).hexdigest()
    requirements = (onnx_bundle / "runner/requirements.txt").read_text().split()
    assert {"numpy", "nibabel", "pydicom", "highdicom", "onnxruntime"} <= {r.split("==")[0] for r in requirements}
    assert "torch" not in {r.split("==")[0] for r in requirements}
    # The same distributions the edge runtime's own requirements file names.
    edge_requirements = (Path(model_code.__file__).parent / "edge" / "requirements.txt").read_text().split("\n")
    assert {r.split("==")[0] for r in requirements} == {
        line.split("==")[0] for line in edge_requirements if line and not line.startswith("#")
    }


def test_archive_is_the_bundle_under_one_top_folder(onnx_bundle: Path) -> None:
    with zipfile.ZipFile(onnx_bundle.parent / "onnx.zip") as archive:
        names = set(archive.namelist())
        assert archive.read(f"bundle/{ONNX_FILE}") == (onnx_bundle / ONNX_FILE).read_bytes()
    listed = {e["path"] for e in json.loads((onnx_bundle / MANIFEST_FILE).read_text())["files"]}
    assert names == {f"bundle/{p}" for p in listed | {MANIFEST_FILE}}


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (lambda b: (b / ONNX_FILE).write_bytes((b / ONNX_FILE).read_bytes()[:-1] + b"\0"), "does not match"),
        (lambda b: (b / "extra.txt").write_text("x"), "not in the manifest"),  # a file slipped in
        (lambda b: (b / "runner/model_code/core/transforms_numpy.py").unlink(), "missing"),  # a partial copy
        (lambda b: (b / MANIFEST_FILE).write_text("[]"), "not a bundle manifest"),
        (lambda b: (b / MANIFEST_FILE).unlink(), "is not an edge bundle"),
    ],
    ids=["changed-byte", "added-file", "removed-file", "garbled-manifest", "no-manifest"],
)
def test_manifest_catches_altered_bundles(onnx_bundle: Path, tmp_path: Path, tamper, message: str) -> None:
    import shutil

    copy = tmp_path / "bundle"
    shutil.copytree(onnx_bundle, copy)
    verify_manifest(copy)  # the untouched copy passes
    tamper(copy)
    with pytest.raises(BundleError, match=message):
        verify_manifest(copy)


def test_untrained_contract_unet_onnx_matches_torchscript_on_phantoms(untrained_unet_dir: Path, tmp_path: Path) -> None:
    report = export_bundle(untrained_unet_dir, tmp_path / "unet", fmt=BundleFormat.ONNX)
    # The stated tolerance holds on fresh phantom windows too, not only the ones the export checked.
    module = torch.jit.load(str(untrained_unet_dir / MODEL_TS)).eval()
    agreement = compare(module, tmp_path / "unet" / ONNX_FILE, phantom_windows(_description(untrained_unet_dir),
                                                                                 seeds=(3,)))
    assert agreement.within_tolerance
    assert agreement.max_abs_difference <= ATOL
    assert report.max_abs_difference is not None
    assert report.max_abs_difference <= ATOL
    assert agreement.label_disagreement < 1e-4


def test_an_unfaithful_onnx_export_is_refused(threshold_model_dir: Path, tmp_path: Path, capsys) -> None:
    # The reference threshold model opens its band with in-place ops on narrow() views, which the
    # legacy exporter drops: the export must say so instead of writing a bundle that segments differently.
    code = cli.main(["--model-dir", str(threshold_model_dir), "--out", str(tmp_path / "out")])
    assert code == cli.EXIT_BAD_INPUT
    error = capsys.readouterr().err
    assert "disagrees with the TorchScript" in error
    assert "--format torchscript" in error
    assert not (tmp_path / "out").exists()  # no half-written bundle left to upload


def test_torchscript_bundle_carries_the_source_file(threshold_model_dir: Path, tmp_path: Path) -> None:
    report = export_bundle(threshold_model_dir, tmp_path / "ts", fmt=BundleFormat.TORCHSCRIPT)
    assert (tmp_path / "ts" / TORCHSCRIPT_FILE).read_bytes() == (threshold_model_dir / MODEL_TS).read_bytes()
    assert not (tmp_path / "ts" / ONNX_FILE).exists()
    assert report.max_abs_difference is None
    assert "torch==" in (tmp_path / "ts" / "runner/requirements.txt").read_text()


@pytest.mark.parametrize(
    ("setup", "args", "message"),
    [
        (lambda t: None, ["--model-dir", "{missing}"], "nothing does not exist"),
        (lambda t: (t / "out").mkdir() or (t / "out" / "keep.txt").write_text("x"), [], "is not empty"),
    ],
    ids=["missing-model-dir", "out-not-empty"],
)
def test_cli_errors_name_the_problem(pooled_model_dir, tmp_path, capsys, setup, args, message) -> None:
    setup(tmp_path)
    argv = ["--model-dir", str(pooled_model_dir), "--out", str(tmp_path / "out")]
    argv += [a.format(missing=tmp_path / "nothing") for a in args]
    assert cli.main(argv) == cli.EXIT_BAD_INPUT
    assert message in capsys.readouterr().err


def test_force_replaces_a_non_empty_out(pooled_model_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "stale.txt").write_text("x")
    assert cli.main(["--model-dir", str(pooled_model_dir), "--out", str(tmp_path / "out"), "--force",
                     "--format", "torchscript"]) == 0
    assert not (tmp_path / "out" / "stale.txt").exists()
    verify_manifest(tmp_path / "out")


def test_phantom_windows_are_scaled_model_inputs(pooled_model_dir: Path) -> None:
    windows = phantom_windows(_description(pooled_model_dir))
    assert windows.shape == (2, 1, 96, 96, 96)
    assert windows.dtype == np.float32
    assert windows.min() >= 0.0
    assert windows.max() <= 1.0
    assert np.any((windows > 0.2) & (windows < 0.9))  # the organ band is there, not all clipped


def _zoo_only(bundle: Path, out: Path) -> Path:
    """configs/ + models/ only: the layout the zoo ships, with no file of the old contract."""
    for part in ("configs", "models"):
        shutil.copytree(bundle / part, out / part)
    return out


@pytest.mark.parametrize("packing", ["zip", "tar.gz"])
def test_a_zoo_layout_archive_exports_like_its_directory(packing, pooled_model_dir, onnx_bundle, tmp_path) -> None:
    bundle = _zoo_only(pooled_model_dir, tmp_path / "spleen")
    if packing == "zip":
        source = tmp_path / "spleen.zip"
        with zipfile.ZipFile(source, "w") as archive:
            for path in sorted(bundle.rglob("*")):
                if path.is_file():
                    archive.write(path, f"spleen/{path.relative_to(bundle).as_posix()}")
    else:
        source = tmp_path / "model.tar.gz"
        with tarfile.open(source, "w:gz") as archive:
            for child in ("configs", "models"):
                archive.add(bundle / child, arcname=child)
    export_bundle(source, tmp_path / "edge", fmt=BundleFormat.TORCHSCRIPT)
    assert (tmp_path / "edge" / TORCHSCRIPT_FILE).read_bytes() == (pooled_model_dir / MODEL_TS).read_bytes()
    ours = json.loads((tmp_path / "edge" / DESCRIPTION_FILE).read_text())
    theirs = json.loads((onnx_bundle / DESCRIPTION_FILE).read_text())
    assert (ours["labels"], ours["preprocessing"], ours["inference"]) == (
        theirs["labels"], theirs["preprocessing"], theirs["inference"])


def test_a_bundle_without_torchscript_is_scripted_from_network_def(untrained_unet_dir, tmp_path) -> None:
    bundle = _zoo_only(untrained_unet_dir, tmp_path / "unet")
    (bundle / MODEL_TS).unlink()  # network_def (the zoo's UNet) + models/model.pt only
    export_bundle(bundle, tmp_path / "edge", fmt=BundleFormat.TORCHSCRIPT)
    scripted = torch.jit.load(str(tmp_path / "edge" / TORCHSCRIPT_FILE))
    reference = torch.jit.load(str(untrained_unet_dir / MODEL_TS)).eval()
    x = torch.rand(1, 1, 32, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), reference(x))
    edge = json.loads((tmp_path / "edge" / DESCRIPTION_FILE).read_text())[EDGE_KEY]
    assert edge["sourceModelSha256"] == hashlib.sha256((bundle / "models/model.pt").read_bytes()).hexdigest()


def _edited(bundle: Path, out: Path, edit) -> Path:
    copy = _zoo_only(bundle, out)
    for name in ("configs/inference.json", "configs/metadata.json"):
        path = copy / name
        document = json.loads(path.read_text())
        edit(name, document)
        path.write_text(json.dumps(document))
    return copy


def _extra_transform(name, document) -> None:
    if name == "configs/inference.json":
        document["preprocessing"]["transforms"].insert(-1, {"_target_": "GaussianSmoothd", "keys": "image",
                                                            "sigma": 1.0})


def _three_labels(name, document) -> None:
    if name == "configs/metadata.json":
        document["network_data_format"]["outputs"]["pred"]["channel_def"] = {"0": "background", "1": "spleen",
                                                                            "2": "liver"}


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_extra_transform, "preprocessing has ['GaussianSmoothd'], which the edge runner does not implement"),
        (_three_labels, "the edge runner segments background + one label"),
    ],
    ids=["extra-transform", "multi-label"],
)
def test_what_the_edge_runner_would_run_differently_is_refused(pooled_model_dir, tmp_path, capsys, edit,
                                                               message) -> None:
    bundle = _edited(pooled_model_dir, tmp_path / "bundle", edit)
    assert cli.main(["--model-dir", str(bundle), "--out", str(tmp_path / "out")]) == cli.EXIT_BAD_INPUT
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
