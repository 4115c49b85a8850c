"""The CLI's contract: files written, progress on stderr, exit 0; exit 2 naming the file for bad input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

import pydicom
import pytest
import torch

from model_code.core.bundle_layout import INFERENCE_JSON, METADATA_JSON, MODEL_PT, MODEL_TS
from model_code.core.viewer_link import viewer_link
from model_code.segmentation import predict
from model_code.synthetic.dicom_writer import write_dicom_series
from model_code.synthetic.phantom import make_phantom
from testkit.models import save_zoo_spleen_bundle

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def dicom_dir(tmp_path_factory) -> Path:
    phantom = make_phantom(shape=(10, 40, 36), spacing=(2.5, 1.6, 1.6))
    folder = tmp_path_factory.mktemp("ct")
    write_dicom_series(phantom.volume_hu, phantom.affine, folder, series_uid="1.2.826.0.1.3680043.8.498.1")
    return folder


def test_python_dash_m_writes_the_three_files(tmp_path, threshold_model_dir, dicom_dir):
    out = tmp_path / "out"
    completed = subprocess.run(
        [sys.executable, "-m", "model_code.segmentation.predict", "--model-dir", str(threshold_model_dir),
         "--dicom-dir", str(dicom_dir), "--output-dir", str(out), "--device", "cpu", "--sw-batch-size", "2"],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout == ""  # stdout stays free for callers; progress is on stderr
    assert "stage: inference" in completed.stderr
    assert sorted(p.name for p in out.iterdir()) == ["overlay.png", "result.json", "seg.dcm"]
    summary = json.loads((out / "result.json").read_text())
    assert summary["spleen_voxel_count"] > 0
    assert summary["sw_batch_size"] == 2
    assert "viewerUrl" not in summary  # no viewer named, no deep link


def _bad_model_dir(tmp_path: Path, threshold_model_dir: Path, *, drop: tuple[PurePosixPath, ...] = (),
                   write: dict[PurePosixPath, bytes] | None = None) -> Path:
    """A copy of the threshold bundle with ``drop`` removed and ``write`` overwritten."""
    model_dir = Path(shutil.copytree(threshold_model_dir, tmp_path / "model"))
    for name in drop:
        (model_dir / name).unlink()
    for name, content in (write or {}).items():
        (model_dir / name).write_bytes(content)
    return model_dir


class _ThreeChannels(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, x, x], dim=1)


def _wrong_channels(tmp_path: Path, threshold_model_dir: Path) -> Path:
    model_dir = _bad_model_dir(tmp_path, threshold_model_dir)
    torch.jit.script(_ThreeChannels()).save(str(model_dir / MODEL_TS))
    return model_dir


def _extra_file(folder: Path, tmp_path: Path, name: str, content: bytes) -> Path:
    copy = tmp_path / "dicom"
    copy.mkdir()
    for path in folder.iterdir():
        (copy / path.name).write_bytes(path.read_bytes())
    (copy / name).write_bytes(content)
    return copy


def _mr_series(tmp_path: Path) -> Path:
    phantom = make_phantom(shape=(4, 16, 16))
    write_dicom_series(phantom.volume_hu, phantom.affine, tmp_path / "mr", modality="MR")
    return tmp_path / "mr"


def _two_series(folder: Path, tmp_path: Path) -> Path:
    copy = _extra_file(folder, tmp_path, "unused.txt", b"")
    (copy / "unused.txt").unlink()
    phantom = make_phantom(shape=(4, 40, 36))
    write_dicom_series(phantom.volume_hu, phantom.affine, copy / "second")
    return copy


BAD_INPUTS = [
    # (case id, builds (model_dir, dicom_dir) from (tmp_path, threshold_model_dir, dicom_dir), text stderr must hold)
    ("missing-dicom-dir", lambda t, m, d: (m, t / "nowhere"), "nowhere"),
    ("not-dicom-file", lambda t, m, d: (m, _extra_file(d, t, "readme.txt", b"hello")), "readme.txt"),
    ("mr-series", lambda t, m, d: (m, _mr_series(t)), "reads CT"),
    ("two-series", lambda t, m, d: (m, _two_series(d, t)), "choose one"),
    ("missing-model-files", lambda t, m, d: (_bad_model_dir(t, m, drop=(MODEL_TS, MODEL_PT)), d), "has no network"),
    ("missing-metadata", lambda t, m, d: (_bad_model_dir(t, m, drop=(METADATA_JSON,)), d), "configs/metadata.json is missing"),
    ("metadata-not-json", lambda t, m, d: (_bad_model_dir(t, m, write={METADATA_JSON: b"{"}), d), "configs/metadata.json is not valid JSON"),
    ("inference-not-json", lambda t, m, d: (_bad_model_dir(t, m, write={INFERENCE_JSON: b"[1,"}), d), "configs/inference.json is not valid JSON"),
    ("model-not-torchscript", lambda t, m, d: (_bad_model_dir(t, m, write={MODEL_TS: b"PK junk"}), d), "cannot be loaded as TorchScript"),
    ("no-such-bundle", lambda t, m, d: (t / "nowhere.zip", d), "nowhere.zip does not exist"),
    ("model-breaks-contract", lambda t, m, d: (_wrong_channels(t, m), d), "the contract is"),
]


@pytest.mark.parametrize(("build", "expected"), [case[1:] for case in BAD_INPUTS], ids=[case[0] for case in BAD_INPUTS])
def test_bad_input_exits_2_and_says_why(tmp_path, capsys, threshold_model_dir, dicom_dir, build, expected):
    model_dir, series_dir = build(tmp_path, threshold_model_dir, dicom_dir)
    code = predict.main(["--model-dir", str(model_dir), "--dicom-dir", str(series_dir), "--output-dir", str(tmp_path / "out"),
                         "--device", "cpu"])
    assert code == predict.EXIT_BAD_INPUT
    assert expected in capsys.readouterr().err
    assert not (tmp_path / "out" / "seg.dcm").exists()


def test_series_uid_picks_one_of_several(tmp_path, threshold_model_dir, dicom_dir):
    mixed = _two_series(dicom_dir, tmp_path)
    code = predict.main(["--model-dir", str(threshold_model_dir), "--dicom-dir", str(mixed), "--output-dir", str(tmp_path / "out"),
                         "--device", "cpu", "--series-uid", "1.2.826.0.1.3680043.8.498.1"])
    assert code == predict.EXIT_OK
    assert json.loads((tmp_path / "out" / "result.json").read_text())["series_instance_uid"] == "1.2.826.0.1.3680043.8.498.1"


@pytest.mark.parametrize(
    "arguments",
    [
        ["--sw-batch-size", "0"],  # not a positive integer
        ["--device", "tpu"],  # not a choice
        ["--viewer-url", "http://viewer.example.org"],  # deep links only over https
    ],
)
def test_bad_arguments_exit_2(tmp_path, capsys, threshold_model_dir, dicom_dir, arguments):
    with pytest.raises(SystemExit) as raised:
        predict.main(["--model-dir", str(threshold_model_dir), "--dicom-dir", str(dicom_dir), "--output-dir", str(tmp_path), *arguments])
    assert raised.value.code == predict.EXIT_BAD_INPUT
    assert arguments[0] in capsys.readouterr().err


def test_viewer_url_puts_the_seg_deep_link_in_the_result(tmp_path, threshold_model_dir, dicom_dir):
    out = tmp_path / "out"
    code = predict.main(["--model-dir", str(threshold_model_dir), "--dicom-dir", str(dicom_dir), "--output-dir", str(out),
                         "--device", "cpu", "--viewer-url", "https://viewer.imaging.example.org/"])
    assert code == predict.EXIT_OK
    seg = pydicom.dcmread(out / "seg.dcm")
    assert json.loads((out / "result.json").read_text())["viewerUrl"] == viewer_link(
        "https://viewer.imaging.example.org", str(seg.StudyInstanceUID), str(seg.SeriesInstanceUID))


def test_cuda_without_cuda_exits_2(monkeypatch, tmp_path, capsys, threshold_model_dir, dicom_dir):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # a CPU machine, wherever the test runs
    code = predict.main(["--model-dir", str(threshold_model_dir), "--dicom-dir", str(dicom_dir), "--output-dir", str(tmp_path),
                         "--device", "cuda"])
    assert code == predict.EXIT_BAD_INPUT
    assert "use --device cpu" in capsys.readouterr().err


def _as_archive(bundle: Path, archive: Path) -> Path:
    if archive.name.endswith(".zip"):
        with zipfile.ZipFile(archive, "w") as zipped:  # the zoo's zips wrap the bundle in its own folder
            for path in sorted(bundle.rglob("*")):
                zipped.write(path, f"{bundle.name}/{path.relative_to(bundle).as_posix()}")
    else:
        with tarfile.open(archive, "w:gz") as tarred:  # SageMaker's model.tar.gz holds it at the top
            for path in sorted(bundle.iterdir()):
                tarred.add(path, arcname=path.name)
    return archive


@pytest.mark.parametrize("form", ["directory", "spleen_ct_segmentation.zip", "model.tar.gz"])
def test_the_cli_segments_with_a_zoo_layout_bundle_in_each_form(tmp_path, dicom_dir, form):
    bundle = save_zoo_spleen_bundle(tmp_path / "spleen_ct_segmentation")
    assert sorted(p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file()) == [
        "configs/inference.json", "configs/metadata.json", "models/model.pt", "models/model.ts"]
    source = bundle if form == "directory" else _as_archive(bundle, tmp_path / form)
    out = tmp_path / "out"
    code = predict.main(["--model-dir", str(source), "--dicom-dir", str(dicom_dir), "--output-dir", str(out),
                         "--device", "cpu"])
    assert code == predict.EXIT_OK
    summary = json.loads((out / "result.json").read_text())
    # The zoo's metadata names no model: the bundle's folder does, or the archive's file name.
    name = "model" if form == "model.tar.gz" else "spleen_ct_segmentation"
    assert summary["model"] == {"name": name, "version": "0.2.0"}
    assert summary["spleen_voxel_count"] > 0
    assert [s["label"] for s in summary["segments"]] == ["spleen"]
    assert pydicom.dcmread(out / "seg.dcm").SegmentSequence[0].SegmentLabel == "spleen"
