"""Model directories that honour the spleen contract without training: for tests and benchmarks.

* ``save_threshold_model``: a TorchScript that segments the spleen intensity band. On the phantom
  (:mod:`model_code.imaging.phantom`) it is exact up to partial-volume voxels, so tests can check
  geometry end to end (orientation, spacing, inversion, SEG frames) against a known answer.
* ``save_untrained_unet``: the contract UNet, freshly initialised and scripted: the real network's
  cost and interface, meaningless output.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from model_code.model_dir import MODEL_FILE, ModelMetadata
from model_code.segmentation.contract import build_spleen_unet, spleen_metadata

# Band around the phantom's spleen (115 HU) that excludes soft tissue (40 HU) and bone (700 HU).
DEFAULT_LOW_HU = 80.0
DEFAULT_HIGH_HU = 150.0


def _erode(mask: torch.Tensor, dim: int) -> torch.Tensor:
    """One-voxel binary erosion along ``dim``; voxels outside the tensor do not count (as max-pool padding)."""
    out = mask.clone()
    n = mask.size(dim)
    if n > 1:
        out.narrow(dim, 1, n - 1).logical_and_(mask.narrow(dim, 0, n - 1))
        out.narrow(dim, 0, n - 1).logical_and_(mask.narrow(dim, 1, n - 1))
    return out


def _dilate(mask: torch.Tensor, dim: int) -> torch.Tensor:
    out = mask.clone()
    n = mask.size(dim)
    if n > 1:
        out.narrow(dim, 1, n - 1).logical_or_(mask.narrow(dim, 0, n - 1))
        out.narrow(dim, 0, n - 1).logical_or_(mask.narrow(dim, 1, n - 1))
    return out


class ThresholdSegmenter(torch.nn.Module):
    """[B,1,X,Y,Z] scaled 0..1 -> [B,2,X,Y,Z] logits: foreground where low <= x <= high.

    A 3x3x3 morphological opening removes one-voxel shells, where resampling blends bone or noise
    into the band (a 700 HU edge next to 40 HU tissue interpolates through 80..150 HU). The box
    opening is done as separable 1-D boolean shifts: exact, and far cheaper than 3-D max pooling on CPU.
    """

    def __init__(self, *, low: float, high: float) -> None:
        super().__init__()
        self.register_buffer("low", torch.tensor(low, dtype=torch.float32))
        self.register_buffer("high", torch.tensor(high, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        # Buffers type as Tensor | Module to mypy; TorchScript knows them as tensors.
        band = (x >= self.low) & (x <= self.high)  # type: ignore[operator]
        for dim in (2, 3, 4):
            band = _erode(band, dim)
        for dim in (2, 3, 4):
            band = _dilate(band, dim)
        foreground = band.float() * 20.0 - 10.0  # logits of +-10: softmax gives ~0/1
        return torch.cat([-foreground, foreground], dim=1)


def _scaled(hu: float, metadata: ModelMetadata) -> float:
    low, high = metadata.preprocessing.intensity_window
    b_min, b_max = metadata.preprocessing.scaled_range
    return b_min + (hu - low) / (high - low) * (b_max - b_min)


def save_threshold_model(
    model_dir: Path,
    *,
    low_hu: float = DEFAULT_LOW_HU,
    high_hu: float = DEFAULT_HIGH_HU,
    version: str = "0.0.1-threshold",
) -> Path:
    """Write ``model.ts`` (scripted :class:`ThresholdSegmenter`) and ``metadata.json``; return the dir."""
    if not low_hu < high_hu:
        raise ValueError(f"low_hu must be below high_hu, got {low_hu} and {high_hu}")
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    metadata = spleen_metadata(version=version)
    metadata = dataclasses.replace(
        metadata,
        extra={"reference_model": {"kind": "threshold", "low_hu": low_hu, "high_hu": high_hu}},
    )
    module = ThresholdSegmenter(low=_scaled(low_hu, metadata), high=_scaled(high_hu, metadata)).eval()
    torch.jit.script(module).save(str(model_dir / MODEL_FILE))
    metadata.save(model_dir)
    return model_dir


def save_untrained_unet(model_dir: Path, *, seed: int = 0, version: str = "0.0.1-untrained") -> Path:
    """Write the contract UNet with seeded random weights, scripted, plus ``metadata.json``."""
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    network = build_spleen_unet().eval()
    torch.jit.script(network).save(str(model_dir / MODEL_FILE))
    metadata = spleen_metadata(version=version)
    metadata = dataclasses.replace(metadata, extra={"reference_model": {"kind": "untrained_unet", "seed": seed}})
    metadata.save(model_dir)
    return model_dir
