"""The backfill's listing step: a share of SearchImageSets pages per call, what is still to do, and the manifest.

The state machine (stacks/backfill/workflow.py) calls this function in a loop with the run's input and the
listing so far (``listing``: the token, the part number, the counts). Each call lists up to PAGES_PER_CALL pages
under the run's filter, drops what ``pending`` says is finished, in flight or failed, and writes what remains as
``part-<n>.json`` under the run's listing prefix. A throttled call returns the same token with ``throttled``
true (the state machine waits and calls again); the last call joins the parts into ``manifest.json``, the JSON
array the Distributed Map's ItemReader reads, and publishes the run's Pending count.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from typing import Any, ClassVar

import boto3

# Beside this module in the function's asset (stacks/components/function_shared, and backfill_items from here).
from backfill_items import (
    BackfillInputError,
    Run,
    Selection,
    list_image_sets,
    pending,
)
from backfill_metrics import publish
from function_settings import EnvironmentSettings
from healthimaging_quotas import SEARCH_IMAGE_SETS, Pacer

ENV_DATASTORE_ID = "DATASTORE_ID"
ENV_INFERENCE_BUCKET = "INFERENCE_BUCKET"
ENV_ENDPOINT_NAME = "ENDPOINT_NAME"
# 200 pages (10,000 image sets) a call: at the backfill's share of the quota, 16 s of pacing, far inside the
# function's timeout; the state machine loops for more.
PAGES_PER_CALL = 200
_RUN_ID = re.compile(r"^[A-Za-z0-9_-]{1,80}$")


@dataclass(frozen=True)
class Settings(EnvironmentSettings):
    DEPLOYED_BY: ClassVar[str] = "inference"

    datastore_id: str
    inference_bucket: str
    endpoint_name: str


def run_of(event: dict[str, Any], settings: Settings) -> Run:
    return Run(
        datastore_id=str(event.get("datastoreId") or settings.datastore_id),
        model_name=str(event.get("modelName", "")),
        model_version=str(event.get("modelVersion", "")),
        endpoint_name=settings.endpoint_name,
        bucket=settings.inference_bucket,
    )


def listing_prefix(run: Run, run_id: str) -> str:
    if not _RUN_ID.match(run_id):
        raise BackfillInputError(f"runId {run_id!r} must be 1-80 letters, digits, '-' or '_' (the execution name)")
    return f"{run.claims_prefix.rsplit('claims/', 1)[0]}listings/{run_id}/"


def list_step(event: dict[str, Any], *, s3: Any, medical_imaging: Any, cloudwatch: Any, settings: Settings,
              pacer: Pacer) -> dict[str, Any]:
    run = run_of(event, settings)
    if run.datastore_id != settings.datastore_id:
        raise BackfillInputError(f"datastoreId {run.datastore_id} is not the platform's data store "
                                 f"{settings.datastore_id}: the functions may read only that one")
    selection = Selection.from_input(event.get("filter"))
    state = dict(event.get("listing") or {})
    prefix = listing_prefix(run, str(event.get("runId", "")))
    part = int(state.get("part", 0))
    listing = list_image_sets(medical_imaging, run.datastore_id, selection, pacer=pacer,
                              next_token=state.get("nextToken"), max_pages=PAGES_PER_CALL)
    plan = pending(s3, run, listing.items)
    if listing.items:
        body = json.dumps([item.to_json() for item in plan.pending]).encode()
        s3.put_object(Bucket=run.bucket, Key=f"{prefix}part-{part:05d}.json", Body=body,
                      ContentType="application/json")
        part += 1
    counts = {name: int(state.get(name, 0)) + value for name, value in (
        ("listed", len(listing.items)), ("pending", len(plan.pending)), ("finished", plan.finished),
        ("inFlight", plan.in_flight), ("failed", plan.failed), ("scanned", listing.scanned))}
    out: dict[str, Any] = {"nextToken": listing.next_token, "part": part, **counts,
                           "throttled": listing.interrupted_by is not None, "manifestKey": None}
    if listing.complete:
        out["manifestKey"] = write_manifest(s3, run.bucket, prefix, part)
        publish(cloudwatch, run, {"Pending": counts["pending"], "Finished": counts["finished"]})
    return out


def write_manifest(s3: Any, bucket: str, prefix: str, parts: int) -> str:
    """The parts joined into one JSON array, in listing order: what the Distributed Map reads."""
    items: list[dict[str, Any]] = []
    for part in range(parts):
        items += json.loads(s3.get_object(Bucket=bucket, Key=f"{prefix}part-{part:05d}.json")["Body"].read())
    key = f"{prefix}manifest.json"
    s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(items).encode(), ContentType="application/json")
    return key


@cache
def _clients() -> tuple[Any, Any, Any]:
    return boto3.client("s3"), boto3.client("medical-imaging"), boto3.client("cloudwatch")  # first use, not import


@cache
def _settings() -> Settings:
    return Settings.from_environment()


def handle(event: dict[str, Any], *, s3: Any, medical_imaging: Any, cloudwatch: Any, settings: Settings,
           pacer: Pacer | None = None) -> dict[str, Any]:
    """One listing call of a backfill run (the state machine's List state)."""
    return list_step(event, s3=s3, medical_imaging=medical_imaging, cloudwatch=cloudwatch, settings=settings,
                     pacer=pacer or Pacer.for_quota(SEARCH_IMAGE_SETS))


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    s3, medical_imaging, cloudwatch = _clients()
    return handle(event, s3=s3, medical_imaging=medical_imaging, cloudwatch=cloudwatch, settings=_settings())



