"""The MAP app end to end, in the MAP venv (``make test-map``): a phantom folder, and the same series
served as a HealthImaging image set by the connector's loopback server. Collected only where the SDK is
installed (conftest.py); ``test_map_venv.py`` runs this module in the MAP venv from the main suite."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest

from model_code.core.spleen import SPLEEN_LABEL
from model_code.map_app.__main__ import main
from model_code.synthetic.dicom_writer import write_dicom_series
from model_code.synthetic.phantom import Phantom, make_phantom
from testkit.healthimaging import build_image_set, serve
from testkit.models import save_threshold_model


def _seg_file(out: Path) -> Path:
    written = sorted(out.glob("*.dcm"))
    assert len(written) == 1, f"expected one SEG in {out}, found {[p.name for p in written]}"
    return written[0]


def _mask(seg_path: Path, sources: list[pydicom.Dataset]) -> np.ndarray:
    """The spleen mask, (slices, rows, cols) in the order of ``sources``."""
    seg = hd.seg.segread(seg_path)
    pixels = seg.get_pixels_by_source_instance(
        source_sop_instance_uids=[str(ds.SOPInstanceUID) for ds in sources],
        segment_numbers=[SPLEEN_LABEL],
        skip_overlap_checks=True,
    )
    return np.asarray(pixels[..., 0] > 0)


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> tuple[Phantom, Path, list[pydicom.Dataset], Path, Path]:
    root = tmp_path_factory.mktemp("map")
    phantom = make_phantom(shape=(16, 48, 48), spacing=(2.5, 2.0, 2.0))
    paths = write_dicom_series(phantom.volume_hu, phantom.affine, root / "ct")
    # Volume order: descending=False makes acquisition order the volume order.
    sources: list[pydicom.Dataset] = [pydicom.dcmread(p) for p in paths]
    model_dir = save_threshold_model(root / "model")
    out = root / "out-folder"
    assert main(["--model-dir", str(model_dir), "--dicom-dir", str(root / "ct"), "--output-dir", str(out)]) == 0
    return phantom, model_dir, sources, _seg_file(out), root


def test_folder_run_frames_sit_on_source_positions(case) -> None:
    _, _, sources, seg_path, _ = case
    seg = pydicom.dcmread(seg_path)
    assert seg.Modality == "SEG"
    source_positions = {str(ds.SOPInstanceUID): [float(v) for v in ds.ImagePositionPatient] for ds in sources}
    assert seg.NumberOfFrames > 0
    for frame in seg.PerFrameFunctionalGroupsSequence:
        referenced = frame.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        position = [float(v) for v in frame.PlanePositionSequence[0].ImagePositionPatient]
        np.testing.assert_allclose(position, source_positions[str(referenced)], atol=1e-3)


def test_folder_run_mask_is_the_planted_organ(case) -> None:
    phantom, _, sources, seg_path, _ = case
    mask = _mask(seg_path, sources)
    truth = phantom.mask.astype(bool)
    assert mask.shape == truth.shape
    dice = 2 * np.sum(mask & truth) / (mask.sum() + truth.sum())
    assert dice > 0.85, f"Dice {dice:.3f} against the planted organ"


def test_healthimaging_run_gives_the_folder_runs_mask(case, monkeypatch: pytest.MonkeyPatch) -> None:
    _, model_dir, sources, folder_seg, root = case
    # The CLI builds its client from the usual AWS chain: dummy credentials the loopback never checks.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    image_set = build_image_set(sources)
    out = root / "out-healthimaging"
    with serve([image_set]) as server:
        argv = ["--model-dir", str(model_dir), "--datastore-id", image_set.datastore_id,
                "--image-set-id", image_set.image_set_id, "--endpoint-url", server.url, "--output-dir", str(out)]  # fmt: skip
        assert main(argv) == 0
        assert server.requests["GetImageFrame"] == len(sources)
    seg_path = _seg_file(out)
    np.testing.assert_array_equal(_mask(seg_path, sources), _mask(folder_seg, sources))
    assert pydicom.dcmread(seg_path).ReferencedSeriesSequence[0].SeriesInstanceUID == sources[0].SeriesInstanceUID


def _zoo_zip(bundle: Path, out: Path) -> Path:
    """The bundle as the Model Zoo ships it: a zip of one folder, configs/ and models/ only."""
    with zipfile.ZipFile(out, "w") as archive:
        for path in sorted(bundle.rglob("*")):
            relative = path.relative_to(bundle)
            if path.is_file() and relative.parts[0] in ("configs", "models"):
                archive.write(path, f"spleen_ct_segmentation/{relative.as_posix()}")
    return out


def test_a_zoo_zip_bundle_gives_the_folder_runs_mask(case) -> None:
    # The SDK's bundle operator runs the zip's configs/ + models/ alone (no file of the old contract).
    _, model_dir, sources, folder_seg, root = case
    out = root / "out-zip"
    bundle = _zoo_zip(model_dir, root / "spleen.zip")
    assert main(["--model-dir", str(bundle), "--dicom-dir", str(root / "ct"), "--output-dir", str(out)]) == 0
    np.testing.assert_array_equal(_mask(_seg_file(out), sources), _mask(folder_seg, sources))


def test_a_bundle_label_without_a_code_is_refused_before_running(case, tmp_path: Path) -> None:
    _, model_dir, _, _, root = case
    bundle = shutil.copytree(model_dir, tmp_path / "bundle")
    metadata = json.loads((bundle / "configs/metadata.json").read_text())
    metadata["network_data_format"]["outputs"]["pred"]["channel_def"] = {"0": "background", "1": "gizzard"}
    (bundle / "configs/metadata.json").write_text(json.dumps(metadata))
    with pytest.raises(SystemExit, match="no SNOMED CT code for the label 'gizzard'"):
        main(["--model-dir", str(bundle), "--dicom-dir", str(root / "ct"), "--output-dir", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()


def test_a_missing_bundle_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match=r"configs/metadata\.json is missing"):
        main(["--model-dir", str(tmp_path), "--dicom-dir", str(tmp_path), "--output-dir", str(tmp_path / "out")])


def _three_class_bundle(root: Path, labels: dict[int, str]) -> Path:
    import dataclasses

    from model_code.core.spleen import spleen_metadata
    from testkit.models import SmoothBand, save_bundle

    description = dataclasses.replace(
        spleen_metadata(version="three-1"), name="abdomen_three_class", labels=labels,
        inference=dataclasses.replace(spleen_metadata().inference, roi_size=(32, 32, 32)),
    )
    return save_bundle(root, SmoothBand(channels=3, sharpness=30.0), description=description,
                       network_def={"_target_": "testkit.models.SmoothBand", "channels": 3})


def test_a_three_class_bundle_gives_a_seg_with_two_coded_segments(case, tmp_path: Path) -> None:
    _, _, sources, _, root = case
    bundle = _three_class_bundle(tmp_path / "three", {0: "background", 1: "liver", 2: "spleen"})
    out = tmp_path / "out"
    assert main(["--model-dir", str(bundle), "--dicom-dir", str(root / "ct"), "--output-dir", str(out)]) == 0
    seg = hd.seg.segread(_seg_file(out))
    assert [(s.SegmentNumber, s.SegmentLabel) for s in seg.SegmentSequence] == [(1, "liver"), (2, "spleen")]
    liver = seg.SegmentSequence[0].SegmentedPropertyTypeCodeSequence[0]
    assert (liver.CodeValue, liver.CodingSchemeDesignator, liver.CodeMeaning) == ("10200004", "SCT", "Liver")
    assert seg.SegmentSequence[0].SegmentAlgorithmName == "abdomen_three_class"
    # The same labels as the platform's own pipeline on the same bundle (MONAI Deploy runs the bundle's Compose and
    # Invertd; ours its fast path): each segment agrees voxel for voxel but for resampling ties.
    from model_code.core.dicom.files import load_series
    from model_code.segmentation.pipeline import SegmentationPipeline

    ours = SegmentationPipeline.from_bundle(bundle, device="cpu").run(load_series(root / "ct")).mask
    for number in (1, 2):
        theirs = np.asarray(seg.get_pixels_by_source_instance(
            source_sop_instance_uids=[str(ds.SOPInstanceUID) for ds in sources], segment_numbers=[number],
            skip_overlap_checks=True)[..., 0] > 0)
        mine = ours == number
        assert mine.sum() > 50, number
        assert 2 * np.sum(mine & theirs) / (mine.sum() + theirs.sum()) > 0.98, number


def test_a_lateral_label_the_stock_writer_cannot_code_is_refused(case, tmp_path: Path) -> None:
    _, _, _, _, root = case
    bundle = _three_class_bundle(tmp_path / "three", {0: "background", 1: "liver", 2: "left kidney"})
    with pytest.raises(SystemExit, match="need a laterality modifier"):
        main(["--model-dir", str(bundle), "--dicom-dir", str(root / "ct"), "--output-dir", str(tmp_path / "out")])
