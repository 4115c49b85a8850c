"""The backfill's progress as CloudWatch metrics: one namespace, the model version as the dimension.

Pending (what a run's listing left to submit) and Finished (already indexed) come from the listing; Submitted and
Failed from every batch. The monitoring dashboard graphs them (stacks/monitoring); ``monai-platform backfill
status`` reads the same counts from S3.
"""

from __future__ import annotations

from typing import Any

NAMESPACE = "MonaiPlatform/Backfill"
METRICS = ("Pending", "Finished", "Submitted", "Failed")


def dimensions(model_name: str, model_version: str) -> list[dict[str, str]]:
    return [{"Name": "ModelName", "Value": model_name}, {"Name": "ModelVersion", "Value": model_version}]


def publish(cloudwatch: Any, run: Any, counts: dict[str, int]) -> None:
    """``counts`` by metric name (a subset of METRICS) as one PutMetricData call."""
    unknown = set(counts) - set(METRICS)
    if unknown:
        raise ValueError(f"unknown backfill metrics {sorted(unknown)}: use {list(METRICS)}")
    cloudwatch.put_metric_data(
        Namespace=NAMESPACE,
        MetricData=[
            {"MetricName": name, "Dimensions": dimensions(run.model_name, run.model_version), "Value": float(value),
             "Unit": "Count"}
            for name, value in counts.items()
        ],
    )
