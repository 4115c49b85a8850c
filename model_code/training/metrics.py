"""Metric lines the trainer prints, and the regexes SageMaker uses to scrape them.

One module holds both sides of the format so the CDK stacks (which import ``METRIC_DEFINITIONS``
for the training job's ``MetricDefinitions``) and the trainer can never drift apart. It imports
nothing heavy: the stacks load it at synth time without torch.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

# A float as format_metric_line writes it (fixed 4 decimals), plus nan/inf for a diverged run.
_FLOAT = r"([-+]?(?:[0-9]+\.[0-9]+|nan|inf))"

# SageMaker applies each regex to every log line and takes group 1. The epoch regex requires the
# train_loss that follows it, so the "resumed from epoch=N" line never counts as an epoch.
METRIC_DEFINITIONS: list[dict[str, str]] = [
    {"Name": "epoch", "Regex": r"epoch=([0-9]+) train_loss="},
    {"Name": "train:loss", "Regex": r"train_loss=" + _FLOAT},
    {"Name": "validation:dice", "Regex": r"val_dice=" + _FLOAT},
    {"Name": "validation:auc", "Regex": r"val_auc=" + _FLOAT},
    {"Name": "validation:accuracy", "Regex": r"val_accuracy=" + _FLOAT},
]

_KEY = re.compile(r"^[a-z][a-z0-9_]*$")


def format_metric_line(epoch: int, metrics: Mapping[str, float]) -> str:
    """``epoch=3 train_loss=0.4123 val_dice=0.8711``: keys in the given order, 4 decimals."""
    parts = [f"epoch={int(epoch)}"]
    for key, value in metrics.items():
        if not _KEY.match(key):
            raise ValueError(f"metric name {key!r} must be lower_snake_case so a regex can match it")
        parts.append(f"{key}={float(value):.4f}")
    return " ".join(parts)


def parse_metric_line(line: str) -> dict[str, float]:
    """What SageMaker would record from one log line, using the exported regexes."""
    found: dict[str, float] = {}
    for definition in METRIC_DEFINITIONS:
        match = re.search(definition["Regex"], line)
        if match:
            found[definition["Name"]] = float(match.group(1))
    return found
