"""The bundle's network behind the spleen contract, in numpy: series in, mask + SEG + summary out."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom

from model_code.core.dicom.seg import build_segmentation
from model_code.core.dicom.series import ImageSeries
from model_code.core.geometry import plan_resample
from model_code.core.model_dir import ModelMetadata
from model_code.core.spleen import check_series, input_modalities, spleen_summary
from model_code.core.transforms_numpy import (
    WindowNetwork,
    foreground_probability,
    mask_from_model_grid,
    scale_intensity,
    to_model_grid,
)
from model_code.edge.layout import (
    DESCRIPTION_FILE,
    EDGE_KEY,
    INPUT_NAME,
    ONNX_FILE,
    TORCHSCRIPT_FILE,
    BundleError,
    BundleFormat,
    verify_manifest,
)


@dataclass(frozen=True)
class EdgeResult:
    mask: np.ndarray
    seg_dataset: pydicom.Dataset
    summary: dict[str, Any]


def onnx_network(path: Path, *, threads: int) -> WindowNetwork:
    """An onnxruntime CPU session as a window network; ``threads`` bounds the intra-op thread pool."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])

    def run(windows: np.ndarray) -> np.ndarray:
        return np.asarray(session.run(None, {INPUT_NAME: np.ascontiguousarray(windows, dtype=np.float32)})[0])

    return run


def torchscript_network(path: Path, *, threads: int) -> WindowNetwork:
    """A TorchScript bundle (devices that carry torch); imported only for that format."""
    import torch

    torch.set_num_threads(threads)
    module = torch.jit.load(str(path), map_location="cpu").eval()

    def run(windows: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return module(torch.from_numpy(np.ascontiguousarray(windows, dtype=np.float32))).float().numpy()

    return run


def _description(bundle: Path) -> ModelMetadata:
    """edge.json: the model as the export read it from the MONAI bundle (the runner carries no MONAI)."""
    path = bundle / DESCRIPTION_FILE
    if not path.is_file():
        raise BundleError(
            f"{path} is missing: {bundle} is not an edge bundle (export one with python -m model_code.export)"
        )
    try:
        document = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise BundleError(f"{path} is not valid JSON ({error}): export the bundle again") from error
    return ModelMetadata.from_json(document, source=str(path))


class EdgeModel:
    """Loaded once by the runner; ``run`` is thread-safe (the network call is serialised).

    ``run`` is ``SegmentationPipeline.run``'s interface, so the runner serves it through the core's
    ``SegmentationService``, as the cloud endpoints serve the torch pipeline.
    """

    def __init__(self, *, network: WindowNetwork, metadata: ModelMetadata, runtime: str) -> None:
        self.network = network
        self.metadata = metadata
        self.runtime = runtime
        self._lock = threading.Lock()

    @classmethod
    def load(cls, bundle: Path, *, threads: int = 1, verify: bool = True) -> EdgeModel:
        bundle = Path(bundle)
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        if verify:
            verify_manifest(bundle)
        metadata = _description(bundle)
        edge = metadata.extra.get(EDGE_KEY)
        if not isinstance(edge, dict) or "format" not in edge:
            raise BundleError(
                f"{bundle}/{DESCRIPTION_FILE} has no '{EDGE_KEY}' section: export the bundle with model_code.export"
            )
        try:
            fmt = BundleFormat(edge["format"])
        except ValueError as error:
            raise BundleError(f"unknown bundle format {edge['format']!r}: expected onnx or torchscript") from error
        loaders: dict[BundleFormat, tuple[str, Callable[..., WindowNetwork]]] = {
            BundleFormat.ONNX: (ONNX_FILE, onnx_network),
            BundleFormat.TORCHSCRIPT: (TORCHSCRIPT_FILE, torchscript_network),
        }
        file_name, loader = loaders[fmt]
        return cls(network=loader(bundle / file_name, threads=threads), metadata=metadata, runtime=fmt.value)

    def check(self, series: ImageSeries) -> None:
        # The modality the bundle's input declares (edge.json carries its network_data_format), as the cloud checks.
        check_series(series, modalities=input_modalities(self.metadata), model=f"the model {self.metadata.name}")

    def predict_mask(self, series: ImageSeries, timings: dict[str, float] | None = None) -> np.ndarray:
        timings = {} if timings is None else timings
        pre, inference = self.metadata.preprocessing, self.metadata.inference
        start = time.perf_counter()
        plan = plan_resample(series.affine, series.volume.shape, pixdim=pre.spacing_mm, axcodes=pre.orientation)
        image = scale_intensity(
            to_model_grid(series.volume, plan),
            window=pre.intensity_window,
            scaled_range=pre.scaled_range,
            clip=pre.clip,
        )
        timings["preprocess"] = time.perf_counter() - start
        start = time.perf_counter()
        with self._lock:
            probability = foreground_probability(
                self.network,
                image,
                roi_size=inference.roi_size,
                overlap=inference.overlap,
                sw_batch_size=inference.sw_batch_size,
            )
        timings["inference"] = time.perf_counter() - start
        start = time.perf_counter()
        # argmax over {background, spleen} == (p_spleen > 0.5), ties going to background.
        mask = mask_from_model_grid(probability, plan, threshold=0.5)
        timings["postprocess"] = time.perf_counter() - start
        return mask

    def run(self, series: ImageSeries) -> EdgeResult:
        """Raises InvalidSeriesError for input the model cannot read."""
        self.check(series)
        timings: dict[str, float] = {}
        mask = self.predict_mask(series, timings)
        start = time.perf_counter()
        seg = build_segmentation(series, mask, metadata=self.metadata)
        timings["seg"] = time.perf_counter() - start
        return EdgeResult(mask=mask, seg_dataset=seg, summary=self._summary(series, mask, seg, timings))

    def _summary(
        self, series: ImageSeries, mask: np.ndarray, seg: pydicom.Dataset, timings: dict[str, float]
    ) -> dict[str, Any]:
        # The keys the async endpoint's summary carries, so callers parse one shape.
        return {
            **spleen_summary(self.metadata, series, mask, seg),
            "volume_shape": list(series.volume.shape),
            "voxel_spacing_mm": [round(v, 4) for v in series.spacing],
            "device": "cpu",
            "runtime": self.runtime,
            "sw_batch_size": self.metadata.inference.sw_batch_size,
            "timings_s": {k: round(v, 4) for k, v in timings.items()},
        }
