"""model_fn's warm-up (issue 19, ready means ready) through the handler's own entry points, in-process on the
real pipeline; its log line per request, which benchmarks/serving.py reads from the worker log.

The TorchServe side (a worker is READY only after its warm-up) is tests/integration/test_torchserve.py.
"""

from __future__ import annotations

import gc
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from model_code.serving.handler import input_fn, model_fn, output_fn, predict_fn, serving_settings, warm_up
from model_code.serving.service import ServingModel
from model_code.synthetic.warmup import WARMUP_RUNS
from testkit.series import SeriesZip

HANDLER_LOGGER = "model_code.serving.handler"
STAGES = re.compile(r"request stages \(s\), status (\d+): (.*)$")


def stage_lines(caplog: pytest.LogCaptureFixture) -> list[tuple[int, dict[str, float]]]:
    lines = []
    for record in caplog.records:
        match = STAGES.match(record.getMessage())
        if match:
            fields = dict(field.split("=") for field in match.group(2).split())
            lines.append((int(match.group(1)), {name: float(value) for name, value in fields.items()}))
    return lines


@pytest.fixture
def fresh_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """SERVING_* read afresh (the handler caches them per worker), the collector unfrozen before and after."""
    serving_settings.cache_clear()
    gc.unfreeze()
    yield monkeypatch
    monkeypatch.undo()
    serving_settings.cache_clear()
    gc.unfreeze()


def test_model_fn_warms_up_through_input_fn_predict_fn_and_output_fn(
    threshold_model_dir: Path, fresh_settings: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    fresh_settings.delenv("SERVING_WARMUP", raising=False)  # the default: on
    with caplog.at_level(logging.INFO, logger=HANDLER_LOGGER):
        model_fn(str(threshold_model_dir))
    # The handler's own lines only: another test may have left a library's logger (highdicom's) at INFO.
    messages = [record.getMessage() for record in caplog.records if record.name == HANDLER_LOGGER]
    warmed = [index for index, message in enumerate(messages) if message.startswith("warmed up in")]
    assert len(warmed) == 1, messages
    # Every warm-up run went through the three entry points (only output_fn, after input_fn and predict_fn of
    # the same request, logs this line) and was answered 200 with the pipeline's stages.
    lines = stage_lines(caplog)
    assert [status for status, _ in lines] == [200] * WARMUP_RUNS
    for _, stages in lines:
        assert {"input_fn", "predict_fn", "fetch_and_seg_bytes", "seg", "output_fn"} <= set(stages)
    assert all(STAGES.match(message) for message in messages[warmed[0] - WARMUP_RUNS : warmed[0]])
    # and the collector was settled: what start-up made is frozen out of later full collections.
    assert gc.get_freeze_count() > 0


def test_serving_warmup_0_skips_the_warm_up(
    threshold_model_dir: Path, fresh_settings: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    fresh_settings.setenv("SERVING_WARMUP", "0")
    with caplog.at_level(logging.INFO, logger=HANDLER_LOGGER):
        model_fn(str(threshold_model_dir))
    assert stage_lines(caplog) == []
    assert not any(record.getMessage().startswith("warmed up in") for record in caplog.records)
    assert gc.get_freeze_count() == 0


def test_a_warm_up_that_is_not_answered_with_a_seg_fails(
    threshold_model_dir: Path, fresh_settings: pytest.MonkeyPatch
) -> None:
    """A worker whose warm-up request fails must not report ready: model_fn raises (TorchServe retries)."""
    fresh_settings.setenv("SERVING_WARMUP", "0")
    model = model_fn(str(threshold_model_dir))
    with pytest.raises(RuntimeError, match=r"not answered with a SEG.*not a readable zip"):
        warm_up(model, payload=b"not a zip archive")
    assert gc.get_freeze_count() == 0  # settled only after a warm-up that worked


@pytest.fixture(scope="module")
def model(threshold_model_dir: Path) -> ServingModel:
    serving_settings.cache_clear()
    return model_fn(str(threshold_model_dir))


def test_each_request_logs_its_stages(
    model: ServingModel, phantom_zip: SeriesZip, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger=HANDLER_LOGGER):
        body, content_type = output_fn(predict_fn(input_fn(phantom_zip.payload, "application/zip"), model),
                                       "application/dicom")
        output_fn(predict_fn(input_fn(b"not a zip archive", "application/zip"), model), "application/dicom")
    assert content_type == "application/dicom"
    assert body[128:132] == b"DICM"
    (ok, answered), (bad, refused) = stage_lines(caplog)
    assert (ok, bad) == (200, 400)
    # the pipeline's own stages are the summary's timings; the fetch is predict_fn less them (a server renders
    # no overlay preview: it never sends one)
    names = ["input_fn", "predict_fn", "fetch_and_seg_bytes", "preprocess", "inference", "postprocess", "seg",
             "output_fn"]
    assert list(answered) == names
    pipeline = sum(answered[name] for name in names[3:-1])
    assert answered["fetch_and_seg_bytes"] == pytest.approx(answered["predict_fn"] - pipeline, abs=2e-4)
    assert list(refused) == ["input_fn", "predict_fn", "output_fn"]  # refused before the pipeline ran


def test_output_fn_alone_logs_no_stages(
    model: ServingModel, phantom_zip: SeriesZip, caplog: pytest.LogCaptureFixture
) -> None:
    """A prediction answered twice (or by a caller of its own) is one request's line, not two."""
    prediction = predict_fn(input_fn(phantom_zip.payload, "application/zip"), model)
    with caplog.at_level(logging.INFO, logger=HANDLER_LOGGER):
        output_fn(prediction, "application/dicom")
        output_fn(prediction, "application/json")
    assert [status for status, _ in stage_lines(caplog)] == [200]
