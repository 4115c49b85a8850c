"""Fixtures for the serving tests: a reference model directory and synthetic series zips, made once."""

from __future__ import annotations

from pathlib import Path

import pytest

from testkit.series import SeriesZip, series_zip


@pytest.fixture(scope="session")
def threshold_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from testkit.models import save_threshold_model

    return save_threshold_model(tmp_path_factory.mktemp("models") / "threshold")


@pytest.fixture(scope="session")
def phantom_zip() -> SeriesZip:
    return series_zip(shape=(12, 40, 40), seed=0)
