"""Fixtures for the edge runner tests: one ONNX bundle per session, the segmentation tests' SEG checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from model_code.edge.engine import EdgeModel
from model_code.edge.layout import BundleFormat
from model_code.export.bundle import export_bundle

# The SEG checks of the segmentation issue, reused as they are (the one-voxel boundary band; dciodvfy and
# pooled_model_dir come from the shared conftests above).
from tests.model_code.segmentation.conftest import band  # noqa: F401 (pytest fixture)


@pytest.fixture(scope="session")
def onnx_bundle(pooled_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_bundle(pooled_model_dir, tmp_path_factory.mktemp("edge") / "bundle", fmt=BundleFormat.ONNX).bundle


@pytest.fixture(scope="session")
def edge_model(onnx_bundle: Path) -> EdgeModel:
    return EdgeModel.load(onnx_bundle, threads=1)
