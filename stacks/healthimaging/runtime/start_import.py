"""Start a HealthImaging DICOM import when a batch's ``manifest.json`` lands in the inbox.

The user uploads a study's files under ``incoming/<batch>/`` and then ``incoming/<batch>/manifest.json``;
S3 sends "Object Created" for that key to EventBridge, whose rule invokes this function. The manifest is
validated, then ``StartDICOMImportJob`` imports the whole prefix. The client token is derived from the bucket
and the batch, so an EventBridge or Lambda retry of the same upload never starts a second import.

Manifest (JSON object):
    schemaVersion      required, "1"
    jobName            optional, 1-64 of [A-Za-z0-9._/#-] (default: the batch name)
    expectedFileCount  optional, integer >= 1: the number of files under the batch prefix besides the manifest
A bad manifest is rejected with a message to the notification topic (retrying it cannot help); AWS errors
raise, so the asynchronous invocation retries and finally lands in the dead-letter queue.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from functools import cache
from typing import Any, ClassVar
from urllib.parse import unquote_plus

import boto3

# Beside this module in the function's asset (stacks/components/function_shared).
from function_settings import EnvironmentSettings

ENV_DATASTORE_ID = "DATASTORE_ID"
ENV_IMPORT_ROLE_ARN = "IMPORT_ROLE_ARN"
ENV_OUTPUT_BUCKET = "OUTPUT_BUCKET"
ENV_INCOMING_PREFIX = "INCOMING_PREFIX"
ENV_NOTIFICATION_TOPIC_ARN = "NOTIFICATION_TOPIC_ARN"

MANIFEST_NAME = "manifest.json"
SCHEMA_VERSIONS = ("1",)
# StartDICOMImportJob limits (botocore service model): clientToken 1-64 of [A-Za-z0-9._-], jobName 1-64 of
# [A-Za-z0-9._/#-]. A batch name is kept to the characters both an S3 URI and a job name accept.
CLIENT_TOKEN_LENGTH = 64
JOB_NAME_MAX = 64
_JOB_NAME = re.compile(r"^[A-Za-z0-9._/#-]{1,64}$")
_BATCH = re.compile(r"^[A-Za-z0-9._-]{1,200}$")
MANIFEST_MAX_BYTES = 64 * 1024


class ManifestError(ValueError):
    """The upload is not a valid batch manifest; the message says what the uploader must fix."""


@dataclass(frozen=True)
class Settings(EnvironmentSettings):
    DEPLOYED_BY: ClassVar[str] = "HealthImaging"

    datastore_id: str
    import_role_arn: str
    output_bucket: str
    incoming_prefix: str
    notification_topic_arn: str


@dataclass(frozen=True)
class Manifest:
    schema_version: str
    job_name: str | None
    expected_file_count: int | None


@dataclass(frozen=True)
class Batch:
    bucket: str
    name: str
    prefix: str  # "incoming/<batch>/"


def batch_from_key(bucket: str, key: str, *, incoming_prefix: str) -> Batch:
    """The batch a manifest key belongs to; only ``<incoming_prefix><batch>/manifest.json`` is accepted."""
    key = unquote_plus(key)  # S3 event keys arrive URL-encoded
    rest = key.removeprefix(incoming_prefix)
    parts = rest.split("/")
    if rest == key or len(parts) != 2 or parts[1] != MANIFEST_NAME:
        raise ManifestError(
            f"s3://{bucket}/{key} is not a batch manifest: upload it as {incoming_prefix}<batch>/{MANIFEST_NAME}"
        )
    if not _BATCH.match(parts[0]):
        raise ManifestError(
            f"batch name {parts[0]!r} must be 1-200 letters, digits, '.', '_' or '-': rename the folder"
        )
    return Batch(bucket=bucket, name=parts[0], prefix=f"{incoming_prefix}{parts[0]}/")


def parse_manifest(body: bytes) -> Manifest:
    """Validate the manifest document; every error names the field and the accepted values."""
    if len(body) > MANIFEST_MAX_BYTES:
        raise ManifestError(f"manifest is {len(body)} bytes, more than {MANIFEST_MAX_BYTES}: it lists no files")
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ManifestError(f"manifest is not valid JSON ({error}): upload a JSON object") from error
    if not isinstance(document, dict):
        raise ManifestError("manifest must be a JSON object with at least 'schemaVersion'")
    unknown = sorted(set(document) - {"schemaVersion", "jobName", "expectedFileCount"})
    if unknown:
        raise ManifestError(f"manifest has unknown fields {unknown}: use schemaVersion, jobName, expectedFileCount")
    version = document.get("schemaVersion")
    if version not in SCHEMA_VERSIONS:
        raise ManifestError(f"manifest 'schemaVersion' must be one of {list(SCHEMA_VERSIONS)}, got {version!r}")
    job_name = document.get("jobName")
    if job_name is not None and (not isinstance(job_name, str) or not _JOB_NAME.match(job_name)):
        raise ManifestError(f"manifest 'jobName' must be 1-64 of A-Z a-z 0-9 . _ / # -, got {job_name!r}")
    count = document.get("expectedFileCount")
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
        raise ManifestError(f"manifest 'expectedFileCount' must be an integer >= 1, got {count!r}")
    return Manifest(schema_version=version, job_name=job_name, expected_file_count=count)


def client_token(batch: Batch) -> str:
    """Deterministic per bucket and batch: retries reuse it, so HealthImaging starts the job only once."""
    return hashlib.sha256(f"{batch.bucket}/{batch.prefix}".encode()).hexdigest()[:CLIENT_TOKEN_LENGTH]


def job_name(batch: Batch, manifest: Manifest) -> str:
    if manifest.job_name:
        return manifest.job_name
    return batch.name[:JOB_NAME_MAX]


def count_batch_files(s3: Any, batch: Batch) -> int:
    """Objects under the batch prefix other than the manifest (what the import will scan)."""
    total = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=batch.bucket, Prefix=batch.prefix):
        total += sum(1 for item in page.get("Contents", []) if not item["Key"].endswith("/" + MANIFEST_NAME))
    return total


def start_import(*, s3: Any, medical_imaging: Any, settings: Settings, bucket: str, key: str) -> dict[str, Any]:
    """Validate the batch and start its import; raises :class:`ManifestError` for a bad upload."""
    batch = batch_from_key(bucket, key, incoming_prefix=settings.incoming_prefix)
    body = s3.get_object(Bucket=bucket, Key=f"{batch.prefix}{MANIFEST_NAME}")["Body"].read()
    manifest = parse_manifest(body)
    if manifest.expected_file_count is not None:
        found = count_batch_files(s3, batch)
        if found != manifest.expected_file_count:
            raise ManifestError(
                f"batch {batch.name!r} holds {found} files but its manifest expects {manifest.expected_file_count}: "
                "finish the upload, then upload the manifest again under a new batch name"
            )
    response = medical_imaging.start_dicom_import_job(
        jobName=job_name(batch, manifest),
        dataAccessRoleArn=settings.import_role_arn,
        clientToken=client_token(batch),
        datastoreId=settings.datastore_id,
        inputS3Uri=f"s3://{batch.bucket}/{batch.prefix}",
        outputS3Uri=f"s3://{settings.output_bucket}/{batch.name}/",
    )
    return {"batch": batch.name, "jobId": response["jobId"], "jobStatus": response["jobStatus"]}


def reject(sns: Any, settings: Settings, *, bucket: str, key: str, error: ManifestError) -> dict[str, Any]:
    message = {"status": "REJECTED", "manifest": f"s3://{bucket}/{key}", "reason": str(error)}
    sns.publish(
        TopicArn=settings.notification_topic_arn,
        Subject="HealthImaging import rejected: fix the batch manifest",
        Message=json.dumps(message, indent=2),
    )
    return message


@cache
def _clients() -> tuple[Any, Any, Any]:
    # Created on first use, never at import: tests and cold starts without credentials import this module.
    return boto3.client("s3"), boto3.client("medical-imaging"), boto3.client("sns")


@cache
def _settings() -> Settings:
    return Settings.from_environment()


def handle(event: dict[str, Any], *, s3: Any, medical_imaging: Any, sns: Any, settings: Settings) -> dict[str, Any]:
    """An S3 "Object Created" event from EventBridge: start the import or report why not."""
    detail = event["detail"]
    bucket, key = detail["bucket"]["name"], detail["object"]["key"]
    try:
        return start_import(s3=s3, medical_imaging=medical_imaging, settings=settings, bucket=bucket, key=key)
    except ManifestError as error:
        return reject(sns, settings, bucket=bucket, key=key, error=error)


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    s3, medical_imaging, sns = _clients()
    return handle(event, s3=s3, medical_imaging=medical_imaging, sns=sns, settings=_settings())
