"""The error types every runtime raises and maps: a model directory or network that breaks the contract, a
series that cannot be used, and bad input a caller can fix (with its HTTP status)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from http import HTTPStatus


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


def error_body(status: int, message: str) -> bytes:
    """The JSON error document every server here answers with, 4xx or not: ``{"error": {...}}``."""
    return json.dumps({"error": {"status": status, "reason": HTTPStatus(status).phrase, "message": message}}).encode()


def bad_request(message: str) -> ClientError:
    return ClientError(HTTPStatus.BAD_REQUEST, message)


def not_found(message: str) -> ClientError:
    return ClientError(HTTPStatus.NOT_FOUND, message)


def unusable_series(message: str) -> ClientError:
    return ClientError(HTTPStatus.UNPROCESSABLE_ENTITY, message)
