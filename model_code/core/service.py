"""What one request does on every model server: fetch its series, segment it, answer with the SEG.

:class:`SegmentationService` is that flow over any :class:`Segmenter` (the torch pipeline, the edge runner's
numpy model) and any series fetcher. Its default fetcher reads zip requests only, which is all the Triton model
and the offline edge runner take; the SageMaker runtime passes one that also reads S3 and HealthImaging
(``model_code.serving.sources``).
"""

from __future__ import annotations

import dataclasses
import io
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any, Protocol

from model_code.core.dicom.files import load_series
from model_code.core.dicom.series import ImageSeries, StackGeometry
from model_code.core.errors import ClientError, InvalidSeriesError, unusable_series
from model_code.core.http import ZIP
from model_code.core.limits import SeriesGuard, model_spacing
from model_code.core.memory import map_large_allocations, release_memory
from model_code.core.requests import (
    DicomWebRequest,
    HealthImagingRequest,
    S3SeriesRequest,
    SeriesRequest,
    ZipSeriesRequest,
)
from model_code.core.settings import InputLimits


class Segmenter(Protocol):
    """Series in, a result with ``seg_dataset`` and ``summary`` out: the torch pipeline or the edge runner's
    numpy model. Raises InvalidSeriesError for a series the model cannot use."""

    def run(self, series: ImageSeries) -> Any: ...


# (request, its own temporary directory, the input limits) -> the series; raises ClientError for one it cannot
# find or use. A fetcher that reads DICOM files hands ``header_check(guard)`` to the loader, so the limits hold
# before any pixel is decoded; the service checks every fetched series once more before the model runs.
SeriesFetcher = Callable[[SeriesRequest, Path, SeriesGuard], ImageSeries]


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


def header_check(guard: SeriesGuard) -> Callable[[StackGeometry, Any], None]:
    """The loader's ``check``: the guard's limits on a series' geometry and first header."""

    def check(geometry: StackGeometry, first: Any) -> None:
        guard.check_header(
            slices=len(geometry.order),
            rows=geometry.rows,
            cols=geometry.cols,
            affine=geometry.affine,
            spacing=geometry.spacing,
            first=lambda keyword: getattr(first, keyword, None),
        )

    return check


def load_zip_series(request: SeriesRequest, workdir: Path, guard: SeriesGuard | None = None) -> ImageSeries:
    """The series of a zip request (written into ``workdir``, the request's own); other requests are a 415."""
    if not isinstance(request, ZipSeriesRequest):
        raise ClientError(
            HTTPStatus.UNSUPPORTED_MEDIA_TYPE, f"this server reads only {ZIP} (a zip of one series' DICOM files)"
        )
    archive = workdir / "series.zip"
    archive.write_bytes(request.payload)
    try:
        return load_series(archive, check=header_check(guard or SeriesGuard()))
    except InvalidSeriesError as error:
        raise unusable_series(f"not a usable series: {error}") from error


def _json_ready(summary: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(summary) and not isinstance(summary, type):
        return dataclasses.asdict(summary)
    if hasattr(summary, "to_json"):
        return dict(summary.to_json())
    return dict(summary)


def describe(request: SeriesRequest) -> dict[str, Any]:
    """Where a request's series came from, as the answer's ``source`` names it."""
    if isinstance(request, HealthImagingRequest):
        return {"datastoreId": request.datastore_id, "imageSetId": request.image_set_id}
    if isinstance(request, S3SeriesRequest):
        return {"dicomS3Uri": request.location.uri}
    if isinstance(request, DicomWebRequest):
        return {"dicomwebUrl": request.url, "studyInstanceUid": request.study_instance_uid}
    return {"zipBytes": len(request.payload)}


class SegmentationService:
    """Loaded once per worker; ``predict`` runs every request in its own temporary directory. Thread-safe when
    the segmenter is (both segmenters here serialise only their network call)."""

    def __init__(
        self, pipeline: Segmenter, *, fetch: SeriesFetcher = load_zip_series, limits: InputLimits | None = None
    ) -> None:
        self.pipeline = pipeline
        self.fetch = fetch
        map_large_allocations()  # every server's requests allocate volumes: keep freed ones out of the RSS
        # The model grid's size is bounded at the model's own spacing (its metadata's pre-processing).
        self.guard = SeriesGuard(limits or InputLimits(), model_spacing(pipeline))

    def warm_up(self, payload: bytes, *, runs: int = 1) -> float:
        """Segment the zip ``payload`` ``runs`` times through the whole flow (decode, model, SEG and its bytes),
        so that the first real request costs what the next does; returns the seconds it took. Raises what
        ``predict`` raises: a server whose model cannot segment a phantom must not report ready."""
        started = time.perf_counter()
        for _ in range(runs):
            self.predict(ZipSeriesRequest(payload))
        return time.perf_counter() - started

    def predict(self, request: SeriesRequest) -> Prediction:
        try:
            return self._predict(request)
        finally:
            # The request's volumes are garbage now: hand their pages back before the next request.
            release_memory()

    def _predict(self, request: SeriesRequest) -> Prediction:
        with tempfile.TemporaryDirectory(prefix="invocation-") as workdir:
            series = self.fetch(request, Path(workdir), self.guard)
            self.guard.check_series(series)
            try:
                result = self.pipeline.run(series)
            except InvalidSeriesError as error:  # geometry the model cannot use (too few slices, ...)
                raise unusable_series(f"not a usable series: {error}") from error
        seg, summary = result.seg_dataset, _json_ready(result.summary)
        source = {**describe(request), "seriesInstanceUid": series.series_instance_uid}
        del series, result  # the volume and the mask: only the SEG is needed from here
        return Prediction(
            seg_bytes=dataset_bytes(seg),
            seg_sop_instance_uid=str(seg.SOPInstanceUID),
            summary=summary,
            source=source,
        )
