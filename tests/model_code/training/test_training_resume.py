"""Spot safety: an interrupted run resumes from its checkpoint and ends where an uninterrupted one ends.

Tolerance: none. Every epoch reseeds all randomness from (seed, epoch, rank), the checkpoint
restores weights, BatchNorm statistics, Adam moments and the LR schedule, and CPU kernels run
with torch.use_deterministic_algorithms, so the resumed weights must be bit-identical.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest
import torch

from model_code.training.checkpoint import list_checkpoints, load_latest

EPOCHS = 2


class SpotInterruptionError(Exception):
    """Stands in for the SIGTERM/SIGKILL a reclaimed spot instance receives."""


def _stop_after_first_epoch(epoch: int, metrics: dict[str, float]) -> None:
    if epoch == 1:
        raise SpotInterruptionError


@pytest.fixture(scope="module")
def common(segmentation_channel, tiny_segmentation) -> list[str]:
    return [*tiny_segmentation, "--epochs", str(EPOCHS), "--learning-rate", "1e-2", "--seed", "7",
            "--train-channel", str(segmentation_channel), "--validation-channel", str(segmentation_channel)]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, common, train) -> Path:
    run_dir = tmp_path_factory.mktemp("uninterrupted")
    result = train(run_dir, *common)
    assert result.resumed_from == 0
    assert result.trained_epochs == [1, 2]
    return run_dir


def _plant_half_synced_newest(checkpoints: Path) -> None:
    # A checkpoint of the epoch that never finished, cut short while being copied (e.g. S3 sync).
    (checkpoints / "checkpoint-epoch00002.pt").write_bytes(b"PK\x03\x04" + b"\0" * 64)


@pytest.mark.parametrize(
    "damage",
    [
        None,  # a clean interruption after epoch 1
        _plant_half_synced_newest,  # plus a broken newer checkpoint, which must be skipped
    ],
)
def test_resumed_run_continues_at_epoch_2_and_matches_the_uninterrupted_run(
    tmp_path, common, train, uninterrupted, damage
):
    with pytest.raises(SpotInterruptionError):
        train(tmp_path, *common, on_epoch_end=_stop_after_first_epoch)
    assert [p.name for p in list_checkpoints(tmp_path / "checkpoints")] == ["checkpoint-epoch00001.pt"]
    assert not (tmp_path / "model").exists()  # no model from an unfinished run
    if damage is not None:
        damage(tmp_path / "checkpoints")

    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        resumed = train(tmp_path, *common)
    assert resumed.resumed_from == 1
    assert resumed.trained_epochs == [2]
    lines = stdout.getvalue().splitlines()
    assert sum(line.startswith("resumed from epoch=1 ") for line in lines) == 1
    assert [line.split()[0] for line in lines if line.startswith("epoch=")] == ["epoch=2"]

    expected = load_latest(uninterrupted / "checkpoints", task="segmentation")
    actual = load_latest(tmp_path / "checkpoints", task="segmentation")
    assert expected is not None
    assert actual is not None
    # Adam resumed with its moments: 2 steps per epoch (2 volumes, batch 1) over 2 epochs.
    steps = {int(s["step"]) for s in actual["optimizer"]["state"].values()}
    assert steps == {2 * EPOCHS}
    for key in ("exp_avg", "exp_avg_sq"):
        for index, state in expected["optimizer"]["state"].items():
            assert torch.equal(actual["optimizer"]["state"][index][key], state[key]), key
    assert actual["scheduler"] == expected["scheduler"]
    assert actual["history"] == expected["history"]  # same losses and Dice, epoch 1 from the checkpoint

    reference = torch.load(uninterrupted / "model" / "models" / "model.pt", weights_only=True)
    weights = torch.load(tmp_path / "model" / "models" / "model.pt", weights_only=True)
    assert reference.keys() == weights.keys()
    different = [name for name in reference if not torch.equal(reference[name], weights[name])]
    assert different == []


def test_a_finished_run_restarted_trains_nothing_more(tmp_path, common, train, uninterrupted):
    # SageMaker may restart a job whose last epoch was checkpointed just before the instance went.
    import shutil

    shutil.copytree(uninterrupted / "checkpoints", tmp_path / "checkpoints")
    result = train(tmp_path, *common)
    assert result.resumed_from == EPOCHS
    assert result.trained_epochs == []
    assert (tmp_path / "model" / "models" / "model.ts").is_file()
