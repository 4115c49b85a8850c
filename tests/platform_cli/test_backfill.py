"""``monai-platform backfill``: a dry run over a 10,000-image-set archive on the loopback HealthImaging, start,
status and retry-failed against moto (S3, SageMaker, Application Auto Scaling, Step Functions)."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from platform_cli import backfill
from platform_cli.main import main
from platform_cli.project import Deployment
from platform_cli.runtime import Runtime
from stacks.backfill.runtime.backfill_items import Run
from stacks.components.function_shared.results_layout import record_key
from stacks.pricing import STEP_FUNCTIONS_STANDARD_PER_TRANSITION, sagemaker_hosting
from testkit.aws_account import PARTITION
from testkit.healthimaging import DATASTORE_ID, catalog_image_set, loopback_client, serve
from tests.platform_cli.fakes import ENDPOINT, REPO_ROOT, Platform

ARCHIVE = [catalog_image_set(i, modality="MR" if i % 5 == 0 else "CT") for i in range(10_000)]
CT = [s.image_set_id for i, s in enumerate(ARCHIVE) if i % 5]
MODEL = "spleen_ct_segmentation"


@pytest.fixture
def deployed(platform: Platform, data_stack: dict[str, str]) -> dict[str, Any]:
    sagemaker = platform.session.client("sagemaker")
    sagemaker.create_model(ModelName="spleen", ExecutionRoleArn=f"arn:{PARTITION}:iam::123456789012:role/endpoint",
                           PrimaryContainer={"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/i:1"})
    sagemaker.create_endpoint_config(EndpointConfigName="spleen-config", ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": "spleen", "InstanceType": "ml.g4dn.xlarge",
        "InitialInstanceCount": 1}])  # fmt: skip
    sagemaker.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName="spleen-config")
    platform.session.client("application-autoscaling").register_scalable_target(
        ServiceNamespace="sagemaker", ResourceId=f"endpoint/{ENDPOINT}/variant/AllTraffic",
        ScalableDimension="sagemaker:variant:DesiredInstanceCount", MinCapacity=0, MaxCapacity=2)  # fmt: skip
    stepfunctions = platform.session.client("stepfunctions")
    machine = stepfunctions.create_state_machine(
        name="backfill", definition=json.dumps({"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}}),
        roleArn=f"arn:{PARTITION}:iam::123456789012:role/backfill")["stateMachineArn"]  # fmt: skip
    platform.deploy("Imaging", {"DatastoreId": DATASTORE_ID, "ImportAlarmTopicArn": f"arn:{PARTITION}:sns:us-east-1:1:t"})
    platform.deploy("Serving", {"EndpointName": ENDPOINT})
    platform.deploy("Inference", {"BackfillStateMachineArn": machine})
    bucket = data_stack["InferenceBucketName"]
    # Three results of an earlier version: the per-study time the results index measured (median 120 s).
    for index, seconds in enumerate((90.0, 120.0, 150.0)):
        key = record_key(MODEL, "0.5.8", date(2026, 11, 30), CT[index])
        platform.s3.put_object(Bucket=bucket, Key=key, Body=json.dumps({"inference_seconds": seconds}).encode())
    return {"bucket": bucket, "machine": machine}


def run_cli(platform: Platform, server: Any, *argv: str) -> int:
    def factory(deployment: Deployment, args: argparse.Namespace) -> Runtime:
        return Runtime(deployment=deployment, session=platform.session, sleep=platform.clock.sleep,
                       clock=platform.clock.clock,
                       client_overrides={"medical-imaging": loopback_client(server.url) if server else None})
    return main(list(argv), runtime_factory=factory, cwd=REPO_ROOT)


@pytest.mark.parametrize(
    ("options", "count"),
    [
        ((), len(ARCHIVE)),  # the whole 10,000-image-set archive
        (("--modality", "CT"), len(CT)),  # its CT image sets (the filter matched on every summary)
    ],
)
def test_a_dry_run_prints_the_count_and_the_estimate_from_the_price_table(
    platform: Platform, deployed: dict[str, Any], capsys: pytest.CaptureFixture[str], options: tuple[str, ...],
    count: int,
) -> None:
    with serve(ARCHIVE) as server:
        assert run_cli(platform, server, "backfill", "start", "--model-version", "0.5.9", *options, "--dry-run") == 0
    out = capsys.readouterr().out
    print(out)  # the closing note's figure: pytest tests/platform_cli/test_backfill.py -k dry_run -s
    hours = count * 120.0 / 3600
    usd = hours * sagemaker_hosting("ml.g4dn.xlarge").hourly + -(-count // 10) * 6 * STEP_FUNCTIONS_STANDARD_PER_TRANSITION
    assert f"image sets listed:     {count} of 10000 read (200 SearchImageSets pages" in out
    assert f"image sets to segment: {count}" in out
    assert "per-study time:        120.0 s (measured: median of the results index)" in out
    assert "endpoint:              up to 2 x ml.g4dn.xlarge" in out
    assert f"estimated duration:    {hours / 2:.1f} h" in out
    assert f"estimated cost:        ${usd:,.2f}" in out
    assert platform.session.client("stepfunctions").list_executions(stateMachineArn=deployed["machine"])[
        "executions"] == []  # a dry run starts nothing


def test_without_a_measurement_the_dry_run_asks_for_the_per_study_time(
    platform: Platform, deployed: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    with serve(ARCHIVE[:10]) as server:
        code = run_cli(platform, server, "backfill", "start", "--model-name", "other_model", "--model-version", "1.0.0",
                       "--dry-run")
        assert code == 2
        assert "pass --seconds-per-study" in capsys.readouterr().err
        assert run_cli(platform, server, "backfill", "start", "--model-name", "other_model", "--model-version",
                       "1.0.0", "--dry-run", "--seconds-per-study", "60") == 0
    assert "per-study time:        60.0 s (given with --seconds-per-study)" in capsys.readouterr().out


def test_start_passes_the_filter_to_the_state_machine(
    platform: Platform, deployed: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(platform, None, "backfill", "start", "--model-version", "0.5.9", "--modality", "CT",
                   "--study-dates", "20200101-20201231", "--attribute", "DICOMPatientId=P0042", "--name", "run-1") == 0
    arn = capsys.readouterr().out.strip()
    document = json.loads(platform.session.client("stepfunctions").describe_execution(executionArn=arn)["input"])
    assert document == {"modelName": MODEL, "modelVersion": "0.5.9", "filter": {
        "modality": "CT", "studyDateFrom": "20200101", "studyDateTo": "20201231",
        "attribute": {"name": "DICOMPatientId", "value": "P0042"}}}  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--study-dates", "2020-2021"], "--study-dates '2020-2021': write YYYYMMDD-YYYYMMDD"),
        (["--attribute", "PatientName=X"], "filter.attribute.name 'PatientName' is not searchable"),
        (["--modality", "ct"], "filter.modality 'ct' is not a DICOM modality code"),
        (["--name", "no spaces"], "--name 'no spaces' must be 1-80 of A-Z a-z 0-9 _ -"),
    ],
)
def test_bad_start_options_are_refused(platform: Platform, deployed: dict[str, Any], argv: list[str], message: str,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(platform, None, "backfill", "start", "--model-version", "0.5.9", *argv) == 2
    assert message in capsys.readouterr().err


def test_status_counts_the_run_s_manifest(
    platform: Platform, deployed: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    run = Run(DATASTORE_ID, MODEL, "0.5.9", ENDPOINT, deployed["bucket"])
    s3, bucket = platform.s3, deployed["bucket"]
    prefix = backfill.listing_prefix(run, "run-1")
    s3.put_object(Bucket=bucket, Key=f"{prefix}manifest.json",
                  Body=json.dumps([{"imageSetId": i} for i in CT[:4]]).encode())
    for image_set in CT[:2]:
        s3.put_object(Bucket=bucket, Key=record_key(MODEL, "0.5.9", date(2026, 12, 1), image_set), Body=b"{}")
    s3.put_object(Bucket=bucket, Key=run.failure_key(CT[2]), Body=b"{}")
    assert run_cli(platform, None, "backfill", "status", "--model-version", "0.5.9", "--name", "run-1") == 0
    out = capsys.readouterr().out
    assert "done 2  failed 1  remaining 1  of 4" in out
    assert "ETA unknown" in out  # both results written in the same second: no rate yet
    assert run_cli(platform, None, "backfill", "status", "--model-version", "0.5.9", "--name", "run-2") == 1
    assert "has no manifest yet" in capsys.readouterr().err


def test_the_eta_comes_from_the_rate_the_results_index_measured() -> None:
    start = datetime(2026, 12, 1, tzinfo=UTC)
    rate, eta = backfill.measured_rate([start + timedelta(seconds=30 * i) for i in range(5)], remaining=240)
    assert rate == pytest.approx(1 / 30)
    assert eta == "2 h 00 min"


def test_retry_failed_resubmits_the_failed_items_alone(
    platform: Platform, deployed: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    run = Run(DATASTORE_ID, MODEL, "0.5.9", ENDPOINT, deployed["bucket"])
    for image_set in CT[:2]:
        record = {"imageSetId": image_set, "code": "ServiceUnavailable", "reason": "x", "retryable": True,
                  "item": {"imageSetId": image_set}}  # fmt: skip
        platform.s3.put_object(Bucket=deployed["bucket"], Key=run.failure_key(image_set), Body=json.dumps(record).encode())
    assert run_cli(platform, None, "backfill", "retry-failed", "--model-version", "0.5.9", "--image-set", CT[0]) == 0
    assert "resubmitted 1, failed again 0" in capsys.readouterr().out
    remaining = platform.s3.list_objects_v2(Bucket=deployed["bucket"], Prefix=run.failures_prefix)["Contents"]
    assert [o["Key"] for o in remaining] == [run.failure_key(CT[1])]
    assert run_cli(platform, None, "backfill", "retry-failed", "--model-version", "0.5.9", "--image-set", "x" * 32) == 2
