"""TorchServe handler service: the SageMaker PyTorch toolkit's own, with one guard in front of it.

The toolkit's Transformer decodes an ``application/json`` body to str *before* input_fn runs; bytes that are
not UTF-8 fail there and become its 500 (with a traceback for a body). That is malformed JSON, a 400: this
service answers it the way the handler answers every bad input, and hands everything else to the toolkit.

A backstop behind the handler's own mapping (``model_code.serving.handler``): whatever still escapes the toolkit
(its own code, a failure before input_fn) is answered by the core's mapping (``model_code.core.failures``:
JSON, an error ID, the traceback only in the log), and every status leaves with HTTP's standard, ASCII reason
phrase -- the worker writes a phrase's length in characters and its bytes in UTF-8, so one non-ASCII phrase
leaves the frontend waiting for the model-server timeout (issue 20).

Selected with ``TS_DEFAULT_SERVICE_HANDLER=monai_handler_service:handle`` (TorchServe reads TS_* variables
because the toolkit sets enable_envvars_config=true). TorchServe instantiates the one class defined here.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from sagemaker_inference import content_types, utils
from sagemaker_pytorch_serving_container.handler_service import HandlerService as ToolkitHandlerService

from model_code.core.errors import bad_request, error_body
from model_code.core.failures import failure_of


class HandlerService(ToolkitHandlerService):  # type: ignore[misc]
    def handle(self, data: list[dict[str, Any]], context: Any) -> list[Any]:
        # The toolkit serves one request per call (no batching configured) and reads only its headers.
        if len(data) == 1:
            body = data[0].get("body")
            content_type = utils.retrieve_content_type_header(context.request_processor[0].get_request_properties())
            if content_type in content_types.UTF8_TYPES and isinstance(body, bytes | bytearray):
                try:
                    bytes(body).decode("utf-8")
                except UnicodeDecodeError as error:
                    client_error = bad_request(f"the body is not valid UTF-8 JSON ({error}): send UTF-8 JSON")
                    context.set_response_status(code=client_error.status, phrase=client_error.reason)
                    context.set_response_content_type(0, content_types.JSON)
                    return [client_error.to_json()]
        try:
            answers = list(super().handle(data, context))
        except Exception as error:  # nothing unmapped reaches TorchServe
            failure = failure_of(error)
            context.set_all_response_status(code=failure.status, phrase=failure.reason)
            for index in range(len(data)):
                context.set_response_content_type(index, content_types.JSON)
            return [failure.body() for _ in data]
        for index in range(len(answers)):
            code, _ = context.get_response_status(index)
            if code in (None, 200):
                continue
            # The toolkit's handle_error puts an exception's message here; the status line gets the standard one.
            context.set_response_status(code=code, phrase=_standard_phrase(code), idx=index)
            if isinstance(answers[index], str):  # the toolkit's "message\ntraceback": logged, never sent
                failure = failure_of(RuntimeError(answers[index]))
                context.set_response_content_type(index, content_types.JSON)
                answers[index] = error_body(code if 400 <= code < 600 else 500, failure.message,
                                            error_id=failure.error_id)
        return answers


def _standard_phrase(code: int) -> str:
    try:
        return HTTPStatus(code).phrase
    except ValueError:
        return "Error"
