"""The MONAI bundle documents a training run writes: ``configs/inference.json`` and ``configs/metadata.json``.

The keys are the MONAI Model Zoo's (``network_def``, ``preprocessing``, ``inferer``, ``postprocessing``;
``network_data_format`` with ``channel_def`` labels), so ``monai.bundle.ConfigParser`` reads the result and
``python -m monai.bundle verify_net_in_out`` checks it as it checks a zoo bundle. Plain dicts only: the
trainer builds them from what it trained with, nothing here imports MONAI.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Mapping, Sequence
from typing import Any

# The zoo's metadata schema (kept as the zoo names it; only verify_metadata, which needs a download, reads it).
METADATA_SCHEMA = (
    "https://github.com/Project-MONAI/MONAI-extra-test-data/releases/download/0.8.1/meta_schema_20220324.json"
)
DEVICE = "$torch.device('cuda:0' if torch.cuda.is_available() else 'cpu')"
NETWORK = "$@network_def.to(@device)"
INTENDED_USE = "Trained by model_code.training; validate it on your own studies before any clinical use."


def component(target: str, **args: Any) -> dict[str, Any]:
    """One MONAI config component: ``{"_target_": "Spacingd", "keys": "image", ...}``."""
    return {"_target_": target, **args}


def compose(transforms: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    return component("Compose", transforms=[dict(t) for t in transforms])


def inference_document(
    *,
    network_def: Mapping[str, Any],
    preprocessing: Sequence[Mapping[str, Any]],
    inferer: Mapping[str, Any],
    postprocessing: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    """inference.json: the network and the inference-time transforms, as the zoo's spleen bundle lays them out."""
    return {
        "bundle_root": ".",
        "device": DEVICE,
        "network_def": dict(network_def),
        "network": NETWORK,
        "preprocessing": compose(preprocessing),
        "inferer": dict(inferer),
        "postprocessing": compose(postprocessing),
    }


def _versions() -> dict[str, str]:
    return {
        "monai_version": importlib.metadata.version("monai"),
        "pytorch_version": importlib.metadata.version("torch").split("+")[0],
        "numpy_version": importlib.metadata.version("numpy"),
    }


def tensor_format(
    *,
    type_: str,
    format_: str,
    num_channels: int,
    spatial_shape: Sequence[int | str],
    value_range: tuple[float, float],
    is_patch_data: bool,
    channel_def: Mapping[int, str],
    modality: str | None = None,
) -> dict[str, Any]:
    """One entry of ``network_data_format.inputs`` / ``.outputs`` (the zoo's keys)."""
    document: dict[str, Any] = {
        "type": type_,
        "format": format_,
        "num_channels": num_channels,
        "spatial_shape": list(spatial_shape),
        "dtype": "float32",
        "value_range": list(value_range),
        "is_patch_data": is_patch_data,
        "channel_def": {str(k): v for k, v in sorted(channel_def.items())},
    }
    if modality is not None:
        document["modality"] = modality
    return document


def metadata_document(
    *,
    name: str,
    version: str,
    task: str,
    description: str,
    image: Mapping[str, Any],
    pred: Mapping[str, Any],
    eval_metrics: Mapping[str, float],
    extra: Mapping[str, Any],
) -> dict[str, Any]:
    """configs/metadata.json: the zoo's required keys, the tensors' format, and what this run measured."""
    return {
        "schema": METADATA_SCHEMA,
        "version": version,
        "changelog": {version: "trained by model_code.training"},
        **_versions(),
        "required_packages_version": {},
        "name": name,
        "task": task,
        "description": description,
        "authors": "model_code.training",
        "copyright": "the training data's owner",
        "intended_use": INTENDED_USE,
        "eval_metrics": {k: float(v) for k, v in eval_metrics.items()},
        "network_data_format": {"inputs": {"image": dict(image)}, "outputs": {"pred": dict(pred)}},
        **dict(extra),
    }
