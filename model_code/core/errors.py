"""Errors a caller can fix, each carrying the HTTP status the endpoint answers with."""

from __future__ import annotations

import json
from http import HTTPStatus


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
