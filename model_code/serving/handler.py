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
from pathlib import Path
from typing import Any

from model_code.core.failures import Failure, failure_of
from model_code.core.http import respond
from model_code.core.requests import SeriesRequest, decode_request
from model_code.core.service import Prediction
from model_code.segmentation.threads import size_torch_threads
from model_code.serving.service import ServingModel
from model_code.serving.settings import ServingSettings
from model_code.synthetic.warmup import WARMUP_RUNS, warmup_zip

logger = logging.getLogger(__name__)


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
        seconds = model.warm_up(warmup_zip(), runs=WARMUP_RUNS)
        logger.info("warmed up in %.2f s (%d phantom segmentations)", seconds, WARMUP_RUNS)
    return model


def input_fn(input_data: Any, content_type: str | None, context: Any = None) -> SeriesRequest | Failure:
    try:
        return decode_request(input_data, content_type, limits=serving_settings().limits)
    except Exception as error:  # every failure is answered by the core's mapping, never by the toolkit's
        return failure_of(error)


def predict_fn(data: SeriesRequest | Failure, model: ServingModel, context: Any = None) -> Prediction | Failure:
    if isinstance(data, Failure):
        return data
    try:
        return model.predict(data)
    except Exception as error:
        return failure_of(error)


def output_fn(prediction: Prediction | Failure, accept: str | None, context: Any = None) -> tuple[bytes, str]:
    try:
        body, content_type, status = respond(prediction, accept)
    except Exception as error:  # encoding the SEG failed: still one JSON answer, still the standard phrase
        failure = failure_of(error)
        body, content_type, status = failure.body(), "application/json", failure.status
    if status != 200:
        logger.info("answering %d: %s", status, body[:300])
        if context is not None:
            # The reason phrase is the HTTP status line's: keep it the standard one, the detail is in the body.
            context.set_response_status(code=status, phrase=Failure(status, "").reason)
            if isinstance(prediction, Failure):
                for key, value in prediction.headers().items():  # Retry-After for a throttled dependency
                    context.set_response_header(0, key, value)
    return body, content_type
