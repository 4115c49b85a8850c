"""start_import: a valid batch manifest starts exactly one import; a bad one is rejected with a clear message."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from stacks.healthimaging.runtime import start_import
from tests.stacks.healthimaging_runtime.conftest import INBOX, OUTPUT, Aws

DATASTORE_ID = "0123456789abcdef0123456789abcdef"
ROLE_ARN = "arn:aws:iam::123456789012:role/monai-imaging-dev-import"


def settings(topic_arn: str) -> start_import.Settings:
    return start_import.Settings(
        datastore_id=DATASTORE_ID,
        import_role_arn=ROLE_ARN,
        output_bucket=OUTPUT,
        incoming_prefix="incoming/",
        notification_topic_arn=topic_arn,
    )


def s3_event(key: str, bucket: str = INBOX) -> dict[str, Any]:
    """An S3 "Object Created" event as EventBridge delivers it."""
    return {
        "version": "0",
        "detail-type": "Object Created",
        "source": "aws.s3",
        "detail": {"bucket": {"name": bucket}, "object": {"key": key, "size": 42}, "reason": "PutObject"},
    }


def upload_batch(aws: Aws, batch: str, manifest: Any, *, files: int = 2) -> str:
    for index in range(files):
        aws.s3.put_object(Bucket=INBOX, Key=f"incoming/{batch}/series/{index:04d}.dcm", Body=b"DICM")
    body = manifest if isinstance(manifest, bytes) else json.dumps(manifest).encode()
    key = f"incoming/{batch}/manifest.json"
    aws.s3.put_object(Bucket=INBOX, Key=key, Body=body)
    return key


def expect_import(aws: Aws, *, batch: str, job_name: str) -> dict[str, Any]:
    params = {
        "jobName": job_name,
        "dataAccessRoleArn": ROLE_ARN,
        "clientToken": hashlib.sha256(f"{INBOX}/incoming/{batch}/".encode()).hexdigest(),
        "datastoreId": DATASTORE_ID,
        "inputS3Uri": f"s3://{INBOX}/incoming/{batch}/",
        "outputS3Uri": f"s3://{OUTPUT}/{batch}/",
    }
    response = {"datastoreId": DATASTORE_ID, "jobId": "job0001", "jobStatus": "SUBMITTED",
                "submittedAt": datetime(2026, 11, 21, tzinfo=UTC)}
    # The Stubber checks the request against the real medical-imaging service model and these exact values.
    aws.stubber.add_response("start_dicom_import_job", response, params)
    return params


def handle(aws: Aws, event: dict[str, Any]) -> dict[str, Any]:
    return start_import.handle(
        event, s3=aws.s3, medical_imaging=aws.medical_imaging, sns=aws.sns, settings=settings(aws.topic_arn)
    )


@pytest.mark.parametrize(
    ("manifest", "job_name"),
    [
        ({"schemaVersion": "1"}, "study-42"),  # minimal: the batch name becomes the job name
        ({"schemaVersion": "1", "jobName": "ct/abdomen#1"}, "ct/abdomen#1"),  # the uploader's job name
        ({"schemaVersion": "1", "expectedFileCount": 2}, "study-42"),  # the count matches the upload
    ],
)
def test_a_valid_manifest_starts_the_import_of_its_prefix(aws: Aws, manifest: dict[str, Any], job_name: str) -> None:
    key = upload_batch(aws, "study-42", manifest)
    expect_import(aws, batch="study-42", job_name=job_name)
    result = handle(aws, s3_event(key))
    assert result == {"batch": "study-42", "jobId": "job0001", "jobStatus": "SUBMITTED"}
    assert aws.published() == []  # must not: a started import sends no rejection


def test_a_retried_event_reuses_the_client_token_and_another_batch_does_not(aws: Aws) -> None:
    key = upload_batch(aws, "study-42", {"schemaVersion": "1"})
    first = expect_import(aws, batch="study-42", job_name="study-42")
    second = expect_import(aws, batch="study-42", job_name="study-42")  # the same event delivered again
    handle(aws, s3_event(key))
    handle(aws, s3_event(key))
    assert first["clientToken"] == second["clientToken"]
    assert len(first["clientToken"]) == start_import.CLIENT_TOKEN_LENGTH

    other_key = upload_batch(aws, "study-43", {"schemaVersion": "1"})
    other = expect_import(aws, batch="study-43", job_name="study-43")
    handle(aws, s3_event(other_key))
    assert other["clientToken"] != first["clientToken"]


@pytest.mark.parametrize(
    ("manifest", "reason"),
    [
        (b"{not json", "not valid JSON"),  # truncated upload
        ([1, 2], "must be a JSON object"),  # a list, not an object
        ({"jobName": "x"}, "'schemaVersion' must be one of ['1']"),  # version missing
        ({"schemaVersion": 2}, "'schemaVersion' must be one of ['1']"),  # a number, not the string "1"
        ({"schemaVersion": "1", "files": []}, "unknown fields ['files']"),  # a typo or an unsupported field
        ({"schemaVersion": "1", "jobName": "bad name!"}, "'jobName' must be 1-64"),  # characters the API refuses
        ({"schemaVersion": "1", "jobName": "x" * 65}, "'jobName' must be 1-64"),  # longer than the API allows
        ({"schemaVersion": "1", "expectedFileCount": 0}, "'expectedFileCount' must be an integer >= 1"),
        ({"schemaVersion": "1", "expectedFileCount": True}, "'expectedFileCount' must be an integer >= 1"),
        ({"schemaVersion": "1", "expectedFileCount": 3}, "holds 2 files but its manifest expects 3"),  # upload cut
    ],
)
def test_a_bad_manifest_is_rejected_with_its_reason_and_starts_nothing(aws: Aws, manifest: Any, reason: str) -> None:
    key = upload_batch(aws, "study-42", manifest)
    result = handle(aws, s3_event(key))  # no stubbed response: any import call would raise
    assert result["status"] == "REJECTED"
    assert reason in result["reason"]
    [published] = aws.published()
    assert published["subject"] == "HealthImaging import rejected: fix the batch manifest"
    assert published["message"] == {"status": "REJECTED", "manifest": f"s3://{INBOX}/{key}", "reason": result["reason"]}


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("incoming/a/b/manifest.json", "is not a batch manifest"),  # nested below a batch
        ("other/study/manifest.json", "is not a batch manifest"),  # outside incoming/
        ("incoming/bad%20name/manifest.json", "batch name 'bad name'"),  # URL-encoded space in the folder
    ],
)
def test_a_manifest_outside_a_batch_folder_is_rejected(aws: Aws, key: str, reason: str) -> None:
    result = handle(aws, s3_event(key))
    assert result["status"] == "REJECTED"
    assert reason in result["reason"]


def test_settings_name_every_missing_environment_variable() -> None:
    environ = {start_import.ENV_DATASTORE_ID: DATASTORE_ID, start_import.ENV_INCOMING_PREFIX: "incoming/"}
    with pytest.raises(RuntimeError, match=r"\['IMPORT_ROLE_ARN', 'OUTPUT_BUCKET', 'NOTIFICATION_TOPIC_ARN'\]"):
        start_import.Settings.from_environment(environ)
    complete = {**environ, "IMPORT_ROLE_ARN": ROLE_ARN, "OUTPUT_BUCKET": OUTPUT, "NOTIFICATION_TOPIC_ARN": "arn"}
    assert start_import.Settings.from_environment(complete).output_bucket == OUTPUT
