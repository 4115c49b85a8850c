"""The spleen model as a Triton python-backend model: the same pipeline as the PyTorch endpoint.

The model repository's ``1/model.py`` only imports :class:`TritonPythonModel` from here. Each request
carries one or more DICOM zips (``DICOM_ZIP``, TYPE_STRING, batch dimension first) and gets back, per zip,
the SEG bytes (``SEG``) and the JSON summary (``SUMMARY``). The MONAI bundle (configs/, models/) is the
version folder, where SageMaker's multi-model endpoint unpacks the archive ``package_triton_model`` builds.
Requests go through the core's request flow (``SegmentationService``), as on the other servers.
Every failure is mapped by the core (``core.failures``) and answers that request with a TritonError whose
code Triton's HTTP frontend turns into the nearest status (bad input 400/404, a dependency 503, anything
else 500 with an error ID); other requests of the batch go on.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from model_code.core.failures import Failure, failure_of
from model_code.core.http import ZIP, encode_json
from model_code.core.requests import decode_request
from model_code.core.service import SegmentationService
from model_code.core.settings import ServerSettings
from model_code.segmentation.pipeline import SegmentationPipeline
from model_code.segmentation.threads import size_torch_threads
from model_code.synthetic.warmup import WARMUP_RUNS, settle_after_warm_up, warmup_zip

INPUT_NAME = "DICOM_ZIP"
SEG_OUTPUT = "SEG"
SUMMARY_OUTPUT = "SUMMARY"


def version_dir(args: dict[str, str]) -> Path:
    """Where Triton unpacked this model version (``<repository>/<model>/<version>``)."""
    return Path(args["model_repository"]) / args["model_version"]


def instance_count(args: dict[str, str]) -> int:
    """The python-backend processes Triton starts for this model (its config's instance groups), at least 1."""
    config = json.loads(args.get("model_config") or "{}")
    return max(1, sum(int(group.get("count", 1)) for group in config.get("instance_group", [])))


def triton_error(pb_utils: Any, failure: Failure) -> Any:
    """A TritonError whose code Triton's HTTP frontend answers with the nearest status (a code-less one is 500).

    Triton has no 413/415/422: NOT_FOUND becomes 404, other 4xx INVALID_ARG (400), 502/503 UNAVAILABLE (503),
    the rest INTERNAL (500); the message keeps the endpoint's own status and reason, ASCII only.
    """
    errors = pb_utils.TritonError
    if failure.status == 404:
        code = errors.NOT_FOUND
    elif 400 <= failure.status < 500:
        code = errors.INVALID_ARG
    elif failure.status in (502, 503, 504):
        code = errors.UNAVAILABLE
    else:
        code = errors.INTERNAL
    return errors(f"{failure.status} {failure.reason}: {failure.message}", code)


def _log_info(message: str) -> None:
    """Triton's own log (the stub's Python logging has no handler there); nothing outside the stub."""
    try:
        import triton_python_backend_utils as pb_utils
    except ImportError:  # imported outside Triton (tests of the package)
        return
    pb_utils.Logger.log_info(message)


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        # Device: SERVING_DEVICE, else CUDA when the instance has a GPU (resolved by the pipeline).
        self.settings = ServerSettings.from_env()
        # Each instance is a process of its own: together they stay within the vCPUs (model_code.core.threads).
        size_torch_threads(self.settings, workers=instance_count(args))
        self.model = SegmentationService(
            SegmentationPipeline.for_server(version_dir(args), self.settings), limits=self.settings.limits
        )
        self.model_name = args.get("model_name", "")
        if self.settings.warmup:
            # Triton marks the model READY only once initialize returns: the first request's one-time costs are
            # paid here, before /v2/models/<name>/ready answers 200 (model_code/synthetic/warmup.py).
            seconds = self.model.warm_up(warmup_zip(), runs=WARMUP_RUNS)
            settle_after_warm_up()  # the start-up's objects out of the collector's view, as the TorchServe worker does
            _log_info(f"{self.model_name}: warmed up in {seconds:.2f} s ({WARMUP_RUNS} phantom segmentations)")

    def _one(self, payload: bytes) -> tuple[bytes, bytes]:
        request = decode_request(payload, ZIP, limits=self.settings.limits)
        prediction = self.model.predict(request)
        summary = {**prediction.summary, "source": prediction.source, "model_name": self.model_name}
        return prediction.seg_bytes, encode_json(summary)

    def execute(self, requests: list[Any]) -> list[Any]:
        import triton_python_backend_utils as pb_utils  # only exists inside the Triton python backend stub

        responses = []
        for request in requests:
            zips = pb_utils.get_input_tensor_by_name(request, INPUT_NAME).as_numpy()
            try:
                results = [self._one(bytes(item)) for item in zips.reshape(-1)]
            except Exception as error:  # one mapping for every server: the core's
                failure = triton_error(pb_utils, failure_of(error))
                responses.append(pb_utils.InferenceResponse(output_tensors=[], error=failure))
                continue
            shape = (*zips.shape[:-1], 1) if zips.ndim > 1 else (len(results),)
            segs = np.array([seg for seg, _ in results], dtype=np.object_).reshape(shape)
            summaries = np.array([summary for _, summary in results], dtype=np.object_).reshape(shape)
            responses.append(
                pb_utils.InferenceResponse(
                    output_tensors=[pb_utils.Tensor(SEG_OUTPUT, segs), pb_utils.Tensor(SUMMARY_OUTPUT, summaries)]
                )
            )
        return responses

    def finalize(self) -> None:
        self.model = None  # type: ignore[assignment]
