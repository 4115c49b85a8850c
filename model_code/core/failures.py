"""THE error mapping of every server here (the SageMaker/TorchServe handler, the Triton model, the edge runner):
any exception out of a request becomes one :class:`Failure`, answered as JSON with HTTP's standard reason phrase.

* bad input (:class:`ClientError`, a series the model cannot use): its 4xx, the message naming the problem;
* a dependency that failed (:class:`DependencyError`: credentials, the network, throttling): 502/503 naming
  the cause;
* anything else: 500 with an error ID; the traceback goes to the log under that ID, never to the caller.

Why the reason phrase is always the standard one: TorchServe's Python worker writes the phrase's length in
characters and its bytes in UTF-8, so a non-ASCII phrase (an exception message quoting a malformed header)
leaves the frontend waiting for bytes that never come, until the model-server timeout (issue 20, defect 1).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from http import HTTPStatus

from model_code.core.errors import (
    ClientError,
    DependencyError,
    InvalidSeriesError,
    bounded_message,
    error_body,
)

logger = logging.getLogger("model_code.core.failures")


@dataclass(frozen=True)
class Failure:
    """One request's failure as it is answered; ``message`` is already bounded and ASCII."""

    status: int
    message: str
    error_id: str | None = None
    retry_after_s: int | None = None

    @property
    def reason(self) -> str:
        """HTTP's standard phrase for the status (always ASCII: it goes into the status line)."""
        return HTTPStatus(self.status).phrase

    def body(self) -> bytes:
        return error_body(self.status, self.message, error_id=self.error_id)

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)} if self.retry_after_s is not None else {}


def failure_of(error: BaseException) -> Failure:
    """The answer to ``error``; an unexpected one is logged here, with its traceback, under a new error ID."""
    if isinstance(error, ClientError):
        return Failure(error.status, bounded_message(error.message))
    if isinstance(error, DependencyError):
        logger.warning("dependency failure (%d): %s", error.status, error.message)
        return Failure(error.status, bounded_message(error.message), retry_after_s=error.retry_after_s)
    if isinstance(error, InvalidSeriesError):
        return Failure(HTTPStatus.UNPROCESSABLE_ENTITY, bounded_message(f"not a usable series: {error}"))
    error_id = uuid.uuid4().hex[:16]
    logger.error("unexpected failure, error ID %s", error_id, exc_info=error)
    message = (f"the server failed on this request (error ID {error_id}): report the ID to the operator, "
               "its log has the details")
    return Failure(HTTPStatus.INTERNAL_SERVER_ERROR, message, error_id=error_id)


def failure_answer(error: BaseException) -> tuple[bytes, str, int]:
    """(body, content type, status) of ``failure_of(error)``, the shape ``core.http.respond`` answers in."""
    failure = failure_of(error)
    return failure.body(), "application/json", failure.status
