"""TorchServe handler service: the SageMaker PyTorch toolkit's own, with one guard in front of it.

The toolkit's Transformer decodes an ``application/json`` body to str *before* input_fn runs; bytes that are
not UTF-8 fail there and become its 500 (with a traceback for a body). That is malformed JSON, a 400: this
service answers it the way the handler answers every bad input, and hands everything else to the toolkit.

Selected with ``TS_DEFAULT_SERVICE_HANDLER=monai_handler_service:handle`` (TorchServe reads TS_* variables
because the toolkit sets enable_envvars_config=true). TorchServe instantiates the one class defined here.
"""

from __future__ import annotations

from typing import Any

from sagemaker_inference import content_types, utils
from sagemaker_pytorch_serving_container.handler_service import HandlerService as ToolkitHandlerService

from model_code.core.errors import bad_request


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
        return list(super().handle(data, context))
