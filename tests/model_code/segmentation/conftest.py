"""Fixtures for the segmentation tests: a shared pipeline and mask helpers.

The reference model directories are in ``tests/model_code/conftest.py``, dciodvfy in ``tests/conftest.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812

from model_code.segmentation.pipeline import SegmentationPipeline


@pytest.fixture(scope="session")
def pipeline(threshold_model_dir: Path) -> SegmentationPipeline:
    # One pipeline for the session, as the serving handler keeps one: reuse is part of what is tested.
    return SegmentationPipeline.from_model_dir(threshold_model_dir, device="cpu")


def boundary_band(mask: np.ndarray) -> np.ndarray:
    """Voxels within one voxel (3x3x3) of the mask's surface, inside or outside."""
    tensor = torch.from_numpy(mask.astype(np.float32))[None, None]
    dilated = F.max_pool3d(tensor, 3, stride=1, padding=1)
    eroded = -F.max_pool3d(-tensor, 3, stride=1, padding=1)
    return ((dilated - eroded)[0, 0] > 0).numpy()


@pytest.fixture(scope="session")
def band() -> Callable[[np.ndarray], np.ndarray]:
    return boundary_band
