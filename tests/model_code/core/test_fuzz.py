"""Property-based fuzz (hypothesis, fixed seed, bounded count) of the zip and JSON request parsers and of the
DICOM loader, in process: every body is a request or a mapped 4xx, never another exception (issue 20).

The same strategies run against the real servers in tests/integration/test_torchserve_pressure.py.
"""

from __future__ import annotations

import collections
import functools
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, seed, settings

from model_code.core.dicom.seg import build_segmentation
from model_code.core.errors import ClientError, InvalidSeriesError, unusable_series
from model_code.core.failures import failure_of
from model_code.core.limits import SeriesGuard
from model_code.core.model_dir import ModelMetadata
from model_code.core.requests import decode_request
from model_code.core.service import load_zip_series
from model_code.core.settings import InputLimits
from testkit.fuzz import dicom_zip_bodies, json_bodies, zip_bodies

FUZZ = settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
STATUSES: collections.Counter[str] = collections.Counter()
MESSAGES: collections.Counter[str] = collections.Counter()


@pytest.fixture(scope="module", autouse=True)
def report_statuses() -> Iterator[None]:
    yield
    print(f"\nfuzz statuses (in process): {dict(sorted(STATUSES.items()))}")
    print(f"most frequent messages: {MESSAGES.most_common(8)}")


def _outcome(what: str, call) -> None:
    """Run ``call``; a ClientError is a mapped 4xx, anything else escaping fails the property."""
    refused: ClientError | None = None
    try:
        call()
    except ClientError as error:
        refused = error
    if refused is None:
        STATUSES[f"{what} ok"] += 1
        return
    STATUSES[f"{what} {refused.status}"] += 1
    MESSAGES[refused.message[:60]] += 1
    assert 400 <= refused.status < 500
    assert len(failure_of(refused).body()) < 2000


@seed(20)
@FUZZ
@given(body=json_bodies())
def test_the_json_parser_answers_every_body(body: bytes) -> None:
    _outcome("json", lambda: decode_request(body, "application/json"))


@seed(20)
@FUZZ
@given(body=zip_bodies())
def test_the_zip_parser_answers_every_body(body: bytes) -> None:
    _outcome("zip", lambda: decode_request(body, "application/zip"))


@functools.cache
def _metadata() -> ModelMetadata:
    from testkit.models import save_threshold_model

    folder = Path(tempfile.mkdtemp(prefix="fuzz-model-"))
    from model_code.segmentation.bundle import ModelBundle

    return ModelBundle.load(save_threshold_model(folder / "model")).description


@seed(20)
@settings(FUZZ, max_examples=100)
@given(body=dicom_zip_bodies())
def test_the_dicom_loader_answers_every_series(body: bytes) -> None:
    guard = SeriesGuard(InputLimits(), (1.5, 1.5, 2.0))

    def load() -> None:
        request = decode_request(body, "application/zip")
        with tempfile.TemporaryDirectory() as workdir:
            series = load_zip_series(request, Path(workdir), guard)
            guard.check_series(series)
        # The SEG writer reads the source headers too (highdicom validates what it references).
        try:
            build_segmentation(series, np.zeros(series.volume.shape, dtype=np.uint8), metadata=_metadata())
        except InvalidSeriesError as error:
            raise unusable_series(str(error)) from error

    _outcome("dicom", load)
