"""Session fixtures shared by the model_code tests: contract model directories, each written once."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def threshold_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from testkit.models import save_threshold_model

    return save_threshold_model(tmp_path_factory.mktemp("threshold-model"))


@pytest.fixture(scope="session")
def untrained_unet_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from testkit.models import save_untrained_unet

    # Scripting the UNet takes seconds: once per session.
    return save_untrained_unet(tmp_path_factory.mktemp("untrained-unet"), seed=1)


@pytest.fixture(scope="session")
def pooled_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from testkit.models import save_pooled_threshold_model

    return save_pooled_threshold_model(tmp_path_factory.mktemp("pooled-model"))
