"""Fixtures for the segmentation tests: reference models, a shared pipeline, dciodvfy, mask helpers."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812

from model_code.segmentation.pipeline import SegmentationPipeline
from model_code.segmentation.reference_models import save_threshold_model, save_untrained_unet


@pytest.fixture(scope="session")
def threshold_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_threshold_model(tmp_path_factory.mktemp("threshold-model"))


@pytest.fixture(scope="session")
def untrained_unet_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Scripting the UNet takes seconds: once per session.
    return save_untrained_unet(tmp_path_factory.mktemp("untrained-unet"), seed=1)


@pytest.fixture(scope="session")
def pipeline(threshold_model_dir: Path) -> SegmentationPipeline:
    # One pipeline for the session, as the serving handler keeps one: reuse is part of what is tested.
    return SegmentationPipeline.from_model_dir(threshold_model_dir, device="cpu")


@pytest.fixture(scope="session")
def dciodvfy() -> Callable[[Path], list[str]]:
    """Returns a function giving dciodvfy's error lines for one file (empty list = valid)."""
    executable = shutil.which("dciodvfy")
    if executable is None:
        pytest.fail("dciodvfy is not installed: run `make dicom-tools` (apt-get install dicom3tools)")

    def errors(path: Path) -> list[str]:
        completed = subprocess.run([executable, str(path)], capture_output=True, text=True, check=False)
        lines = (completed.stdout + completed.stderr).splitlines()
        return [line for line in lines if line.startswith("Error")]

    return errors


def boundary_band(mask: np.ndarray) -> np.ndarray:
    """Voxels within one voxel (3x3x3) of the mask's surface, inside or outside."""
    tensor = torch.from_numpy(mask.astype(np.float32))[None, None]
    dilated = F.max_pool3d(tensor, 3, stride=1, padding=1)
    eroded = -F.max_pool3d(-tensor, 3, stride=1, padding=1)
    return ((dilated - eroded)[0, 0] > 0).numpy()


@pytest.fixture(scope="session")
def band() -> Callable[[np.ndarray], np.ndarray]:
    return boundary_band
