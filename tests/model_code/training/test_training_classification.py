"""Classification with DenseNet121: 2D RGB overfit with ROC-AUC and an occlusion map; 3D NIfTI smoke run.
Both write a classification bundle that MONAI's tooling reads and whose ROC-AUC / occlusion paths run from it."""

from __future__ import annotations

import json
import shutil
import zipfile

import pytest
import torch
from monai.bundle import ConfigParser, verify_net_in_out

from model_code.core.errors import ModelDirectoryError
from model_code.training.classification_bundle import ClassificationBundle, evaluate
from model_code.training.classification_bundle import main as bundle_main

AUC_AFTER_OVERFIT = 0.9


@pytest.fixture(scope="module")
def overfit_2d(tmp_path_factory, classification_2d_channel, train):
    run_dir = tmp_path_factory.mktemp("cls2d")
    result = train(run_dir, "--task", "classification", "--epochs", "5", "--batch-size", "4",
                   "--learning-rate", "1e-3", "--image-size", "32", "--train-channel", str(classification_2d_channel),
                   "--validation-channel", str(classification_2d_channel),
                   "--occlusion-map", str(classification_2d_channel / "img_001.png"))
    return run_dir, result


def test_auc_rises_past_the_threshold_on_a_tiny_2d_set(overfit_2d):
    _, result = overfit_2d
    auc = [row["val_auc"] for row in result.history]
    assert max(auc[-2:]) >= AUC_AFTER_OVERFIT, auc
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]


def test_2d_model_directory_and_occlusion_map(overfit_2d):
    run_dir, _ = overfit_2d
    parser = _parser(run_dir / "model")
    assert parser["_meta_"]["task"] == "classification"
    assert parser["network_def"] == {"_target_": "DenseNet121", "spatial_dims": 2, "in_channels": 3,
                                     "out_channels": 2}
    assert set(parser["_meta_"]["eval_metrics"]) == {"train_loss", "val_auc", "val_accuracy"}
    with torch.no_grad():
        logits = torch.jit.load(str(run_dir / "model" / "models" / "model.ts"))(torch.rand(2, 3, 32, 32))
    assert logits.shape == (2, 2)
    png = run_dir / "output" / "occlusion_map.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_3d_volumes_train_a_3d_densenet(tmp_path, classification_3d_channel, train):
    # One epoch at 32^3 (DenseNet121's smallest input): 3D DenseNet steps are the costliest here.
    result = train(tmp_path, "--task", "classification", "--epochs", "1", "--batch-size", "2",
                   "--image-size", "32", "--train-channel", str(classification_3d_channel),
                   "--validation-channel", str(classification_3d_channel))
    assert result.trained_epochs == [1]
    assert 0.0 <= result.history[0]["val_auc"] <= 1.0
    bundle = tmp_path / "model"
    parser = _parser(bundle)
    assert parser["network_def"] == {"_target_": "DenseNet121", "spatial_dims": 3, "in_channels": 1,
                                     "out_channels": 2}
    assert parser["_meta_"]["network_data_format"]["outputs"]["pred"]["channel_def"] == {"0": "left", "1": "right"}
    with torch.no_grad():
        assert torch.jit.load(str(bundle / "models" / "model.ts"))(torch.rand(1, 1, 32, 32, 32)).shape == (1, 2)
    verify_net_in_out(net_id="network_def", meta_file=str(bundle / "configs/metadata.json"),
                      config_file=str(bundle / "configs/inference.json"), device="cpu")
    classifier = ClassificationBundle.load(bundle)
    assert classifier.classes == ["left", "right"]
    scores = evaluate(classifier, classification_3d_channel)
    assert scores["val_auc"] == pytest.approx(result.history[0]["val_auc"], abs=1e-6)


def test_occlusion_map_is_refused_for_segmentation_before_training(tmp_path, segmentation_channel, train):
    with pytest.raises(ValueError, match="--occlusion-map applies to --task classification only"):
        train(tmp_path, "--task", "segmentation", "--train-channel", str(segmentation_channel),
              "--occlusion-map", "x.png")
    assert not (tmp_path / "checkpoints").exists()


def _parser(bundle):
    parser = ConfigParser()
    parser.read_config(str(bundle / "configs/inference.json"))
    parser.read_meta(str(bundle / "configs/metadata.json"))
    return parser


def test_2d_classification_bundle_is_what_monai_reads(overfit_2d):
    bundle = overfit_2d[0] / "model"
    parser = _parser(bundle)
    assert parser["network_def"] == {"_target_": "DenseNet121", "spatial_dims": 2, "in_channels": 3,
                                     "out_channels": 2}
    pred = parser["_meta_"]["network_data_format"]["outputs"]["pred"]
    assert (parser["_meta_"]["task"], pred["type"], pred["channel_def"]) == ("classification", "probabilities",
                                                                             {"0": "blue", "1": "red"})
    assert [t["_target_"] for t in parser["preprocessing"]["transforms"]] == [
        "LoadImaged", "ScaleIntensityRanged", "Resized", "EnsureTyped"]
    verify_net_in_out(net_id="network_def", meta_file=str(bundle / "configs/metadata.json"),
                      config_file=str(bundle / "configs/inference.json"), device="cpu")


def test_roc_auc_from_the_bundle_is_the_trainers_last_validation(overfit_2d, classification_2d_channel):
    # Same weights, the bundle's transforms instead of the trainer's: equal metrics prove the bundle carries
    # the validation pre-processing faithfully.
    run_dir, result = overfit_2d
    scores = evaluate(ClassificationBundle.load(run_dir / "model"), classification_2d_channel)
    assert scores["val_auc"] == pytest.approx(result.history[-1]["val_auc"], abs=1e-6)
    assert scores["val_accuracy"] == pytest.approx(result.history[-1]["val_accuracy"], abs=1e-6)


def test_occlusion_map_and_roc_auc_from_a_zipped_bundle(overfit_2d, classification_2d_channel, tmp_path, capsys):
    bundle = overfit_2d[0] / "model"
    archive = tmp_path / "classifier.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        for path in sorted(bundle.rglob("*")):
            if path.is_file():
                handle.write(path, f"classifier/{path.relative_to(bundle).as_posix()}")
    out = tmp_path / "occ.png"
    code = bundle_main(["--bundle", str(archive), "--channel", str(classification_2d_channel),
                        "--occlusion-map", str(classification_2d_channel / "img_001.png"), "--out", str(out)])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["classes"] == ["blue", "red"]
    assert 0.0 <= report["val_auc"] <= 1.0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_segmentation_bundle_is_not_taken_for_a_classifier(overfit_2d, tmp_path):
    copy = shutil.copytree(overfit_2d[0] / "model", tmp_path / "bundle")
    document = json.loads((copy / "configs/metadata.json").read_text())
    document["network_data_format"]["outputs"]["pred"]["type"] = "image"
    (copy / "configs/metadata.json").write_text(json.dumps(document))
    with pytest.raises(ModelDirectoryError, match=r"pred\.type is 'image', not 'probabilities': not a classification"):
        ClassificationBundle.load(copy)
