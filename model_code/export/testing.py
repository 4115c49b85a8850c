"""A reference model that exports to ONNX faithfully, for tests, demos and benchmarks of the edge path.

``reference_models.ThresholdSegmenter`` opens its band with in-place ops on ``narrow`` views, which the
legacy ONNX exporter drops (the export check refuses it, as it should). This one computes the same 3x3x3
box opening with ``max_pool3d`` (erosion is a max-pool of the negation; out-of-volume voxels never count
in either), which ONNX has as an op: on the phantoms it segments the same voxels.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
import torch.nn.functional as F  # noqa: N812 (the PyTorch convention)

from model_code.model_dir import MODEL_FILE
from model_code.segmentation.contract import spleen_metadata
from model_code.segmentation.reference_models import DEFAULT_HIGH_HU, DEFAULT_LOW_HU


class PooledThresholdSegmenter(torch.nn.Module):
    def __init__(self, *, low: float, high: float) -> None:
        super().__init__()
        self.low = low
        self.high = high

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        band = ((x >= self.low) & (x <= self.high)).float()
        eroded = -F.max_pool3d(-band, kernel_size=3, stride=1, padding=1)
        opened = F.max_pool3d(eroded, kernel_size=3, stride=1, padding=1)
        foreground = opened * 20.0 - 10.0  # logits of +-10, as the reference threshold model
        return torch.cat([-foreground, foreground], dim=1)


def save_pooled_threshold_model(model_dir: Path, *, version: str = "0.0.1-pooled") -> Path:
    """``model.ts`` (scripted :class:`PooledThresholdSegmenter`) + ``metadata.json``; returns the directory."""
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    metadata = spleen_metadata(version=version)
    (a_min, a_max), (b_min, b_max) = metadata.preprocessing.intensity_window, metadata.preprocessing.scaled_range

    def scaled(hu: float) -> float:
        return b_min + (hu - a_min) / (a_max - a_min) * (b_max - b_min)

    metadata = dataclasses.replace(
        metadata,
        extra={"reference_model": {"kind": "pooled_threshold", "low_hu": DEFAULT_LOW_HU, "high_hu": DEFAULT_HIGH_HU}},
    )
    module = PooledThresholdSegmenter(low=scaled(DEFAULT_LOW_HU), high=scaled(DEFAULT_HIGH_HU)).eval()
    torch.jit.script(module).save(str(model_dir / MODEL_FILE))
    metadata.save(model_dir)
    return model_dir
