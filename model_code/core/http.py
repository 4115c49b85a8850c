"""Encode predictions and client errors into (body, content type, HTTP status)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from model_code.serving.errors import ClientError

DICOM = "application/dicom"
JSON = "application/json"
_OFFERED = (JSON, DICOM)


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


def encode_error(error: ClientError) -> tuple[bytes, str, int]:
    return error.to_json(), JSON, error.status


def encode_json(document: Mapping[str, Any]) -> bytes:
    return json.dumps(document, sort_keys=True, default=str).encode()
