"""GetImageFrame without botocore's per-call machinery, signed by botocore: the loader's hot path.

A series is hundreds of GetImageFrame calls, and botocore spends ~0.6 ms of Python (under the GIL) on
each: parameter validation, serialisation, a dozen events, the retry handler, response parsing. The GIL
time is what the decode threads wait on (docs/healthimaging.md). This path builds the one request itself
(POST ``/datastore/{d}/imageSet/{i}/getImageFrame`` with ``{"imageFrameId": ...}``), signs it with the
client's own ``RequestSigner`` (botocore's SigV4, the client's credentials, refreshed the same way, region
and signing name), and sends it on the client's own pooled HTTP session (its TLS verification, proxies,
timeouts and pool).

Only a 200 answer is taken here. Any other answer, or a connection error, hands the call to botocore
(``client.get_image_frame``), so retries (throttling, 5xx), error parsing and ``ClientError`` stay
botocore's; the failed fast attempt counts as one of the client's attempts only in that, with retries off
(``total_max_attempts`` 1), its error is parsed by botocore's parser and raised at once.

It is used only for clients built by :func:`model_code.healthimaging.client.make_client` (which registers
them): a Stubber, or event handlers a caller registers on its own client, sit in botocore's call path,
which this one skips.
"""

from __future__ import annotations

import json
import weakref
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from botocore.awsrequest import AWSRequest
from botocore.exceptions import ClientError
from botocore.parsers import create_parser

_OPERATION = "GetImageFrame"
_FAST: weakref.WeakKeyDictionary[Any, SignedFrames] = weakref.WeakKeyDictionary()


class SignedFrames:
    """The signed GetImageFrame path of one botocore ``medical-imaging`` client."""

    def __init__(self, client: Any) -> None:
        self._client = client
        meta = client.meta
        self._operation = meta.service_model.operation_model(_OPERATION)
        parts = urlsplit(meta.endpoint_url)
        host_prefix = (self._operation.endpoint or {}).get("hostPrefix", "")
        if host_prefix and getattr(meta.config, "inject_host_prefix", True):
            parts = parts._replace(netloc=host_prefix + parts.netloc)
        self._user_agent = client._user_agent_creator.to_string()  # the header botocore sends, exactly
        self._base = urlunsplit(parts._replace(path=parts.path.rstrip("/"), query="", fragment=""))
        retries = getattr(meta.config, "retries", None) or {}
        self._single_attempt = retries.get("total_max_attempts") == 1
        # botocore's private parts, read once: the client's signer and HTTP session. A botocore without them
        # fails here, at registration, and the client keeps botocore's own path.
        self._sign = client._request_signer.sign
        self._send = client._endpoint.http_session.send

    def url(self, datastore_id: str, image_set_id: str) -> str:
        """GetImageFrame's URL: the client's endpoint (FIPS, dual-stack, custom), host prefix, request URI."""
        ids = quote(datastore_id, safe=""), quote(image_set_id, safe="")
        return f"{self._base}/datastore/{ids[0]}/imageSet/{ids[1]}/getImageFrame"

    def get(self, datastore_id: str, image_set_id: str, frame_id: str) -> tuple[bytes, str] | None:
        """``(data, content type)`` of a 200 answer, None where botocore must take the call over."""
        request = AWSRequest(
            method="POST",
            url=self.url(datastore_id, image_set_id),
            data=json.dumps({"imageFrameId": frame_id}).encode(),
            headers={"Content-Type": "application/json"},
        )
        request.headers["User-Agent"] = self._user_agent  # what CloudTrail shows, as on botocore's path
        self._sign(_OPERATION, request)
        try:
            response = self._send(request.prepare())
        except Exception:  # connection errors: botocore's retries decide
            return None
        if response.status_code == 200:
            return response.content, str(response.headers.get("Content-Type") or "")
        if self._single_attempt:
            raise self._client_error(response)
        return None

    def _client_error(self, response: Any) -> ClientError:
        """The ClientError botocore would raise for this answer (its rest-json parser, no retries)."""
        parsed = create_parser("rest-json").parse(
            {"status_code": response.status_code, "headers": response.headers, "body": response.content},
            self._operation.output_shape,
        )
        parsed.setdefault("ResponseMetadata", {})["RetryAttempts"] = 0
        return ClientError(parsed, _OPERATION)


def register(client: Any) -> None:
    """Give ``client`` the signed GetImageFrame path (make_client does); a client it cannot serve keeps botocore's."""
    try:
        _FAST[client] = SignedFrames(client)
    except (AttributeError, TypeError, ValueError):
        _FAST.pop(client, None)


def signed_frames(client: Any) -> SignedFrames | None:
    """The client's signed path, if it has one."""
    try:
        return _FAST.get(client)
    except TypeError:  # not weak-referenceable: not a botocore client make_client built
        return None
