"""MONAI bundles that honour the spleen contract without training: for tests, benchmarks and demos.

Each is written with MONAI's own tools in the Model Zoo's layout (``model_code.segmentation.bundle.write_bundle``:
configs/metadata.json + configs/inference.json that ``ConfigParser`` loads, models/model.pt + models/model.ts
from ``torch.jit.script``).

* ``save_threshold_model``: a TorchScript that segments the spleen intensity band. On the phantom
  (:mod:`model_code.synthetic.phantom`) it is exact up to partial-volume voxels, so tests can check
  geometry end to end (orientation, spacing, inversion, SEG frames) against a known answer.
* ``save_pooled_threshold_model``: the same band and opening written with ``max_pool3d``, which exports to
  ONNX faithfully (``make edge-demo-model`` uses it for the edge path).
* ``save_untrained_unet``: the contract UNet, freshly initialised and scripted: the real network's
  cost and interface, meaningless output (``make serve``'s default when ``make demo`` left no model).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812 (the PyTorch convention)

from model_code.core.bundle_layout import MODEL_TS
from model_code.core.model_dir import ModelMetadata
from model_code.core.spleen import SPLEEN_UNET_ARGS, spleen_metadata
from model_code.segmentation.bundle import write_bundle, zoo_inference_config
from model_code.segmentation.networks import build_spleen_unet

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
    """One-voxel binary dilation along ``dim``: the complement's erosion (outside voxels count in neither)."""
    return ~_erode(~mask, dim)


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



def _save(
    model_dir: Path,
    module: torch.nn.Module,
    *,
    version: str,
    reference: dict[str, object],
    network_def: Mapping[str, Any],
    description: ModelMetadata | None = None,
    extra_preprocessing: tuple[Mapping[str, Any], ...] = (),
) -> Path:
    """A zoo-layout bundle of ``module`` (scripted) naming the reference model; returns the dir."""
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    base = description or spleen_metadata(version=version)
    description = dataclasses.replace(base, extra={**base.extra, "reference_model": reference})
    config = zoo_inference_config(description, network_def=network_def, extra_preprocessing=extra_preprocessing)
    write_bundle(model_dir, network=module, description=description, network_def=network_def, inference_config=config)
    return model_dir


def save_threshold_model(
    model_dir: Path,
    *,
    low_hu: float = DEFAULT_LOW_HU,
    high_hu: float = DEFAULT_HIGH_HU,
    version: str = "0.0.1-threshold",
) -> Path:
    """A bundle of :class:`ThresholdSegmenter` (scripted) on the spleen pre-processing; returns the dir."""
    if not low_hu < high_hu:
        raise ValueError(f"low_hu must be below high_hu, got {low_hu} and {high_hu}")
    metadata = spleen_metadata(version=version)
    low, high = _scaled(low_hu, metadata), _scaled(high_hu, metadata)
    module = ThresholdSegmenter(low=low, high=high)
    reference = {"kind": "threshold", "low_hu": low_hu, "high_hu": high_hu}
    network_def = {"_target_": f"{__name__}.ThresholdSegmenter", "low": low, "high": high}
    return _save(model_dir, module, version=version, reference=reference, network_def=network_def)


class PooledThresholdSegmenter(torch.nn.Module):
    """:class:`ThresholdSegmenter` for the ONNX exporter: the legacy exporter drops in-place ops on ``narrow``
    views (the export check refuses that model, as it should), so the 3x3x3 box opening is a ``max_pool3d``
    (erosion is a max-pool of the negation; out-of-volume voxels never count in either). On the phantoms it
    segments the same voxels."""

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
    """A bundle of :class:`PooledThresholdSegmenter` (scripted); returns the directory."""
    metadata = spleen_metadata(version=version)
    low, high = _scaled(DEFAULT_LOW_HU, metadata), _scaled(DEFAULT_HIGH_HU, metadata)
    module = PooledThresholdSegmenter(low=low, high=high)
    reference = {"kind": "pooled_threshold", "low_hu": DEFAULT_LOW_HU, "high_hu": DEFAULT_HIGH_HU}
    network_def = {"_target_": f"{__name__}.PooledThresholdSegmenter", "low": low, "high": high}
    return _save(model_dir, module, version=version, reference=reference, network_def=network_def)


def save_untrained_unet(model_dir: Path, *, seed: int = 0, version: str = "0.0.1-untrained") -> Path:
    """A bundle of the zoo's spleen UNet with seeded random weights (``network_def`` exactly the zoo's)."""
    torch.manual_seed(seed)
    network = build_spleen_unet()
    network_def = {"_target_": "UNet", **SPLEEN_UNET_ARGS}
    reference = {"kind": "untrained_unet", "seed": seed}
    return _save(model_dir, network, version=version, reference=reference, network_def=network_def)


class SmoothBand(torch.nn.Module):
    """[B,1,X,Y,Z] -> [B,C,X,Y,Z] logits that vary smoothly with a 3x3x3 mean of the input: channel ``c``
    peaks where the mean is near ``c / (C - 1)``. No voxel is decided by a hair, so a test can compare two
    implementations label for label, and window borders matter (the mean sees the padding)."""

    def __init__(self, *, channels: int = 2, sharpness: float = 12.0) -> None:
        super().__init__()
        self.channels = channels
        self.sharpness = sharpness

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = F.avg_pool3d(x.float(), kernel_size=3, stride=1, padding=1)
        centres = torch.linspace(0.0, 1.0, self.channels, device=x.device).view(1, self.channels, 1, 1, 1)
        return -self.sharpness * (mean - centres) ** 2


def save_bundle(
    model_dir: Path,
    module: torch.nn.Module,
    *,
    description: ModelMetadata,
    network_def: Mapping[str, Any],
    extra_preprocessing: tuple[Mapping[str, Any], ...] = (),
    edit: Any = None,
) -> Path:
    """A zoo-layout bundle of ``module`` with ``description``'s settings as MONAI config; ``edit`` (a callable)
    may change the inference config before it is written (another inferer, post-processing ...)."""
    config = zoo_inference_config(description, network_def=network_def, extra_preprocessing=extra_preprocessing)
    if edit is not None:
        edit(config)
    return write_bundle(model_dir, network=module, description=description, network_def=network_def,
                        inference_config=config)


# The Model Zoo's spleen_ct_segmentation bundle as it ships: its metadata and inference keys and values
# (datasets, evaluator and checkpoint loader included), for tests and benchmarks that must read the zoo's own layout.
ZOO_TRANSFORMS = [
    {"_target_": "LoadImaged", "keys": "image"},
    {"_target_": "EnsureChannelFirstd", "keys": "image"},
    {"_target_": "Orientationd", "keys": "image", "axcodes": "RAS"},
    {"_target_": "Spacingd", "keys": "image", "pixdim": [1.5, 1.5, 2.0], "mode": "bilinear"},
    {"_target_": "ScaleIntensityRanged", "keys": "image", "a_min": -57, "a_max": 164, "b_min": 0, "b_max": 1,
     "clip": True},
    {"_target_": "EnsureTyped", "keys": "image"},
]


def zoo_spleen_configs() -> tuple[dict[str, Any], dict[str, Any]]:
    """configs/metadata.json and configs/inference.json with the keys and values of the zoo's
    spleen_ct_segmentation."""
    pred = {"type": "image", "format": "segmentation", "num_channels": 2, "spatial_shape": [96, 96, 96],
            "dtype": "float32", "value_range": [0, 1], "is_patch_data": True,
            "channel_def": {"0": "background", "1": "spleen"}}
    metadata = {
        "schema": "https://github.com/Project-MONAI/MONAI-extra-test-data/releases/download/0.8.1/meta_schema_20220324.json",
        "version": "0.2.0", "monai_version": "0.9.0", "pytorch_version": "1.10.0", "numpy_version": "1.21.2",
        "optional_packages_version": {"nibabel": "3.2.1"}, "task": "Decathlon spleen segmentation",
        "description": "spleen from CT", "authors": "MONAI Imaging Platform tests", "copyright": "n/a",
        "eval_metrics": {"mean_dice": 0.96},
        "network_data_format": {
            "inputs": {"image": {"type": "image", "format": "hounsfield", "modality": "CT", "num_channels": 1,
                                 "spatial_shape": [96, 96, 96], "dtype": "float32", "value_range": [0, 1],
                                 "is_patch_data": True, "channel_def": {"0": "image"}}},
            "outputs": {"pred": pred},
        },
    }
    inference = {
        "imports": ["$import glob", "$import os"],
        "bundle_root": ".",
        "output_dir": "$@bundle_root + '/eval'",
        "dataset_dir": "/workspace/data/Task09_Spleen",
        "datalist": "$list(sorted(glob.glob(@dataset_dir + '/imagesTs/*.nii.gz')))",
        "device": "$torch.device('cuda:0' if torch.cuda.is_available() else 'cpu')",
        "network_def": {"_target_": "UNet", **SPLEEN_UNET_ARGS},
        "network": "$@network_def.to(@device)",
        "preprocessing": {"_target_": "Compose", "transforms": ZOO_TRANSFORMS},
        "dataset": {"_target_": "Dataset", "data": "$[{'image': i} for i in @datalist]", "transform": "@preprocessing"},
        "dataloader": {"_target_": "DataLoader", "dataset": "@dataset", "batch_size": 1, "shuffle": False,
                       "num_workers": 4},
        "inferer": {"_target_": "SlidingWindowInferer", "roi_size": [96, 96, 96], "sw_batch_size": 4, "overlap": 0.5},
        "postprocessing": {"_target_": "Compose", "transforms": [
            {"_target_": "Activationsd", "keys": "pred", "softmax": True},
            {"_target_": "Invertd", "keys": "pred", "transform": "@preprocessing", "orig_keys": "image",
             "nearest_interp": False, "to_tensor": True},
            {"_target_": "AsDiscreted", "keys": "pred", "argmax": True},
            {"_target_": "SaveImaged", "keys": "pred", "output_dir": "@output_dir", "output_ext": ".nii.gz"},
        ]},
        "evaluator": {"_target_": "SupervisedEvaluator", "device": "@device", "val_data_loader": "@dataloader",
                      "network": "@network", "inferer": "@inferer", "postprocessing": "@postprocessing", "amp": True},
        "checkpointloader": {"_target_": "CheckpointLoader", "load_path": "$@bundle_root + '/models/model.pt'",
                             "load_dict": {"model": "@network"}},
        "initialize": ["$monai.utils.set_determinism(seed=123)", "$@checkpointloader(@evaluator)"],
        "run": ["$@evaluator.run()"],
    }
    return metadata, inference


def save_zoo_spleen_bundle(model_dir: Path, module: torch.nn.Module | None = None) -> Path:
    """The zoo's spleen layout with ``module`` (default: the threshold segmenter on the zoo's window) as
    models/model.ts + models/model.pt; configs written by ``ConfigParser.export_config_file``."""
    from monai.bundle import ConfigParser

    from model_code.core.bundle_layout import INFERENCE_JSON, METADATA_JSON, MODEL_PT

    metadata, inference = zoo_spleen_configs()
    if module is None:
        description = spleen_metadata()
        low, high = _scaled(DEFAULT_LOW_HU, description), _scaled(DEFAULT_HIGH_HU, description)
        module = ThresholdSegmenter(low=low, high=high)
    model_dir = Path(model_dir)
    (model_dir / "configs").mkdir(parents=True, exist_ok=True)
    (model_dir / "models").mkdir(exist_ok=True)
    ConfigParser.export_config_file(metadata, str(model_dir / METADATA_JSON), indent=4)
    ConfigParser.export_config_file(inference, str(model_dir / INFERENCE_JSON), indent=4)
    module = module.eval()
    torch.save(module.state_dict(), str(model_dir / MODEL_PT))
    torch.jit.script(module).save(str(model_dir / MODEL_TS))
    return model_dir
