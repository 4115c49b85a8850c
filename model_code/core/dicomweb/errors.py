"""Errors a user of the DICOMweb client can act on: each names the URL (or instance) at fault and what to do.

Throttling and transient server errors (429, 5xx) and dropped connections never surface here until the client's
retries (see client.py) are spent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class DicomWebError(Exception):
    """A DICOMweb request failed; ``status`` is the HTTP status when the server answered (None otherwise)."""

    def __init__(self, message: str, *, url: str = "", status: int | None = None) -> None:
        self.url = url
        self.status = status
        super().__init__(message)


class DicomWebNotFound(DicomWebError, LookupError):  # noqa: N818 - reads like the connector's ImageSetNotFound
    """The server holds no such study, series or instance (HTTP 404, or an empty QIDO-RS answer)."""


class DicomWebAccessDenied(DicomWebError, PermissionError):  # noqa: N818 - the condition, like PermissionError
    """HTTP 401/403: missing or wrong credentials, or the caller may not use this resource."""


@dataclass(frozen=True)
class FailedInstance:
    """One entry of a STOW-RS response's Failed SOP Sequence (PS3.18 Table 10.5.3-1)."""

    sop_instance_uid: str
    failure_reason: int | None  # (0008,1197) e.g. 0xA700 out of resources, 0xA900 mismatch, 0xC000 cannot process


class DicomWebStoreRejected(DicomWebError):  # noqa: N818 - a rejection is the event the caller handles
    """STOW-RS did not store an instance: the server listed it as failed (HTTP 409 or 4xx), or said it was stored
    and then does not hold it. Never a silent loss: the caller sees which instance and why."""

    def __init__(self, message: str, *, url: str, status: int | None, failed: Sequence[FailedInstance] = ()) -> None:
        self.failed = tuple(failed)
        super().__init__(message, url=url, status=status)
