"""Spleen segmentation of one CT series: model grid, sliding window, inverse, SEG, summary, overlay.

One :class:`SegmentationPipeline` loads the TorchScript once and serves many requests. ``run`` keeps
all per-request state local; only the network call is serialised (a lock), so concurrent requests
overlap their pre/post-processing and SEG encoding but never race for accelerator memory.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pydicom
import torch

from model_code.core.dicom.seg import build_segmentation
from model_code.core.dicom.series import ImageSeries
from model_code.core.geometry import ResamplePlan, plan_resample
from model_code.core.model_dir import ModelMetadata
from model_code.core.settings import ServerSettings
from model_code.core.spleen import check_series, input_modalities, spleen_summary
from model_code.segmentation.overlay import largest_slice, render_overlay_png
from model_code.segmentation.transforms_torch import (
    foreground_probability,
    mask_from_model_grid,
    scale_intensity,
    shares_memory,
    to_model_grid,
)

if TYPE_CHECKING:
    from model_code.segmentation.bundle_inference import BundleInference

Progress = Callable[[str], None]


@dataclass(frozen=True)
class SegmentationResult:
    """What one run produces. ``mask`` is uint8 (0/1) with the series volume's shape and order; ``overlay_png``
    is empty when the pipeline released the volume (a server's)."""

    mask: np.ndarray
    seg_dataset: pydicom.Dataset
    summary: dict[str, Any]
    overlay_png: bytes


def resolve_device(device: str | torch.device | None) -> torch.device:
    """None picks CUDA when present; an explicit CUDA request without CUDA is an error, not a fallback."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    kind = device.type if isinstance(device, torch.device) else str(device).split(":")[0]
    if kind not in ("cpu", "cuda"):
        raise ValueError(f"device must be cpu or cuda, got {device!r}")
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was requested but torch.cuda.is_available() is False: use --device cpu")
    return torch.device(device)


class _Timer:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str, progress: Progress | None) -> Iterator[None]:
        if progress is not None:
            progress(name)
        start = time.perf_counter()
        yield
        self.seconds[name] = round(time.perf_counter() - start, 4)


class SegmentationPipeline:
    """The spleen contract applied to ImageSeries; build with :meth:`from_model_dir`."""

    def __init__(
        self,
        *,
        network: torch.jit.ScriptModule | torch.nn.Module,
        metadata: ModelMetadata,
        device: torch.device,
        sw_batch_size: int | None = None,
        amp: bool = True,
        inference: BundleInference | None = None,
        release_volume: bool = False,
    ) -> None:
        """``release_volume``: :meth:`run` takes the series' pixels over. Once they are on the model grid the
        series lets go of its volume (:meth:`ImageSeries.release_volume`), so a request does not hold the
        series' pixels through the network, the inverse and the SEG; no overlay preview is rendered (it reads
        them). What a model server runs (:meth:`for_server`): it answers with the SEG and the summary only."""
        batch = metadata.inference.sw_batch_size if sw_batch_size is None else sw_batch_size
        if inference is not None and sw_batch_size is None and inference.sw_batch_size is not None:
            batch = inference.sw_batch_size
        if batch < 1:
            raise ValueError(f"sw_batch_size must be >= 1, got {batch}")
        self.network = network
        self.metadata = metadata
        self.device = device
        self.sw_batch_size = int(batch)
        self.amp = amp
        # The bundle's own pre-processing, inferer and post-processing (None: the description's spleen settings).
        self.inference = inference.with_sw_batch_size(self.sw_batch_size) if inference is not None else None
        self.release_volume = release_volume
        self._network_lock = threading.Lock()

    @classmethod
    def from_bundle(
        cls,
        source: Path,
        *,
        device: str | torch.device | None = None,
        sw_batch_size: int | None = None,
        amp: bool = True,
        workdir: Path | None = None,
        release_volume: bool = False,
    ) -> SegmentationPipeline:
        """Load a MONAI bundle (directory, .zip or model.tar.gz) once: its network, and its inference.json's
        pre-processing, inferer and post-processing planned (:class:`BundleInference`), refusing what cannot run."""
        # MONAI is imported here, not with the module: importing it loads tensorboard (and boto3 through it),
        # which the runtimes that import this module (triton_model) must not carry until a model is loaded.
        from model_code.segmentation.bundle import ModelBundle
        from model_code.segmentation.bundle_inference import BundleInference

        resolved = resolve_device(device)
        bundle = ModelBundle.load(Path(source), workdir=workdir)
        inference = BundleInference.plan(bundle)
        network = bundle.network(resolved)
        return cls(network=network, metadata=bundle.description, device=resolved, sw_batch_size=sw_batch_size,
                   amp=amp, inference=inference, release_volume=release_volume)

    @classmethod
    def from_model_dir(
        cls,
        model_dir: Path,
        *,
        device: str | torch.device | None = None,
        sw_batch_size: int | None = None,
        amp: bool = True,
        release_volume: bool = False,
    ) -> SegmentationPipeline:
        """The model of every serving path: a MONAI bundle (:meth:`from_bundle`: a directory, a .zip or a
        model.tar.gz); ``device`` None = CUDA if available else CPU."""
        return cls.from_bundle(Path(model_dir), device=device, sw_batch_size=sw_batch_size, amp=amp,
                               release_volume=release_volume)

    @classmethod
    def for_server(cls, model_dir: Path, settings: ServerSettings) -> SegmentationPipeline:
        """The pipeline a model server runs: device and windows per call from its settings (SERVING_*); it
        releases each request's volume once on the model grid (a server sends no overlay)."""
        return cls.from_model_dir(model_dir, device=settings.device, sw_batch_size=settings.sw_batch_size,
                                  release_volume=True)

    def predict_mask(
        self, series: ImageSeries, *, timer: _Timer | None = None, progress: Progress | None = None
    ) -> np.ndarray:
        """Only the mask (uint8, series.volume's shape): pre-processing, network, inverse. With
        ``release_volume`` the series' volume is released once it is on the model grid."""
        timer = timer or _Timer()
        # Each step is its own call, and what the next no longer needs is let go between them (the series'
        # pixels after the model grid, the model grid after the network): the request's peak is one of them
        # beside the probability, not all three (issue 19).
        if self.inference is not None:
            with torch.inference_mode(), self._network_lock:
                if not self.inference.fast:
                    return self.inference.predict(
                        self.network, series.volume, series.affine, device=self.device, amp=self.amp,
                        stage=lambda name: timer.stage(name, progress),
                    )
                with timer.stage("preprocess", progress):
                    plan, image = self.inference.model_grid(series.volume, series.affine, device=self.device)
                    self._release(series)
                with timer.stage("inference", progress):
                    probability = self.inference.probability(self.network, image, amp=self.amp, device=self.device)
                del image
                with timer.stage("postprocess", progress):
                    return self.inference.labels(probability, plan)
        with torch.inference_mode():
            with timer.stage("preprocess", progress):
                plan, image = self._model_grid(series)
                self._release(series)
            with timer.stage("inference", progress), self._network_lock:
                probability = self._probability(image)
            del image
            with timer.stage("postprocess", progress):
                # argmax over {background, spleen} == (p_spleen > 0.5), ties going to background.
                mask = mask_from_model_grid(probability, plan, threshold=0.5)
        return mask

    def _model_grid(self, series: ImageSeries) -> tuple[ResamplePlan, torch.Tensor]:
        """The description's pre-processing: the plan and the (X, Y, Z) float32 image."""
        pre = self.metadata.preprocessing
        plan = plan_resample(series.affine, series.volume.shape, pixdim=pre.spacing_mm, axcodes=pre.orientation)
        volume = torch.from_numpy(np.ascontiguousarray(series.volume)).to(self.device)  # int16 or float32
        grid = to_model_grid(volume, plan)
        image = scale_intensity(grid, window=pre.intensity_window, scaled_range=pre.scaled_range, clip=pre.clip,
                                in_place=not shares_memory(grid, volume))
        return plan, image.contiguous()

    def _probability(self, image: torch.Tensor) -> torch.Tensor:
        inference = self.metadata.inference
        return foreground_probability(self.network, image, roi_size=inference.roi_size, overlap=inference.overlap,
                                      sw_batch_size=self.sw_batch_size, amp=self.amp)

    def _release(self, series: ImageSeries) -> None:
        if self.release_volume:
            series.release_volume()

    def run(self, series: ImageSeries, *, progress: Progress | None = None) -> SegmentationResult:
        """Segment ``series``; raises InvalidSeriesError for input the model cannot read. ``overlay_png`` is
        empty when the pipeline releases the volume (``release_volume``): there are no pixels to preview."""
        check_series(series, modalities=input_modalities(self.metadata), model=f"the model {self.metadata.name}")
        timer = _Timer()
        mask = self.predict_mask(series, timer=timer, progress=progress)
        with timer.stage("seg", progress):
            seg = build_segmentation(series, mask, metadata=self.metadata)
        shown = largest_slice(mask)
        overlay = b""
        if not series.volume_released:
            with timer.stage("overlay", progress):
                index = shown if shown is not None else series.volume.shape[0] // 2
                # Every segment tinted alike in the preview.
                overlay = render_overlay_png(series.volume[index], mask[index] > 0)
        summary = self._summary(series, mask, seg, shown, timer)
        return SegmentationResult(mask=mask, seg_dataset=seg, summary=summary, overlay_png=overlay)

    def _summary(
        self, series: ImageSeries, mask: np.ndarray, seg: pydicom.Dataset, shown: int | None, timer: _Timer
    ) -> dict[str, Any]:
        return {
            **spleen_summary(self.metadata, series, mask, seg),
            "overlay_slice_index": shown,
            "overlay_sop_instance_uid": str(series.datasets[shown].SOPInstanceUID) if shown is not None else None,
            "volume_shape": list(series.volume.shape),
            "voxel_spacing_mm": [round(v, 4) for v in series.spacing],
            "device": str(self.device),
            "sw_batch_size": self.sw_batch_size,
            "timings_s": dict(timer.seconds),
        }
