"""The loaded model and what one request does with it: fetch the series, segment, build the SEG."""

from __future__ import annotations

import dataclasses
import io
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from model_code.imaging.errors import InvalidSeriesError
from model_code.imaging.series import ImageSeries
from model_code.serving.clients import LazyClients, ServingClients
from model_code.serving.decoding import HealthImagingRequest, SeriesRequest
from model_code.serving.errors import unusable_series
from model_code.serving.settings import ServingSettings
from model_code.serving.sources import load_request_series


class Segmenter(Protocol):
    """Series in, a result with ``seg_dataset`` and ``summary`` out: the torch pipeline or the edge runner's
    numpy model. Raises InvalidSeriesError for a series the model cannot use."""

    def run(self, series: ImageSeries) -> Any: ...


@dataclass(frozen=True)
class Prediction:
    """One request's result; ``summary`` is JSON-ready. The caller takes the SEG from the answer (the platform's
    import back into HealthImaging is the inference stack's import-seg function, not the container's job)."""

    seg_bytes: bytes
    seg_sop_instance_uid: str
    summary: dict[str, Any]
    source: dict[str, Any]


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

    def __init__(self, pipeline: Segmenter, *, settings: ServingSettings, clients: ServingClients) -> None:
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
        )
