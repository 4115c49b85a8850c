"""The spleen model as a Triton python-backend model: the same pipeline as the PyTorch endpoint.

The model repository's ``1/model.py`` only imports :class:`TritonPythonModel` from here. Each request
carries one or more DICOM zips (``DICOM_ZIP``, TYPE_STRING, batch dimension first) and gets back, per zip,
the SEG bytes (``SEG``) and the JSON summary (``SUMMARY``). ``model.ts`` and ``metadata.json`` sit in the
version folder, where SageMaker's multi-model endpoint unpacks the archive ``package_triton_model`` builds.
Requests go through the core's request flow (``SegmentationService``), as on the other servers.
Bad input answers that request with an error (HTTP 400 through Triton); other requests of the batch go on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from model_code.core.errors import ClientError
from model_code.core.http import ZIP, encode_json
from model_code.core.requests import decode_request
from model_code.core.service import SegmentationService
from model_code.core.settings import ServerSettings
from model_code.segmentation.pipeline import SegmentationPipeline

INPUT_NAME = "DICOM_ZIP"
SEG_OUTPUT = "SEG"
SUMMARY_OUTPUT = "SUMMARY"


def version_dir(args: dict[str, str]) -> Path:
    """Where Triton unpacked this model version (``<repository>/<model>/<version>``)."""
    return Path(args["model_repository"]) / args["model_version"]


def triton_error(pb_utils: Any, error: ClientError) -> Any:
    """A TritonError whose code Triton's HTTP frontend answers as 4xx (a code-less error is a 500).

    Triton has no 415/422: NOT_FOUND becomes 404, everything else INVALID_ARG (400); the body keeps the
    endpoint's own status and message.
    """
    code = pb_utils.TritonError.NOT_FOUND if error.status == 404 else pb_utils.TritonError.INVALID_ARG
    return pb_utils.TritonError(f"{error.status} {error.reason}: {error.message}", code)


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        # Device: SERVING_DEVICE, else CUDA when the instance has a GPU (resolved by the pipeline).
        self.settings = ServerSettings.from_env()
        self.model = SegmentationService(SegmentationPipeline.for_server(version_dir(args), self.settings))
        self.model_name = args.get("model_name", "")

    def _one(self, payload: bytes) -> tuple[bytes, bytes]:
        request = decode_request(payload, ZIP, max_expanded_bytes=self.settings.max_expanded_bytes)
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
            except ClientError as error:
                responses.append(pb_utils.InferenceResponse(output_tensors=[], error=triton_error(pb_utils, error)))
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
