"""Scale-out: two processes under torchrun (gloo on CPU), DistributedSampler, rank 0 alone writes."""

from __future__ import annotations

import os
import subprocess
import sys

from model_code.segmentation.bundle import ModelBundle
from model_code.training.checkpoint import list_checkpoints


def test_two_process_torchrun_gloo_run(tmp_path, segmentation_channel, tiny_segmentation):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SM_", "RANK", "WORLD_SIZE", "LOCAL_RANK"))}
    env["OMP_NUM_THREADS"] = "1"  # two ranks on two cores
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "model_code.training.train", *tiny_segmentation, "--epochs", "2", "--learning-rate", "1e-2",
        "--train-channel", str(segmentation_channel), "--validation-channel", str(segmentation_channel),
        "--checkpoint-dir", str(tmp_path / "checkpoints"), "--model-dir", str(tmp_path / "model"),
        "--output-dir", str(tmp_path / "output"),
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    # Rank 0 alone logs: each epoch line exactly once, not once per rank.
    epoch_lines = [line for line in done.stdout.splitlines() if line.startswith("epoch=")]
    assert [line.split()[0] for line in epoch_lines] == ["epoch=1", "epoch=2"]
    assert [p.name for p in list_checkpoints(tmp_path / "checkpoints")] == [
        "checkpoint-epoch00002.pt", "checkpoint-epoch00001.pt"]
    metadata = ModelBundle.load(tmp_path / "model").metadata  # configs/metadata.json, written by rank 0
    assert metadata["hyperparameters"]["world_size"] == 2
    # DistributedSampler: the two volumes split one per rank, so each rank takes 1 step per epoch.
    import torch

    state = torch.load(tmp_path / "checkpoints" / "checkpoint-epoch00002.pt", weights_only=True)
    assert {int(s["step"]) for s in state["optimizer"]["state"].values()} == {2}
