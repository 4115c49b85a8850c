"""The loaded model and what one request does with it: fetch the series, segment, build the SEG."""

from __future__ import annotations

import dataclasses
import io
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from model_code.imaging.errors import InvalidSeriesError
from model_code.serving.clients import LazyClients, ServingClients
from model_code.serving.decoding import HealthImagingRequest, SeriesRequest
from model_code.serving.errors import unusable_series
from model_code.serving.outputs import Published, publish_seg
from model_code.serving.settings import ServingSettings
from model_code.serving.sources import load_request_series


@dataclass(frozen=True)
class Prediction:
    """One request's result; ``summary`` is JSON-ready. Publishing waits for the caller's Accept."""

    seg_bytes: bytes
    seg_sop_instance_uid: str
    summary: dict[str, Any]
    source: dict[str, Any]
    request_datastore_id: str | None
    # Bound by the model that made it: output_fn, which alone knows the Accept type, gets no model argument.
    publisher: Callable[[Prediction], Published] | None = field(default=None, repr=False, compare=False)

    def publish(self) -> Published:
        return self.publisher(self) if self.publisher is not None else Published()


def dataset_bytes(dataset: Any) -> bytes:
    """A pydicom/highdicom dataset as Part-10 bytes (preamble, file meta)."""
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _json_ready(summary: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(summary) and not isinstance(summary, type):
        return dataclasses.asdict(summary)
    if hasattr(summary, "to_json"):
        return dict(summary.to_json())
    return dict(summary)


def _describe(request: SeriesRequest) -> dict[str, Any]:
    if isinstance(request, HealthImagingRequest):
        return {"datastoreId": request.datastore_id, "imageSetId": request.image_set_id}
    if hasattr(request, "location"):
        return {"dicomS3Uri": request.location.uri}
    return {"zipBytes": len(request.payload)}


class ServingModel:
    """Loaded once per worker (``model_fn``); ``predict`` runs every request in its own temporary directory."""

    def __init__(self, pipeline: Any, *, settings: ServingSettings, clients: ServingClients) -> None:
        self.pipeline = pipeline
        self.settings = settings
        self.clients = clients

    @classmethod
    def load(
        cls,
        model_dir: Path,
        *,
        settings: ServingSettings | None = None,
        clients: ServingClients | None = None,
    ) -> ServingModel:
        from model_code.segmentation.pipeline import SegmentationPipeline

        settings = settings or ServingSettings.from_env()
        pipeline = SegmentationPipeline.from_model_dir(
            Path(model_dir), device=settings.device, sw_batch_size=settings.sw_batch_size
        )
        return cls(pipeline, settings=settings, clients=clients or LazyClients(settings))

    def predict(self, request: SeriesRequest) -> Prediction:
        with tempfile.TemporaryDirectory(prefix="invocation-") as workdir:
            series = load_request_series(request, workdir=Path(workdir), clients=self.clients)
            try:
                result = self.pipeline.run(series)
            except InvalidSeriesError as error:  # geometry the model cannot use (too few slices, ...)
                raise unusable_series(f"not a usable series: {error}") from error
        seg = result.seg_dataset
        source = {**_describe(request), "seriesInstanceUid": series.series_instance_uid}
        return Prediction(
            seg_bytes=dataset_bytes(seg),
            seg_sop_instance_uid=str(seg.SOPInstanceUID),
            summary=_json_ready(result.summary),
            source=source,
            request_datastore_id=request.datastore_id if isinstance(request, HealthImagingRequest) else None,
            publisher=self.publish,
        )

    def publish(self, prediction: Prediction) -> Published:
        return publish_seg(
            prediction.seg_bytes,
            sop_instance_uid=prediction.seg_sop_instance_uid,
            request_datastore_id=prediction.request_datastore_id,
            settings=self.settings,
            clients=self.clients,
        )
