"""Write the trained model as a MONAI bundle in the Model Zoo's layout.

    <model_dir>/configs/inference.json    network_def, pre-processing, inferer, post-processing
    <model_dir>/configs/metadata.json     network_data_format (labels in channel_def), eval_metrics, the run
    <model_dir>/models/model.pt           the state dict (what ``--init-bundle`` and MONAI's CheckpointLoader read)
    <model_dir>/models/model.ts           TorchScript (what the serving paths run)

The trainer writes its own configs (``segmentation.bundle.write_bundle`` describes a CT segmentation input):
a classifier's network_data_format is RGB images or volumes in, class probabilities out.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import torch

from model_code.core.bundle_layout import INFERENCE_JSON, METADATA_JSON, MODEL_PT, MODEL_TS


def to_torchscript(model: torch.nn.Module, example: torch.Tensor) -> torch.jit.ScriptModule:
    """Script the network (keeps shape-generic control flow); trace when scripting is unsupported."""
    network = copy.deepcopy(model).cpu().eval()
    try:
        scripted = torch.jit.script(network)
    except Exception:  # any scripting failure falls back to tracing; the result is checked below
        scripted = torch.jit.trace(network, example)
    with torch.no_grad():
        expected, actual = network(example), scripted(example)
    if not torch.allclose(expected, actual, atol=1e-5):
        raise RuntimeError("the TorchScript export disagrees with the network it was made from")
    return scripted


def _write_json(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=4) + "\n")


def write_bundle(
    model_dir: Path,
    *,
    model: torch.nn.Module,
    example: torch.Tensor,
    inference: dict[str, Any],
    metadata: dict[str, Any],
) -> Path:
    """The bundle at ``model_dir`` (created)."""
    model_dir = Path(model_dir)
    network = model.cpu().eval()
    _write_json(model_dir / INFERENCE_JSON, inference)
    _write_json(model_dir / METADATA_JSON, metadata)
    (model_dir / MODEL_PT).parent.mkdir(parents=True, exist_ok=True)
    torch.save(network.state_dict(), model_dir / MODEL_PT)
    torch.jit.save(to_torchscript(network, example), str(model_dir / MODEL_TS))
    return model_dir
