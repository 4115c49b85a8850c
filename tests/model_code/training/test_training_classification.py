"""Classification with DenseNet121: 2D RGB overfit with ROC-AUC and an occlusion map; 3D NIfTI smoke run."""

from __future__ import annotations

import pytest
import torch

from model_code.core.model_dir import ModelMetadata, model_file

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
    metadata = ModelMetadata.load(run_dir / "model")
    assert (metadata.task, metadata.network.name, metadata.labels) == ("classification", "DenseNet121",
                                                                       {0: "blue", 1: "red"})
    assert metadata.network.args == {"spatial_dims": 2, "in_channels": 3, "out_channels": 2}
    assert set(metadata.metrics) == {"train_loss", "val_auc", "val_accuracy"}
    with torch.no_grad():
        logits = torch.jit.load(str(model_file(run_dir / "model")))(torch.rand(2, 3, 32, 32))
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
    metadata = ModelMetadata.load(tmp_path / "model")
    assert metadata.network.args == {"spatial_dims": 3, "in_channels": 1, "out_channels": 2}
    assert metadata.labels == {0: "left", 1: "right"}
    with torch.no_grad():
        assert torch.jit.load(str(model_file(tmp_path / "model")))(torch.rand(1, 1, 32, 32, 32)).shape == (1, 2)


def test_occlusion_map_is_refused_for_segmentation_before_training(tmp_path, segmentation_channel, train):
    with pytest.raises(ValueError, match="--occlusion-map applies to --task classification only"):
        train(tmp_path, "--task", "segmentation", "--train-channel", str(segmentation_channel),
              "--occlusion-map", "x.png")
    assert not (tmp_path / "checkpoints").exists()
