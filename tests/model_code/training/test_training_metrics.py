"""Metric lines and the SageMaker MetricDefinitions regexes that read them."""

from __future__ import annotations

import subprocess
import sys

import pytest

from model_code.training.metrics import METRIC_DEFINITIONS, format_metric_line, parse_metric_line


@pytest.mark.parametrize(
    ("epoch", "metrics", "line", "parsed"),
    [
        # the segmentation line of the issue, verbatim
        (3, {"train_loss": 0.41234, "val_dice": 0.87114}, "epoch=3 train_loss=0.4123 val_dice=0.8711",
         {"epoch": 3.0, "train:loss": 0.4123, "validation:dice": 0.8711}),
        # classification: AUC and accuracy
        (12, {"train_loss": 1.5, "val_auc": 1.0, "val_accuracy": 0.25},
         "epoch=12 train_loss=1.5000 val_auc=1.0000 val_accuracy=0.2500",
         {"epoch": 12.0, "train:loss": 1.5, "validation:auc": 1.0, "validation:accuracy": 0.25}),
        # a diverged run still yields a parseable line
        (1, {"train_loss": float("nan")}, "epoch=1 train_loss=nan", {"epoch": 1.0}),
    ],
)
def test_metric_line_round_trips_through_the_exported_regexes(epoch, metrics, line, parsed):
    assert format_metric_line(epoch, metrics) == line
    found = parse_metric_line(line)
    nan_free = {k: v for k, v in found.items() if v == v}
    assert nan_free == parsed


@pytest.mark.parametrize(
    "line",
    [
        "resumed from epoch=4 (/opt/ml/checkpoints)",  # must not count as an epoch
        "model written to /opt/ml/model (train_loss=0.1000, val_dice=0.9000)",  # summary, not an epoch
    ],
)
def test_epoch_regex_ignores_lines_that_are_not_epoch_results(line):
    assert "epoch" not in parse_metric_line(line)


def test_bad_metric_name_is_refused():
    with pytest.raises(ValueError, match="lower_snake_case"):
        format_metric_line(1, {"Val Dice": 0.5})


def test_definitions_are_what_sagemaker_accepts():
    # CreateTrainingJob: Name 1..255 chars, Regex 1..500 chars, at most 40 definitions.
    assert 0 < len(METRIC_DEFINITIONS) <= 40
    assert all(set(d) == {"Name", "Regex"} and 0 < len(d["Regex"]) <= 500 for d in METRIC_DEFINITIONS)


def test_metrics_module_imports_without_torch():
    # The CDK stacks import it at synth time; pulling in torch there would cost seconds.
    code = "import sys, model_code.training.metrics; assert 'torch' not in sys.modules, 'torch was imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
