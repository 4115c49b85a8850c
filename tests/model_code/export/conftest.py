"""Session fixtures for the export tests: contract model directories written once."""

from __future__ import annotations

from pathlib import Path

import pytest

from model_code.export.testing import save_pooled_threshold_model
from model_code.segmentation.reference_models import save_threshold_model, save_untrained_unet


@pytest.fixture(scope="session")
def pooled_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_pooled_threshold_model(tmp_path_factory.mktemp("pooled-model"))


@pytest.fixture(scope="session")
def threshold_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_threshold_model(tmp_path_factory.mktemp("threshold-model"))


@pytest.fixture(scope="session")
def untrained_unet_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_untrained_unet(tmp_path_factory.mktemp("untrained-unet"), seed=1)
