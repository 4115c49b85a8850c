"""TorchScript -> ONNX, and the check that both answer the same on phantom windows.

The legacy TorchScript exporter (``dynamo=False``) is used: the dynamo exporter needs onnxscript and
cannot take a ScriptModule, and a bundle's models/model.ts *is* a ScriptModule. Not every TorchScript
exports faithfully (in-place ops on views, e.g. ``narrow(...).logical_and_()``, are dropped by the legacy
exporter), so every export is compared with its source before a bundle is written.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from model_code.core.model_dir import ModelMetadata
from model_code.core.transforms_numpy import scale_intensity
from model_code.edge.layout import INPUT_NAME, OUTPUT_NAME
from model_code.synthetic.phantom import make_phantom

OPSET = 17
# Logits may differ by ATOL + RTOL * |torchscript logit| (float32 kernels differ in summation order).
ATOL = 1e-3
RTOL = 1e-3


@dataclass(frozen=True)
class Agreement:
    max_abs_difference: float
    label_disagreement: float  # fraction of window voxels whose argmax differs
    within_tolerance: bool


def export_onnx(module: torch.nn.Module, path: Path, *, roi_size: tuple[int, int, int]) -> Path:
    example = torch.zeros((1, 1, *roi_size), dtype=torch.float32)
    # Batch and spatial axes dynamic: the runner batches windows, and a bundle may change roi_size.
    axes = {0: "batch", 2: "x", 3: "y", 4: "z"}
    with warnings.catch_warnings():
        # A ScriptModule has no Python signature; the exporter says so on every export, harmlessly.
        warnings.filterwarnings("ignore", message="no signature found", category=UserWarning)
        _export(module, example, path, axes)
    return path


def _export(module: torch.nn.Module, example: torch.Tensor, path: Path, axes: dict[int, str]) -> None:
    torch.onnx.export(
        module,
        (example,),
        str(path),
        dynamo=False,
        opset_version=OPSET,
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        dynamic_axes={INPUT_NAME: axes, OUTPUT_NAME: axes},
    )


def phantom_windows(metadata: ModelMetadata, *, seeds: tuple[int, ...] = (0, 1)) -> np.ndarray:
    """[N,1,X,Y,Z] model inputs: phantoms the size of one window, scaled as the pre-processing does."""
    pre, roi = metadata.preprocessing, metadata.inference.roi_size
    windows = [
        scale_intensity(
            make_phantom(shape=roi, spacing=pre.spacing_mm, seed=seed).volume_hu,
            window=pre.intensity_window,
            scaled_range=pre.scaled_range,
            clip=pre.clip,
        )
        for seed in seeds
    ]
    return np.stack(windows)[:, None].astype(np.float32)


def compare(module: torch.nn.Module, onnx_path: Path, inputs: np.ndarray) -> Agreement:
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    with torch.inference_mode():
        expected = module(torch.from_numpy(inputs)).float().numpy()
    actual = np.asarray(session.run(None, {INPUT_NAME: inputs})[0])
    if actual.shape != expected.shape:
        return Agreement(float("inf"), 1.0, False)
    difference = np.abs(actual - expected)
    within = bool(np.all(difference <= ATOL + RTOL * np.abs(expected)))
    labels_differ = float(np.mean(actual.argmax(axis=1) != expected.argmax(axis=1)))
    return Agreement(float(difference.max()), labels_differ, within)
