"""Shared fixtures for the trainer tests: tiny generated data sets and a one-call training run."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from model_code.training.loop import TrainingResult
from model_code.training.synthetic import (
    write_classification_2d,
    write_classification_3d,
    write_segmentation_dataset,
)
from model_code.training.train import main

# Two phantoms of 16x32x32 voxels at the contract spacing: after CropForeground the body is
# about 28x28x16, so 16^3 patches and windows keep every step to a fraction of a second.
SEG_SHAPE = (16, 32, 32)
TINY_SEGMENTATION = ["--task", "segmentation", "--roi-size", "16", "--samples-per-volume", "4", "--batch-size", "1"]

Train = Callable[..., TrainingResult]


@pytest.fixture(autouse=True, scope="session")
def _two_threads() -> None:
    # The suite runs on 2 shared cores; more threads than cores only adds contention.
    torch.set_num_threads(2)


@pytest.fixture(scope="session")
def segmentation_channel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("seg-data")
    write_segmentation_dataset(root, cases=2, shape=SEG_SHAPE)
    return root


@pytest.fixture(scope="session")
def classification_2d_channel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cls2d-data")
    write_classification_2d(root, per_class=6, size=32)
    return root


@pytest.fixture(scope="session")
def classification_3d_channel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cls3d-data")
    write_classification_3d(root, per_class=2, size=24)
    return root


def run_args(run_dir: Path, *args: str) -> list[str]:
    """argv for one run whose checkpoints, model and outputs all live under ``run_dir``."""
    return [*args, "--checkpoint-dir", str(run_dir / "checkpoints"), "--model-dir", str(run_dir / "model"),
            "--output-dir", str(run_dir / "output")]


@pytest.fixture(scope="session")
def tiny_segmentation() -> list[str]:
    return list(TINY_SEGMENTATION)


@pytest.fixture(scope="session")
def train() -> Train:
    """Run the real entry point in-process (no SM_* variables unless given)."""

    def _train(run_dir: Path, *args: str, environ: dict[str, str] | None = None, **kwargs) -> TrainingResult:
        return main(run_args(run_dir, *args), environ or {}, **kwargs)

    return _train
