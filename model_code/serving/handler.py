"""The SageMaker inference contract (model_fn, input_fn, predict_fn, output_fn) over ServingModel.

How the toolkit maps errors (sagemaker_inference.transformer.Transformer.transform, read in site-packages):
an exception out of any handler function becomes ``handle_error``: a ``BaseInferenceToolkitError`` keeps its
status, anything else is a 500, and the body is ``message + "\\n" + traceback`` -- not JSON, a trace leaked to
the caller, and the exception's message as the HTTP reason phrase (which, non-ASCII, hangs the TorchServe
frontend: ``model_code.core.failures``). So no exception leaves these functions: every failure is mapped by
the core (``failure_of``) and travels as a value to ``output_fn``, which renders the JSON body and sets the
status with its standard phrase on the TorchServe context (``context.set_response_status``, which TorchServe
sends as the HTTP status). The toolkit passes ``context`` to any handler function declaring one parameter
more than the contract's.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from pathlib import Path
from typing import Any

from model_code.core.failures import Failure, failure_of
from model_code.core.http import DICOM, ZIP, respond
from model_code.core.requests import SeriesRequest, decode_request
from model_code.core.service import Prediction
from model_code.segmentation.threads import size_torch_threads
from model_code.serving.service import ServingModel
from model_code.serving.settings import ServingSettings
from model_code.synthetic.warmup import WARMUP_RUNS, settle_after_warm_up, warmup_zip

logger = logging.getLogger(__name__)
# Per request (the toolkit calls input_fn, predict_fn, output_fn in turn on one thread): when each began, so that
# output_fn logs one line with every stage's time -- the worker log says where a request's time went
# (benchmarks/serving.py reads it to compare the first request with the warm ones).
_clock = threading.local()


@functools.cache
def serving_settings() -> ServingSettings:
    """The worker's settings, read once; input_fn needs them too, and the contract gives it no model."""
    return ServingSettings.from_env()


def model_fn(model_dir: str, context: Any = None) -> ServingModel:
    settings = serving_settings()
    # Before the model loads: torch sizes its pools on first use. The worker count is the toolkit's variable,
    # the frontend's too, so workers x threads stays within the vCPUs (model_code.core.threads).
    size_torch_threads(settings)
    model = ServingModel.load(Path(model_dir), settings=settings)
    if settings.warmup:
        # The worker is READY (and /ping may say so) only once model_fn returns: the first request's one-time
        # costs are paid here (model_code/synthetic/warmup.py).
        seconds = warm_up(model)
        logger.info("warmed up in %.2f s (%d phantom segmentations)", seconds, WARMUP_RUNS)
    return model


def warm_up(model: ServingModel, runs: int = WARMUP_RUNS, payload: bytes | None = None) -> float:
    """The phantom (or the zip ``payload``) through the entry points a real request takes -- input_fn with a
    zip body, predict_fn, output_fn with the DICOM Accept -- ``runs`` times, then the collector settled;
    returns the seconds.

    ``ServingModel.warm_up`` alone skips input_fn's zip checks and output_fn's negotiation, which the first
    real request then paid for. Raises if the phantom is not answered with a SEG: a worker whose model cannot
    segment it must not report ready."""
    payload = warmup_zip() if payload is None else payload
    started = time.perf_counter()
    for _ in range(runs):
        body, content_type = output_fn(predict_fn(input_fn(payload, ZIP), model), DICOM)
        if content_type != DICOM:  # a failure is answered in JSON
            raise RuntimeError(f"the warm-up phantom was not answered with a SEG: {body[:300]!r}")
    settle_after_warm_up()
    return time.perf_counter() - started


def input_fn(input_data: Any, content_type: str | None, context: Any = None) -> SeriesRequest | Failure:
    _clock.started = time.perf_counter()
    try:
        return decode_request(input_data, content_type, limits=serving_settings().limits)
    except Exception as error:  # every failure is answered by the core's mapping, never by the toolkit's
        return failure_of(error)
    finally:
        _clock.decoded = time.perf_counter()


def predict_fn(data: SeriesRequest | Failure, model: ServingModel, context: Any = None) -> Prediction | Failure:
    try:
        if isinstance(data, Failure):
            return data
        return model.predict(data)
    except Exception as error:
        return failure_of(error)
    finally:
        _clock.predicted = time.perf_counter()


def output_fn(prediction: Prediction | Failure, accept: str | None, context: Any = None) -> tuple[bytes, str]:
    encoding = time.perf_counter()
    try:
        body, content_type, status = respond(prediction, accept)
    except Exception as error:  # encoding the SEG failed: still one JSON answer, still the standard phrase
        failure = failure_of(error)
        body, content_type, status = failure.body(), "application/json", failure.status
    _log_stages(prediction, status, encoding, time.perf_counter())
    if status != 200:
        logger.info("answering %d: %s", status, body[:300])
        if context is not None:
            # The reason phrase is the HTTP status line's: keep it the standard one, the detail is in the body.
            context.set_response_status(code=status, phrase=Failure(status, "").reason)
            if isinstance(prediction, Failure):
                for key, value in prediction.headers().items():  # Retry-After for a throttled dependency
                    context.set_response_header(0, key, value)
    return body, content_type


def _log_stages(prediction: Prediction | Failure, status: int, encoding: float, encoded: float) -> None:
    """One line per request: input_fn, predict_fn (its fetch and the pipeline's stages), output_fn, in seconds.
    The fetch is predict_fn less the pipeline's stages (decoding the series, building the SEG's bytes)."""
    started = getattr(_clock, "started", None)
    decoded = getattr(_clock, "decoded", None)
    predicted = getattr(_clock, "predicted", None)
    if started is None or decoded is None or predicted is None or not started <= decoded <= predicted <= encoding:
        return  # output_fn called without this request's input_fn and predict_fn (a caller of its own)
    stages = {"input_fn": decoded - started, "predict_fn": predicted - decoded}
    if isinstance(prediction, Prediction):
        pipeline = {name: float(value) for name, value in prediction.summary.get("timings_s", {}).items()}
        stages["fetch_and_seg_bytes"] = stages["predict_fn"] - sum(pipeline.values())
        stages.update(pipeline)
    stages["output_fn"] = encoded - encoding
    logger.info("request stages (s), status %d: %s", status,
                " ".join(f"{name}={seconds:.4f}" for name, seconds in stages.items()))
    _clock.started = _clock.decoded = _clock.predicted = None
