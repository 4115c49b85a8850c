"""HTTP encoding shared by every server: media types, Accept negotiation, and (body, content type, status).

The SageMaker handler, the Triton model and the edge runner answer through these, so bodies, content
types and statuses are the same on every path.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from model_code.core.errors import ClientError
from model_code.core.failures import Failure

if TYPE_CHECKING:
    from model_code.core.service import Prediction

DICOM = "application/dicom"
JSON = "application/json"
ZIP = "application/zip"
# What browsers and Windows send for .zip files; the same payload.
ZIP_ALIASES = frozenset({ZIP, "application/x-zip-compressed", "application/x-zip"})
_OFFERED = (JSON, DICOM)


def media_type(header: str | None) -> str:
    """``"Application/JSON; charset=utf-8"`` -> ``"application/json"``."""
    return (header or "").split(";", 1)[0].strip().lower()


def negotiate(accept: str | None) -> str:
    """The media type to answer with: the first offered type the Accept header lists (q-values ignored)."""
    if not accept or not accept.strip():
        return JSON
    for item in accept.split(","):
        kind = item.split(";", 1)[0].strip().lower()
        if kind in _OFFERED:
            return kind
        if kind in {"*/*", "application/*"}:
            return JSON
    raise ClientError(
        HTTPStatus.NOT_ACCEPTABLE,
        f"cannot answer with {accept!r}: ask for {DICOM} (the SEG) or {JSON} (the summary)",
    )


def encode_error(error: ClientError | Failure) -> tuple[bytes, str, int]:
    if isinstance(error, Failure):
        return error.body(), JSON, error.status
    return error.to_json(), JSON, error.status


def encode_json(document: Mapping[str, Any]) -> bytes:
    return json.dumps(document, sort_keys=True, default=str).encode()


def respond(result: Prediction | ClientError | Failure, accept: str | None) -> tuple[bytes, str, int]:
    """(body, content type, status) for a prediction or a failure (``core.failures``)."""
    if isinstance(result, ClientError | Failure):
        return encode_error(result)
    try:
        kind = negotiate(accept)
    except ClientError as error:
        return encode_error(error)
    if kind == DICOM:
        return result.seg_bytes, DICOM, 200
    # The JSON answer describes the SEG; a caller who wants its bytes asks for application/dicom.
    document = {
        "summary": result.summary,
        "source": result.source,
        "seg": {"sopInstanceUid": result.seg_sop_instance_uid, "bytes": len(result.seg_bytes)},
    }
    return encode_json(document), JSON, 200
