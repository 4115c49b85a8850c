"""Segmentation end to end: overfit two phantoms, then check every output the contract asks for."""

from __future__ import annotations

import contextlib
import io
import json
import shutil

import pytest
import torch

from model_code.core.spleen import spleen_metadata
from model_code.segmentation.bundle import ModelBundle
from model_code.segmentation.networks import build_spleen_unet
from model_code.training.data_common import data_hash
from model_code.training.metrics import parse_metric_line

EPOCHS = 8
DICE_AFTER_OVERFIT = 0.6  # on its own training cases; the first epoch sits near 0.05


@pytest.fixture(scope="module")
def overfit_run(tmp_path_factory, segmentation_channel, tiny_segmentation, train):
    run_dir = tmp_path_factory.mktemp("seg-overfit")
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):  # the logging handler is bound to sys.stdout when main() starts
        result = train(run_dir, *tiny_segmentation, "--epochs", str(EPOCHS), "--learning-rate", "1e-2",
                       "--train-channel", str(segmentation_channel), "--validation-channel", str(segmentation_channel))
    return run_dir, result, stdout.getvalue()


def test_dice_rises_past_the_threshold_on_a_tiny_set(overfit_run):
    _, result, _ = overfit_run
    dice = [row["val_dice"] for row in result.history]
    assert result.trained_epochs == list(range(1, EPOCHS + 1))
    assert dice[-1] > DICE_AFTER_OVERFIT, dice
    assert dice[-1] > dice[0] + 0.3, dice
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]


def test_metric_lines_are_what_sagemaker_scrapes(overfit_run):
    _, result, stdout = overfit_run
    epoch_lines = [line for line in stdout.splitlines() if line.startswith("epoch=")]
    assert len(epoch_lines) == EPOCHS
    scraped = parse_metric_line(epoch_lines[-1])
    assert scraped["epoch"] == EPOCHS
    assert scraped["validation:dice"] == pytest.approx(result.history[-1]["val_dice"], abs=1e-4)


def test_the_bundle_describes_the_spleen_model_and_its_run(overfit_run, segmentation_channel):
    run_dir, result, _ = overfit_run
    model_dir = run_dir / "model"
    bundle = ModelBundle.load(model_dir)
    metadata, expected = bundle.description, spleen_metadata()
    assert (metadata.name, metadata.labels, metadata.preprocessing, metadata.inference) == (
        expected.name, expected.labels, expected.preprocessing, expected.inference)
    assert (metadata.network.name, metadata.network.args) == ("UNet", expected.network.args)
    assert metadata.metrics["val_dice"] == pytest.approx(result.history[-1]["val_dice"])
    assert len(bundle.metadata["training_data_sha256"]) == 64
    assert bundle.metadata["trained_epochs"] == EPOCHS
    scripted = torch.jit.load(str(model_dir / "models" / "model.ts"))
    network = build_spleen_unet()
    network.load_state_dict(torch.load(model_dir / "models" / "model.pt", weights_only=True))
    network.eval()
    # [B,1,X,Y,Z] in, [B,2,X,Y,Z] logits out, for any side divisible by 16 (96^3 in production).
    x = torch.rand(1, 1, 32, 48, 16)
    with torch.no_grad():
        out = scripted(x)
        assert out.shape == (1, 2, 32, 48, 16)
        torch.testing.assert_close(out, network(x))


def test_curve_and_tensorboard_are_written(overfit_run):
    run_dir, _, _ = overfit_run
    curve = run_dir / "output" / "training_curve.png"
    assert curve.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert list((run_dir / "output" / "tensorboard").glob("events.out.tfevents.*"))


def test_training_data_hash_names_the_data(overfit_run, segmentation_channel, tmp_path):
    run_dir, _, _ = overfit_run
    recorded = json.loads((run_dir / "model" / "configs/metadata.json").read_text())["training_data_sha256"]
    copy = shutil.copytree(segmentation_channel, tmp_path / "copy")
    files = sorted(copy.rglob("*.nii.gz"))
    assert data_hash(files, root=copy) == recorded  # same names, same bytes: same hash, wherever it lives
    files[0].write_bytes(files[0].read_bytes() + b"\0")  # one byte more in one file
    assert data_hash(files, root=copy) != recorded
