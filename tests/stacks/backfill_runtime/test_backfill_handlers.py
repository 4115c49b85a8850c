"""The backfill's Lambda handlers as the state machine calls them: the listing loop and one Distributed Map batch.

HealthImaging is the loopback stand-in (real HTTP through botocore), S3, CloudWatch and the SageMaker runtime are
moto's. These tests' AWS calls are recorded for the IAM proof (tests/stacks/contracts).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from stacks.backfill.runtime import backfill_list, backfill_submit
from stacks.backfill.runtime.backfill_metrics import NAMESPACE
from stacks.components.function_shared.healthimaging_quotas import SEARCH_IMAGE_SETS, Pacer
from testkit.healthimaging import DATASTORE_ID, catalog_image_set, loopback_client, serve
from tests.stacks.fake_aws import REGION, mocked_aws

BUCKET = "inference-bucket"
ENDPOINT = "monai-imaging-dev-spleen-async"
ARCHIVE = [catalog_image_set(i, modality="MR" if i % 3 == 0 else "CT") for i in range(130)]  # 3 pages
CT = [s.image_set_id for i, s in enumerate(ARCHIVE) if i % 3]
LIST_SETTINGS = backfill_list.Settings(datastore_id=DATASTORE_ID, inference_bucket=BUCKET, endpoint_name=ENDPOINT)
SUBMIT_SETTINGS = backfill_submit.Settings(datastore_id=DATASTORE_ID, inference_bucket=BUCKET, endpoint_name=ENDPOINT,
                                           backlog_target=4, workers=2)
RUN = {"modelName": "spleen_ct_segmentation", "modelVersion": "0.5.9"}


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    with mocked_aws(monkeypatch), serve(ARCHIVE) as server:
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        yield {"s3": s3, "cloudwatch": boto3.client("cloudwatch", region_name=REGION),
               "runtime": boto3.client("sagemaker-runtime", region_name=REGION),
               "medical_imaging": loopback_client(server.url, max_attempts=1), "server": server}  # fmt: skip


def simulated_pacer() -> Pacer:
    now = [0.0]
    return Pacer.for_quota(SEARCH_IMAGE_SETS, clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))


def list_call(aws: dict[str, Any], listing: dict[str, Any]) -> dict[str, Any]:
    event = {"runId": "backfill-1", **RUN, "filter": {"modality": "CT"}, "listing": listing}
    return backfill_list.handle(event, s3=aws["s3"], medical_imaging=aws["medical_imaging"],
                                cloudwatch=aws["cloudwatch"], settings=LIST_SETTINGS, pacer=simulated_pacer())


def metric_sum(aws: dict[str, Any], name: str) -> float:
    answer = aws["cloudwatch"].get_metric_statistics(
        Namespace=NAMESPACE, MetricName=name, Statistics=["Sum"], Period=3600,
        Dimensions=[{"Name": "ModelName", "Value": RUN["modelName"]},
                    {"Name": "ModelVersion", "Value": RUN["modelVersion"]}],
        StartTime=datetime.now(UTC) - timedelta(hours=1), EndTime=datetime.now(UTC) + timedelta(minutes=5),
    )  # fmt: skip
    return sum(point["Sum"] for point in answer["Datapoints"])


def test_the_listing_loops_page_by_page_and_ends_with_the_manifest(
    aws: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(backfill_list, "PAGES_PER_CALL", 1)
    listing: dict[str, Any] = {"part": 0}
    calls = 0
    while True:
        listing = list_call(aws, listing)
        calls += 1
        if listing["manifestKey"]:
            break
        assert listing["nextToken"] is not None
    assert calls == 3
    assert (listing["scanned"], listing["listed"], listing["pending"]) == (130, len(CT), len(CT))
    manifest = json.loads(aws["s3"].get_object(Bucket=BUCKET, Key=listing["manifestKey"])["Body"].read())
    assert [item["imageSetId"] for item in manifest] == sorted(CT)  # the listing's order (the stand-in's: by ID)
    assert listing["manifestKey"].endswith("/listings/backfill-1/manifest.json")
    assert metric_sum(aws, "Pending") == len(CT)


def test_a_throttled_listing_call_keeps_its_token_for_the_wait_loop(aws: dict[str, Any]) -> None:
    aws["server"].fail_next("SearchImageSets", 429, "ThrottlingException")
    listing = list_call(aws, {"part": 0})
    assert listing["throttled"] is True
    assert listing["nextToken"] is None  # still at the first page: the next call starts over from it
    assert listing["manifestKey"] is None
    assert list_call(aws, listing)["manifestKey"] is not None


def test_another_data_store_is_refused(aws: dict[str, Any]) -> None:
    event = {"runId": "backfill-1", **RUN, "datastoreId": "f" * 32, "filter": {}, "listing": {}}
    with pytest.raises(ValueError, match="is not the platform's data store"):
        backfill_list.handle(event, s3=aws["s3"], medical_imaging=aws["medical_imaging"],
                             cloudwatch=aws["cloudwatch"], settings=LIST_SETTINGS)  # fmt: skip


def test_a_batch_submits_its_share_of_the_room_and_defers_the_rest(aws: dict[str, Any]) -> None:
    items = [{"imageSetId": image_set_id} for image_set_id in CT[:12]]
    event = {"Items": items, "BatchInput": {"run": {**RUN, "filter": {}}}}
    # Backlog 0, target 4, two workers: this one may add 2.
    out = backfill_submit.handle(event, s3=aws["s3"], sagemaker_runtime=aws["runtime"], cloudwatch=aws["cloudwatch"],
                                 settings=SUBMIT_SETTINGS)  # fmt: skip
    assert (out["submitted"], out["room"], len(out["Items"])) == (2, 2, 10)
    assert [item["imageSetId"] for item in out["Items"]] == CT[2:12]
    assert out["BatchInput"] == event["BatchInput"]  # what the wait loop calls again with
    assert metric_sum(aws, "Submitted") == 2


def test_a_batch_skips_what_an_earlier_batch_claimed(aws: dict[str, Any]) -> None:
    event = {"Items": [{"imageSetId": CT[0]}], "BatchInput": {"run": RUN}}
    kwargs = {"s3": aws["s3"], "sagemaker_runtime": aws["runtime"], "cloudwatch": aws["cloudwatch"],
              "settings": SUBMIT_SETTINGS}  # fmt: skip
    assert backfill_submit.handle(event, **kwargs)["submitted"] == 1
    again = backfill_submit.handle(event, **kwargs)  # a redriven child: reads the claim, finds it INVOKED
    assert (again["submitted"], again["skipped"]) == (0, 1)


def test_a_batch_at_the_target_waits(aws: dict[str, Any]) -> None:
    aws["cloudwatch"].put_metric_data(Namespace="AWS/SageMaker", MetricData=[{
        "MetricName": "ApproximateBacklogSize", "Value": 4.0, "Timestamp": datetime.now(UTC) - timedelta(seconds=30),
        "Dimensions": [{"Name": "EndpointName", "Value": ENDPOINT}]}])  # fmt: skip
    event = {"Items": [{"imageSetId": CT[0]}], "BatchInput": {"run": RUN}}
    out = backfill_submit.handle(event, s3=aws["s3"], sagemaker_runtime=aws["runtime"], cloudwatch=aws["cloudwatch"],
                                 settings=SUBMIT_SETTINGS)  # fmt: skip
    assert (out["submitted"], out["room"], len(out["Items"])) == (0, 0, 1)


def test_a_failed_submission_releases_its_claim_and_lands_in_the_failure_path(aws: dict[str, Any]) -> None:
    from botocore.exceptions import ClientError

    def refuse(params: dict[str, Any], **_: Any) -> None:
        raise ClientError({"Error": {"Code": "ValidationError", "Message": "injected ValidationError"},
                           "ResponseMetadata": {"HTTPStatusCode": 400}}, "InvokeEndpointAsync")  # fmt: skip

    aws["runtime"].meta.events.register_first("provide-client-params.sagemaker-runtime.InvokeEndpointAsync", refuse)
    event = {"Items": [{"imageSetId": CT[0]}], "BatchInput": {"run": RUN}}
    out = backfill_submit.handle(event, s3=aws["s3"], sagemaker_runtime=aws["runtime"], cloudwatch=aws["cloudwatch"],
                                 settings=SUBMIT_SETTINGS)  # fmt: skip
    assert (out["submitted"], out["failed"], out["Items"]) == (0, 1, [])
    keys = [o["Key"] for o in aws["s3"].list_objects_v2(Bucket=BUCKET).get("Contents", [])]
    assert [k for k in keys if "/claims/" in k] == []
    assert [k.rsplit("/", 1)[-1] for k in keys if "/failures/" in k] == [f"{CT[0]}.json"]
    assert metric_sum(aws, "Failed") == 1


def test_the_submit_settings_refuse_zero_workers() -> None:
    environ = {"DATASTORE_ID": DATASTORE_ID, "INFERENCE_BUCKET": BUCKET, "ENDPOINT_NAME": ENDPOINT,
               "BACKLOG_TARGET": "4", "WORKERS": "0"}  # fmt: skip
    with pytest.raises(RuntimeError, match="WORKERS must be >= 1, got 0"):
        backfill_submit.Settings.from_environment(environ)
    assert backfill_submit.Settings.from_environment({**environ, "WORKERS": "3"}).workers == 3
