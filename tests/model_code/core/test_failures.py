"""The one error mapping every server answers through (model_code.core.failures): status, reason, bounded body."""

from __future__ import annotations

import json
import logging

import pytest

from model_code.core.errors import (
    MAX_MESSAGE_CHARS,
    ClientError,
    DependencyError,
    InvalidSeriesError,
    bounded_message,
    error_body,
)
from model_code.core.failures import failure_of


@pytest.mark.parametrize(
    ("error", "status", "fragment"),
    [
        # bad input keeps its own 4xx and message
        (ClientError(415, "content type 'text/plain' is not supported"), 415, "is not supported"),
        # a series the model cannot use, wherever it was raised
        (InvalidSeriesError("PixelSpacing must be positive", ["a.dcm"]), 422, "not a usable series: PixelSpacing"),
        # a dependency: its 502/503 and the cause
        (DependencyError(503, "the endpoint has no usable AWS credentials"), 503, "no usable AWS credentials"),
        (DependencyError(502, "an AWS service did not answer"), 502, "did not answer"),
        # anything else: a 500 with an error ID, never the exception's own text
        (KeyError("secret internals"), 500, "error ID"),
    ],
)
def test_every_failure_maps_to_one_status(error: BaseException, status: int, fragment: str) -> None:
    failure = failure_of(error)
    assert failure.status == status
    document = json.loads(failure.body())["error"]
    assert document["status"] == status
    assert fragment in document["message"]
    assert "secret internals" not in document["message"]


def test_an_unexpected_failure_is_logged_with_its_traceback_under_the_id_it_answers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    try:
        float("-10\xff4")  # what pydicom met in issue 20's malformed RescaleIntercept
    except ValueError as error:
        with caplog.at_level(logging.ERROR, logger="model_code.core.failures"):
            failure = failure_of(error)
    assert failure.status == 500
    assert failure.reason == "Internal Server Error"
    body = failure.body()
    body.decode("ascii")  # the body is ASCII: no character of the input travels unescaped
    assert json.loads(body)["error"]["errorId"] == failure.error_id
    [record] = caplog.records
    assert failure.error_id is not None
    assert failure.error_id in record.getMessage()
    assert record.exc_info is not None
    assert record.exc_info[0] is ValueError


def test_a_dependency_failure_says_when_to_retry() -> None:
    failure = failure_of(DependencyError(503, "throttled", retry_after_s=5))
    assert failure.headers() == {"Retry-After": "5"}
    with pytest.raises(ValueError, match="502, 503 or 504"):
        DependencyError(500, "not a dependency")


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        # server directories go, the member name stays
        ("1 file(s) are not DICOM [/tmp/invocation-x1y2/series.zip:slice.dcm]", "1 file(s) are not DICOM [series.zip:slice.dcm]"),
        ("No module named x (/work/.venv/lib/python3.11/site-packages/x.py)", "No module named x (x.py)"),
        # URIs are not paths
        ("no objects under s3://bucket/prefix/a/", "no objects under s3://bucket/prefix/a/"),
        ("see http://127.0.0.1:8080/ping/x", "see http://127.0.0.1:8080/ping/x"),
        # non-ASCII is escaped, so the status line and body stay ASCII
        ("could not convert '-10\xff4'", "could not convert '-10\\xff4'"),
    ],
)
def test_messages_are_bounded(message: str, expected: str) -> None:
    assert bounded_message(message) == expected


def test_a_long_message_is_cut() -> None:
    body = error_body(400, "unexpected keys " + ", ".join(f"key{n}" for n in range(200_000)))
    message = json.loads(body)["error"]["message"]
    assert len(message) == MAX_MESSAGE_CHARS
    assert message.endswith("...")
