"""The backfill's batch step: submit a Distributed Map batch as the endpoint's backlog allows.

Each child workflow of the Distributed Map (stacks/backfill/workflow.py) calls this function with its batch
(``Items``, from ItemBatcher) and the run (``BatchInput``). It reads the backlog, takes its share of the room to the
configured target (``backfill_items.room``, split between the map's concurrent children), submits that many and
returns the rest as ``Items``: the child waits (the backlog-wait loop) and calls again until none is left. Failed
items land in the failure path (``backfill_items.record_failure``) and are counted, never retried here.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any, ClassVar

import boto3

# Beside this module in the function's asset (stacks/components/function_shared, and the backfill's modules).
from backfill_items import ImageSetItem, Run, read_backlog, room, submit_batch, utc_now
from backfill_metrics import publish
from function_settings import EnvironmentSettings

ENV_DATASTORE_ID = "DATASTORE_ID"
ENV_INFERENCE_BUCKET = "INFERENCE_BUCKET"
ENV_ENDPOINT_NAME = "ENDPOINT_NAME"
ENV_BACKLOG_TARGET = "BACKLOG_TARGET"
ENV_WORKERS = "WORKERS"


@dataclass(frozen=True)
class Settings(EnvironmentSettings):
    DEPLOYED_BY: ClassVar[str] = "inference"

    datastore_id: str
    inference_bucket: str
    endpoint_name: str
    backlog_target: int
    workers: int

    @classmethod
    def parse(cls, values: dict[str, str]) -> dict[str, Any]:
        parsed: dict[str, Any] = dict(values)
        for name in ("backlog_target", "workers"):
            parsed[name] = int(values[name])
            if parsed[name] < 1:
                raise RuntimeError(f"{name.upper()} must be >= 1, got {parsed[name]}: set it from the configuration")
        return parsed


def submit_step(event: dict[str, Any], *, s3: Any, sagemaker_runtime: Any, cloudwatch: Any,
                settings: Settings) -> dict[str, Any]:
    run_input = dict((event.get("BatchInput") or {}).get("run") or {})
    run = Run(
        datastore_id=settings.datastore_id,
        model_name=str(run_input.get("modelName", "")),
        model_version=str(run_input.get("modelVersion", "")),
        endpoint_name=settings.endpoint_name,
        bucket=settings.inference_bucket,
    )
    items = [ImageSetItem.from_json(item) for item in event.get("Items", [])]
    now = utc_now()
    share = room(read_backlog(cloudwatch, settings.endpoint_name, now=now), settings.backlog_target, settings.workers)
    outcome = submit_batch(items, s3=s3, sagemaker_runtime=sagemaker_runtime, run=run, room=share, now=now)
    if outcome.submitted or outcome.failed:
        publish(cloudwatch, run, {"Submitted": len(outcome.submitted), "Failed": len(outcome.failed)})
    return {
        "Items": [item.to_json() for item in outcome.deferred],
        "BatchInput": event.get("BatchInput") or {},
        "submitted": len(outcome.submitted),
        "skipped": len(outcome.skipped),
        "failed": len(outcome.failed),
        "room": share,
    }


@cache
def _clients() -> tuple[Any, Any, Any]:
    return boto3.client("s3"), boto3.client("sagemaker-runtime"), boto3.client("cloudwatch")  # first use only


@cache
def _settings() -> Settings:
    return Settings.from_environment()


def handle(event: dict[str, Any], *, s3: Any, sagemaker_runtime: Any, cloudwatch: Any,
           settings: Settings) -> dict[str, Any]:
    """One batch call (the state machine's SubmitBatch state inside the Distributed Map)."""
    return submit_step(event, s3=s3, sagemaker_runtime=sagemaker_runtime, cloudwatch=cloudwatch, settings=settings)


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    s3, sagemaker_runtime, cloudwatch = _clients()
    return handle(event, s3=s3, sagemaker_runtime=sagemaker_runtime, cloudwatch=cloudwatch, settings=_settings())
