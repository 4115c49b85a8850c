"""The SageMaker runtime's model: the core request flow, fetching series from a zip, S3 or HealthImaging."""

from __future__ import annotations

import functools
from pathlib import Path

from model_code.core.service import SegmentationService, Segmenter
from model_code.segmentation.pipeline import SegmentationPipeline
from model_code.serving.clients import LazyClients, ServingClients
from model_code.serving.settings import ServingSettings
from model_code.serving.sources import load_request_series


class ServingModel(SegmentationService):
    """Loaded once per worker (``model_fn``); ``predict`` runs every request in its own temporary directory."""

    def __init__(self, pipeline: Segmenter, *, settings: ServingSettings, clients: ServingClients) -> None:
        super().__init__(pipeline, fetch=functools.partial(load_request_series, clients=clients))
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
        settings = settings or ServingSettings.from_env()
        pipeline = SegmentationPipeline.for_server(Path(model_dir), settings)
        return cls(pipeline, settings=settings, clients=clients or LazyClients(settings))
