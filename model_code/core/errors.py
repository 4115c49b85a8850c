"""The error types every runtime raises and maps: a model directory or network that breaks the contract, a
series that cannot be used, bad input a caller can fix (with its HTTP status), and a dependency (AWS
credentials, the network, a throttled service) that failed. ``model_code.core.failures`` maps each to its answer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

# An error body is read by people and logged by proxies: a few hundred characters say what is wrong.
MAX_MESSAGE_CHARS = 600
# The directory part of an absolute path ("/tmp/invocation-x1/series.zip" -> "series.zip"): a server's paths
# (temporary folders, the venv) are nobody's business outside it. Not after ":" or "/" (s3://, http://).
_SERVER_DIRECTORY = re.compile(r"(?<![\w.:/])/(?:[^\s/'\"\[\],:;()]+/)+")


class ModelDirectoryError(ValueError):
    """A model directory is missing a file or carries metadata that breaks the contract."""


class NetworkContractError(ModelDirectoryError):
    """The network answers with a shape the contract ([B,1,X,Y,Z] -> [B,2,X,Y,Z] logits) does not allow."""


class InvalidSeriesError(ValueError):
    """The instances do not form one usable image series.

    ``files`` names the offending inputs (paths, SOP Instance UIDs or frame IDs) so a
    user can find them; the message always says what to do.
    """

    def __init__(self, message: str, files: Sequence[str] = ()) -> None:
        self.files = tuple(files)
        if self.files:
            shown = ", ".join(self.files[:5])
            more = f" (and {len(self.files) - 5} more)" if len(self.files) > 5 else ""
            message = f"{message} [{shown}{more}]"
        super().__init__(message)


class ClientError(Exception):
    """Bad input: answered as a 4xx with a JSON body ``{"error": {"status", "reason", "message"}}``.

    Raised by decoders and fetchers; the handler turns it into a response and never lets it become a 500.
    """

    def __init__(self, status: int, message: str) -> None:
        if not 400 <= status < 500:
            raise ValueError(f"a ClientError needs a 4xx status, got {status}")
        self.status = status
        self.message = message
        super().__init__(f"{status} {self.reason}: {message}")

    @property
    def reason(self) -> str:
        return HTTPStatus(self.status).phrase

    def to_json(self) -> bytes:
        return error_body(self.status, self.message)


class DependencyError(Exception):
    """A service the request needs failed, not the request: answered 502 (it answered badly or not at all) or
    503 (it refused: throttling, missing credentials), with the cause named and ``retry_after_s`` when known."""

    def __init__(self, status: int, message: str, *, retry_after_s: int | None = None) -> None:
        if status not in (HTTPStatus.BAD_GATEWAY, HTTPStatus.SERVICE_UNAVAILABLE, HTTPStatus.GATEWAY_TIMEOUT):
            raise ValueError(f"a DependencyError is a 502, 503 or 504, got {status}")
        self.status = int(status)
        self.message = message
        self.retry_after_s = retry_after_s
        super().__init__(f"{status} {HTTPStatus(status).phrase}: {message}")


def excerpt(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters: what an error message may quote of a caller's input."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def bounded_message(message: str) -> str:
    """An error message fit for a response: server directories removed, ASCII only (escapes for the rest), at
    most MAX_MESSAGE_CHARS characters."""
    text = _SERVER_DIRECTORY.sub("", message).encode("ascii", "backslashreplace").decode("ascii")
    return text if len(text) <= MAX_MESSAGE_CHARS else text[: MAX_MESSAGE_CHARS - 3] + "..."


def error_body(status: int, message: str, *, error_id: str | None = None) -> bytes:
    """The JSON error document every server here answers with, 4xx or not: ``{"error": {...}}``; the message
    bounded (``bounded_message``), the reason HTTP's standard phrase, ``errorId`` on an unexpected failure."""
    error: dict[str, Any] = {"status": status, "reason": HTTPStatus(status).phrase, "message": bounded_message(message)}
    if error_id is not None:
        error["errorId"] = error_id
    return json.dumps({"error": error}).encode("ascii")


def bad_request(message: str) -> ClientError:
    return ClientError(HTTPStatus.BAD_REQUEST, message)


def not_found(message: str) -> ClientError:
    return ClientError(HTTPStatus.NOT_FOUND, message)


def unusable_series(message: str) -> ClientError:
    return ClientError(HTTPStatus.UNPROCESSABLE_ENTITY, message)
