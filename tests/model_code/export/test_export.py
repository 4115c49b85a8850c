"""python -m model_code.export: bundle layout, checksums, ONNX agreement with the TorchScript, CLI errors."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

import model_code
from model_code.core.model_dir import MODEL_FILE, ModelMetadata
from model_code.edge.layout import EDGE_KEY, MANIFEST_FILE, ONNX_FILE, BundleError, BundleFormat, verify_manifest
from model_code.export import __main__ as cli
from model_code.export.bundle import export_bundle
from model_code.export.onnx_export import ATOL, RTOL, compare, phantom_windows
from model_code.runtimes import package_files


@pytest.fixture(scope="module")
def onnx_bundle(pooled_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bundles") / "onnx"
    archive = out.parent / "onnx.zip"
    assert cli.main(["--model-dir", str(pooled_model_dir), "--out", str(out), "--archive", str(archive)]) == 0
    return out


def test_onnx_bundle_holds_model_metadata_runner_and_manifest(onnx_bundle: Path, pooled_model_dir: Path) -> None:
    manifest = json.loads((onnx_bundle / MANIFEST_FILE).read_text())
    listed = {entry["path"] for entry in manifest["files"]}
    assert {ONNX_FILE, "metadata.json", "runner/requirements.txt"} <= listed
    runner = {path for path in listed if path.startswith("runner/model_code/")}
    # The core and the runner, nothing else: no other runtime, no test support.
    assert runner == {f"runner/model_code/{m}" for m in package_files("edge")}
    assert {path.split("/")[2] for path in runner} == {"__init__.py", "core", "edge", "synthetic"}  # + the warm-up
    assert MODEL_FILE not in listed  # an ONNX bundle carries no TorchScript
    assert len(verify_manifest(onnx_bundle)) == len(listed)
    edge = ModelMetadata.load(onnx_bundle).extra[EDGE_KEY]
    assert edge["format"] == "onnx"
    assert edge["tolerance"] == {"atol": ATOL, "rtol": RTOL}
    assert edge["maxAbsLogitDifference"] <= ATOL
    assert edge["sourceModelSha256"] == hashlib.sha256((pooled_model_dir / MODEL_FILE).read_bytes()).hexdigest()
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
    module = torch.jit.load(str(untrained_unet_dir / MODEL_FILE)).eval()
    agreement = compare(module, tmp_path / "unet" / ONNX_FILE, phantom_windows(ModelMetadata.load(untrained_unet_dir),
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
    assert (tmp_path / "ts" / MODEL_FILE).read_bytes() == (threshold_model_dir / MODEL_FILE).read_bytes()
    assert not (tmp_path / "ts" / ONNX_FILE).exists()
    assert report.max_abs_difference is None
    assert "torch==" in (tmp_path / "ts" / "runner/requirements.txt").read_text()


@pytest.mark.parametrize(
    ("setup", "args", "message"),
    [
        (lambda t: None, ["--model-dir", "{missing}"], "metadata.json is missing"),
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
    windows = phantom_windows(ModelMetadata.load(pooled_model_dir))
    assert windows.shape == (2, 1, 96, 96, 96)
    assert windows.dtype == np.float32
    assert windows.min() >= 0.0
    assert windows.max() <= 1.0
    assert np.any((windows > 0.2) & (windows < 0.9))  # the organ band is there, not all clipped
