"""``monai-platform backfill start|status|retry-failed``: segment an archive with the backfill state machine.

* ``start``: the input of the inference stack's backfill state machine (stacks/backfill/workflow.py) from the
  model and filter options, started under a run name. ``--dry-run`` starts nothing: it lists the data store with
  the backfill's own item logic (the same filter, pacing and skip rules), and prints how many image sets would be
  segmented and the estimated duration and cost: the endpoint's instance type priced from stacks/pricing.py, and the
  per-study time measured by the results index (the median ``inference_seconds`` of this model's records), or
  ``--seconds-per-study`` where there are none yet.
* ``status``: done / failed / remaining of a run's manifest from S3 (results index, failure path), a progress bar,
  and an ETA from the rate the results index measured (records per second over their write times).
* ``retry-failed``: the failure path's items submitted again, alone (all, or those named with ``--image-set``).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import statistics
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from platform_cli import outputs
from platform_cli.errors import CommandFailedError, UsageError
from platform_cli.runtime import Runtime
from stacks.backfill.runtime import backfill_items as items
from stacks.backfill.runtime.backfill_list import listing_prefix
from stacks.components.function_shared.healthimaging_quotas import BACKFILL_SHARE, SEARCH_IMAGE_SETS, Pacer
from stacks.components.function_shared.results_layout import model_prefix
from stacks.pricing import PRICE_CAVEAT, STEP_FUNCTIONS_STANDARD_PER_TRANSITION, sagemaker_hosting

_RUN_NAME = re.compile(r"^[A-Za-z0-9_-]{1,80}$")
_DATES = re.compile(r"^(\d{8})-(\d{8})$")
# State transitions a batch costs: SubmitBatch, Deferred, BatchDone and the map's own, plus waits when deferred.
TRANSITIONS_PER_BATCH = 6
RECORDS_FOR_TIMING = 50  # records whose inference_seconds give the measured per-study time


def add_parser(subparsers: Any, parents: list[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("backfill", parents=parents, help="segment an archive (backfill state machine)",
                                   description="Run a model version over the image sets already in the data store.")
    commands = parser.add_subparsers(dest="backfill_command", required=True, metavar="SUBCOMMAND")
    model = argparse.ArgumentParser(add_help=False)
    model.add_argument("--model-name", default="spleen_ct_segmentation", help="the model's name (its SEGs' "
                       "ManufacturerModelName; default: spleen_ct_segmentation)")
    model.add_argument("--model-version", required=True, help="the version the endpoint serves, e.g. 0.5.9")
    start = commands.add_parser("start", parents=[*parents, model], help="start a backfill (or --dry-run it)")
    start.add_argument("--modality", help="only image sets of this modality, e.g. CT")
    start.add_argument("--study-dates", metavar="YYYYMMDD-YYYYMMDD", help="only studies in this date range")
    start.add_argument("--attribute", metavar="NAME=VALUE", help="one searchable DICOM attribute, e.g. "
                       "DICOMAccessionNumber=A123 (" + ", ".join(items.SEARCHABLE_ATTRIBUTES) + ")")
    start.add_argument("--name", help="run name, 1-80 of A-Z a-z 0-9 _ - (default: generated)")
    start.add_argument("--dry-run", action="store_true", help="list and estimate only; start nothing")
    start.add_argument("--seconds-per-study", type=float, help="per-study time for the estimate when the results "
                       "index has no measurement of this model yet")
    start.set_defaults(run=run_start)
    status = commands.add_parser("status", parents=[*parents, model], help="progress of a backfill run")
    status.add_argument("--name", required=True, help="the run name (start printed it)")
    status.set_defaults(run=run_status)
    retry = commands.add_parser("retry-failed", parents=[*parents, model], help="submit failed items again")
    retry.add_argument("--image-set", action="append", default=None, metavar="ID",
                       help="retry only this image set (repeat for more; default: every failed item)")
    retry.set_defaults(run=run_retry)


def selection_of(args: argparse.Namespace) -> items.Selection:
    document: dict[str, Any] = {}
    if args.modality:
        document["modality"] = args.modality
    if args.study_dates:
        match = _DATES.match(args.study_dates)
        if not match:
            raise UsageError(f"--study-dates {args.study_dates!r}: write YYYYMMDD-YYYYMMDD, e.g. 20200101-20201231")
        document["studyDateFrom"], document["studyDateTo"] = match.groups()
    if args.attribute:
        name, sep, value = args.attribute.partition("=")
        if not sep:
            raise UsageError(f"--attribute {args.attribute!r}: write NAME=VALUE, e.g. DICOMAccessionNumber=A123")
        document["attribute"] = {"name": name, "value": value}
    try:
        return items.Selection.from_input(document)
    except items.BackfillInputError as error:
        raise UsageError(str(error)) from error


def run_of(args: argparse.Namespace, runtime: Runtime) -> items.Run:
    try:
        return items.Run(
            datastore_id=runtime.output(outputs.DATASTORE_ID),
            model_name=args.model_name,
            model_version=args.model_version,
            endpoint_name=runtime.output(outputs.ENDPOINT_NAME),
            bucket=runtime.output(outputs.INFERENCE_BUCKET),
        )
    except items.BackfillInputError as error:
        raise UsageError(str(error)) from error


@dataclass(frozen=True)
class Estimate:
    image_sets: int
    seconds_per_study: float
    measured: bool  # from the results index, or given
    instance_type: str
    instances: int
    hours: float
    endpoint_usd: float
    workflow_usd: float

    def lines(self) -> list[str]:
        source = "measured: median of the results index" if self.measured else "given with --seconds-per-study"
        return [
            f"image sets to segment: {self.image_sets}",
            f"per-study time:        {self.seconds_per_study:.1f} s ({source})",
            f"endpoint:              up to {self.instances} x {self.instance_type}",
            f"estimated duration:    {self.hours:.1f} h",
            f"estimated cost:        ${self.endpoint_usd + self.workflow_usd:,.2f} "
            f"(endpoint ${self.endpoint_usd:,.2f}, Step Functions ${self.workflow_usd:,.2f})",
            f"prices: {PRICE_CAVEAT}",
        ]


def estimate(image_sets: int, seconds_per_study: float, measured: bool, instance_type: str, instances: int,
             batch_size: int = 10) -> Estimate:
    """Instance time is the same however many instances share it; the duration divides it among the instances."""
    instance_hours = image_sets * seconds_per_study / 3600
    price = sagemaker_hosting(instance_type)
    batches = math.ceil(image_sets / batch_size)
    transitions = batches * TRANSITIONS_PER_BATCH
    return Estimate(image_sets, seconds_per_study, measured, instance_type, instances, instance_hours / instances,
                    instance_hours * price.hourly, transitions * STEP_FUNCTIONS_STANDARD_PER_TRANSITION)


def measured_seconds(runtime: Runtime, run: items.Run) -> float | None:
    """The median inference time of this model's latest records in the results index (any version)."""
    s3 = runtime.client("s3")
    prefix = model_prefix(run.model_name, run.model_version).rsplit("model_version=", 1)[0]
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=run.bucket, Prefix=prefix):
        keys += [entry for entry in page.get("Contents", []) if entry["Key"].endswith(".json")]
    latest = sorted(keys, key=lambda entry: entry["LastModified"])[-RECORDS_FOR_TIMING:]
    seconds = [float(json.loads(s3.get_object(Bucket=run.bucket, Key=e["Key"])["Body"].read())["inference_seconds"])
               for e in latest]
    return statistics.median(seconds) if seconds else None


def endpoint_capacity(runtime: Runtime, endpoint_name: str) -> tuple[str, int]:
    """The endpoint's instance type and the most instances its scaling allows (1 without a scaling target)."""
    sagemaker = runtime.client("sagemaker")
    config_name = sagemaker.describe_endpoint(EndpointName=endpoint_name)["EndpointConfigName"]
    (variant, *_) = sagemaker.describe_endpoint_config(EndpointConfigName=config_name)["ProductionVariants"]
    targets = runtime.client("application-autoscaling").describe_scalable_targets(
        ServiceNamespace="sagemaker", ResourceIds=[f"endpoint/{endpoint_name}/variant/{variant['VariantName']}"],
    )["ScalableTargets"]
    most = max([int(t["MaxCapacity"]) for t in targets] or [int(variant.get("InitialInstanceCount", 1))])
    return str(variant["InstanceType"]), max(1, most)


def run_start(args: argparse.Namespace, runtime: Runtime) -> int:
    selection = selection_of(args)
    if args.name is not None and not _RUN_NAME.match(args.name):
        raise UsageError(f"--name {args.name!r} must be 1-80 of A-Z a-z 0-9 _ -")
    run = run_of(args, runtime)
    if not args.dry_run:
        document = {"modelName": run.model_name, "modelVersion": run.model_version, "filter": selection.to_input()}
        response = runtime.client("stepfunctions").start_execution(
            stateMachineArn=runtime.output(outputs.BACKFILL_STATE_MACHINE), input=json.dumps(document),
            **({"name": args.name} if args.name else {}),
        )  # fmt: skip
        runtime.note(f"started the backfill of {run.model_name} {run.model_version}; follow it with "
                     f"monai-platform backfill status --model-version {run.model_version} "
                     f"--name {response['executionArn'].rsplit(':', 1)[-1]}")
        runtime.emit(response["executionArn"])
        return 0
    pacer = Pacer.for_quota(SEARCH_IMAGE_SETS, clock=runtime.clock, sleep=runtime.sleep)
    listing = items.Listing(next_token=None)
    bar = runtime.progress(desc="listing", unit=" image sets")
    while True:
        part = items.list_image_sets(runtime.client("medical-imaging"), run.datastore_id, selection, pacer=pacer,
                                     next_token=listing.next_token, max_pages=20)  # fmt: skip
        listing.items += part.items
        listing.pages += part.pages
        listing.scanned += part.scanned
        listing.next_token = part.next_token
        bar.update(part.scanned)
        if part.interrupted_by:
            runtime.sleep(5.0)  # throttled past botocore's retries: wait, then the same page again
        elif part.next_token is None:
            break
    bar.close()
    plan = items.pending(runtime.client("s3"), run, listing.items)
    seconds = measured_seconds(runtime, run)
    measured = seconds is not None
    if seconds is None:
        if args.seconds_per_study is None:
            raise UsageError("the results index has no result of this model yet to measure the per-study time: "
                             "pass --seconds-per-study (e.g. the ModelLatency of a first run)")
        seconds = args.seconds_per_study
    instance_type, instances = endpoint_capacity(runtime, run.endpoint_name)
    listing_s = listing.pages / (SEARCH_IMAGE_SETS.rate_per_s * BACKFILL_SHARE)
    runtime.emit(f"dry run of the backfill of {run.model_name} {run.model_version} (nothing started)")
    runtime.emit(f"image sets listed:     {len(listing.items)} of {listing.scanned} read "
                 f"({listing.pages} SearchImageSets pages, {listing_s:.0f} s at the backfill's share of the quota)")
    runtime.emit(f"already done:          {plan.finished} with a result of this version, {plan.in_flight} in flight, "
                 f"{plan.failed} failed (retry-failed)")
    for line in estimate(len(plan.pending), seconds, measured, instance_type, instances).lines():
        runtime.emit(line)
    return 0


def _ids(s3: Any, bucket: str, prefix: str) -> dict[str, datetime]:
    found: dict[str, datetime] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for entry in page.get("Contents", []):
            image_set = entry["Key"].rsplit("/", 1)[-1].removesuffix(".json")
            if len(image_set) == 32:
                found[image_set] = entry["LastModified"]
    return found


def run_status(args: argparse.Namespace, runtime: Runtime) -> int:
    run = run_of(args, runtime)
    s3 = runtime.client("s3")
    try:
        manifest_key = f"{listing_prefix(run, args.name)}manifest.json"
    except items.BackfillInputError as error:
        raise UsageError(str(error)) from error
    try:
        manifest = json.loads(s3.get_object(Bucket=run.bucket, Key=manifest_key)["Body"].read())
    except s3.exceptions.NoSuchKey as error:
        raise CommandFailedError(f"run {args.name!r} of {run.model_name} {run.model_version} has no manifest yet "
                                 f"(s3://{run.bucket}/{manifest_key}): its listing is still running, or the name "
                                 "is wrong") from error
    wanted = {item["imageSetId"] for item in manifest}
    finished = _ids(s3, run.bucket, model_prefix(run.model_name, run.model_version))
    failed = set(_ids(s3, run.bucket, run.failures_prefix)) & wanted
    done = {i: t for i, t in finished.items() if i in wanted}
    remaining = len(wanted) - len(done) - len(failed - set(done))
    bar = runtime.progress(total=len(wanted), desc=f"{run.model_name} {run.model_version}", unit=" image sets")
    bar.update(len(done) + len(failed - set(done)))
    bar.close()
    rate, eta = measured_rate(list(done.values()), remaining)
    runtime.emit(f"done {len(done)}  failed {len(failed - set(done))}  remaining {remaining}  of {len(wanted)}")
    runtime.emit(f"rate {rate * 3600:.1f} image sets/h (results index)  ETA {eta}")
    return 0


def measured_rate(finished_at: list[datetime], remaining: int) -> tuple[float, str]:
    """(image sets per second, ETA text) from when the results index wrote each finished record."""
    if len(finished_at) < 2:
        return 0.0, "unknown (fewer than two results so far)"
    times = sorted(finished_at)
    span = (times[-1] - times[0]).total_seconds()
    if span <= 0:
        return 0.0, "unknown (the results so far arrived at once)"
    rate = (len(times) - 1) / span
    return rate, _duration(remaining / rate)


def _duration(seconds: float) -> str:
    hours, rest = divmod(round(seconds), 3600)
    return f"{hours} h {rest // 60:02d} min"


def run_retry(args: argparse.Namespace, runtime: Runtime) -> int:
    run = run_of(args, runtime)
    s3 = runtime.client("s3")
    failed = items.failed_items(s3, run)
    named = set(args.image_set) if args.image_set else None
    if named is not None and named - {item.image_set_id for item, _ in failed}:
        raise UsageError(f"not in the failure path of {run.model_name} {run.model_version}: "
                         f"{sorted(named - {item.image_set_id for item, _ in failed})}")
    outcome = items.retry_failed(s3, runtime.client("sagemaker-runtime"), run, room=len(failed) or 1,
                                 now=datetime.now(UTC), image_set_ids=named)  # fmt: skip
    runtime.emit(f"resubmitted {len(outcome.submitted)}, failed again {len(outcome.failed)}, "
                 f"skipped {len(outcome.skipped)} (claimed by another submitter)")
    for failure in outcome.failed:
        runtime.emit(f"  {failure['imageSetId']}: {failure['code']}: {failure['reason']}")
    return 0 if not outcome.failed else 1
