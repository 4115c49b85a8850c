"""Write the model directory the contract defines: model.ts + metadata.json, plus the model.pt state dict."""

from __future__ import annotations

import copy
from pathlib import Path

import torch

from model_code.core.model_dir import MODEL_FILE, STATE_DICT_FILE, ModelMetadata


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


def write_model_dir(
    model_dir: Path, *, model: torch.nn.Module, example: torch.Tensor, metadata: ModelMetadata
) -> Path:
    model_dir.mkdir(parents=True, exist_ok=True)
    network = model.cpu().eval()
    torch.save(network.state_dict(), model_dir / STATE_DICT_FILE)
    torch.jit.save(to_torchscript(network, example), str(model_dir / MODEL_FILE))
    metadata.save(model_dir)
    return model_dir
