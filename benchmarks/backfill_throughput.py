"""How many image sets per second the backfill's item logic sustains, beside the bare calls it makes.

An archive of ``--image-sets`` image sets (``testkit.healthimaging.catalog_image_set``) is served by the loopback
HealthImaging in a child process (real HTTP, SearchImageSets' 50-per-page limit), so the server does not share the
client's GIL. Side by side, in one process, medians of ``--repeats``:

* listing: ``backfill_items.list_image_sets`` (modality filter, pacer in simulated time so only the code's own cost
  counts) vs a bare loop of ``search_image_sets`` calls that only follows ``nextToken``;
* planning: ``backfill_items.pending`` (lists the results index, the claims and the failures in moto's S3) over the
  whole listing, a tenth of it already finished;
* submitting: ``backfill_items.submit_batch`` (claim, request, InvokeEndpointAsync, claim update) vs a bare
  ``invoke_endpoint_async`` loop, both against moto (``--submit`` items; moto's own cost dominates both).

It also prints what HealthImaging's published SearchImageSets quota lets a listing reach (healthimaging_quotas):
in production the quota, not this code, bounds the listing. Run:
``.venv/bin/python benchmarks/backfill_throughput.py`` (or ``make bench-backfill``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import boto3
from moto import mock_aws

from stacks.backfill.runtime import backfill_items as items
from stacks.components.function_shared.healthimaging_quotas import (
    BACKFILL_SHARE,
    SEARCH_IMAGE_SETS,
    Pacer,
)
from stacks.components.function_shared.results_layout import record_key
from testkit.healthimaging import DATASTORE_ID, catalog_image_set, loopback_client, serve_in_subprocess

BUCKET = "bench-inference-bucket"
NOW = datetime(2026, 12, 2, tzinfo=UTC)


def simulated_pacer() -> Pacer:
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    return Pacer.for_quota(SEARCH_IMAGE_SETS, clock=lambda: now[0], sleep=sleep)


def timed(repeats: int, work: Callable[[], int]) -> tuple[float, int]:
    """Median seconds of ``repeats`` runs of ``work`` and the count it returned (the same every run)."""
    seconds, counts = [], set()
    for _ in range(repeats):
        start = time.perf_counter()
        counts.add(work())
        seconds.append(time.perf_counter() - start)
    if len(counts) != 1:
        raise AssertionError(f"runs disagree on the count: {sorted(counts)}")
    return statistics.median(seconds), counts.pop()


def bare_listing(client: Any) -> int:
    count, token = 0, None
    while True:
        request: dict[str, Any] = {"datastoreId": DATASTORE_ID, "maxResults": 50}
        if token:
            request["nextToken"] = token
        page = client.search_image_sets(**request)
        count += len(page["imageSetsMetadataSummaries"])
        token = page.get("nextToken")
        if not token:
            return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image-sets", type=int, default=10_000)
    parser.add_argument("--submit", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    archive = [catalog_image_set(i, modality="MR" if i % 4 == 2 else "CT") for i in range(args.image_sets)]
    ct = sum(1 for i in range(args.image_sets) if i % 4 != 2)
    selection = items.Selection(modality="CT")
    print(f"archive: {args.image_sets} image sets ({ct} CT), {-(-args.image_sets // 50)} pages; "
          f"medians of {args.repeats}; {os.cpu_count()} CPUs")
    with serve_in_subprocess(archive) as url:
        client = loopback_client(url)
        bare_s, bare_n = timed(args.repeats, lambda: bare_listing(client))
        listing: list[items.Listing] = []

        def ours() -> int:
            listing[:] = [items.list_image_sets(client, DATASTORE_ID, selection, pacer=simulated_pacer())]
            return len(listing[0].items)

        ours_s, ours_n = timed(args.repeats, ours)
    if (bare_n, ours_n, listing[0].scanned) != (args.image_sets, ct, args.image_sets):
        raise AssertionError(f"listed {bare_n} and {ours_n}, expected {args.image_sets} and {ct}")
    print(f"listing    ours {args.image_sets / ours_s:9.0f} image sets/s   bare search loop {bare_n / bare_s:9.0f}/s   "
          f"ours/bare time {ours_s / bare_s:.2f}   (image sets read; {ct} matched CT)")
    quota = SEARCH_IMAGE_SETS.rate_per_s * BACKFILL_SHARE * 50
    print(f"           the published quota ({SEARCH_IMAGE_SETS.rate_per_s:g} TPS, backfill share {BACKFILL_SHARE:g}) "
          f"allows {quota:.0f} image sets/s")

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ[name] = "testing"
    os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        runtime = boto3.client("sagemaker-runtime")
        found = listing[0].items
        run = items.Run(DATASTORE_ID, "spleen_ct_segmentation", "0.5.9", "bench-endpoint", BUCKET)
        for item in found[:: 10]:
            key = record_key(run.model_name, run.model_version, date(2026, 12, 1), item.image_set_id)
            s3.put_object(Bucket=BUCKET, Key=key, Body=b"{}")
        plan_s, todo = timed(args.repeats, lambda: len(items.pending(s3, run, found).pending))
        print(f"planning   ours {len(found) / plan_s:9.0f} image sets/s   ({todo} pending of {len(found)})")
        batch = items.pending(s3, run, found).pending[: args.submit]
        versions = iter(range(10**6))

        def submit() -> int:
            versioned = items.Run(DATASTORE_ID, "spleen_ct_segmentation", f"1.{next(versions)}", "bench-endpoint",
                                  BUCKET)  # a fresh version each run: nothing claimed yet
            outcome = items.submit_batch(batch, s3=s3, sagemaker_runtime=runtime, run=versioned, room=len(batch),
                                         now=NOW)
            return len(outcome.submitted)

        def bare_submit() -> int:
            for item in batch:
                runtime.invoke_endpoint_async(EndpointName="bench-endpoint", InferenceId=item.image_set_id,
                                              InputLocation=f"s3://{BUCKET}/input/{item.image_set_id}.json")
            return len(batch)

        sub_s, sub_n = timed(args.repeats, submit)
        bare_sub_s, _ = timed(args.repeats, bare_submit)
    print(f"submitting ours {sub_n / sub_s:9.0f} image sets/s   bare invoke loop {sub_n / bare_sub_s:9.0f}/s   "
          f"ours/bare time {sub_s / bare_sub_s:.2f} (both against moto in process)")


if __name__ == "__main__":
    main()
