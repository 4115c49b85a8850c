"""Summarize a finished HealthImaging import job from its output files and publish the summary to SNS.

HealthImaging writes, under the job's ``outputS3Uri``, a folder per job holding ``job-output-manifest.json``,
``SUCCESS/success.ndjson`` (one line per imported file, with the image set it went into) and
``FAILURE/failure.ndjson`` (one line per rejected file, with the reason). A job can be COMPLETED and still
have failed files, so the summary always lists both.

The developer guide's sample "Import Job Completed" event carries ``inputS3Uri`` and ``outputS3Uri``; an event
without them (the fields are not marked required anywhere) is completed from GetDICOMImportJob, which always
returns both.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any, ClassVar

import boto3

# Beside this module in the function's asset (stacks/components/function_shared: the settings helper and the
# platform's one S3-URI parser, model_code/core/s3_uri.py).
from function_settings import EnvironmentSettings
from s3_uri import parse_s3_uri

ENV_SUMMARY_TOPIC_ARN = "SUMMARY_TOPIC_ARN"

JOB_MANIFEST_NAME = "job-output-manifest.json"
# The batch manifest that started the job sits in the imported prefix (start_import.MANIFEST_NAME; a test keeps
# them equal). It is not DICOM, so the service may list it as failed: that is not a failed study file.
BATCH_MANIFEST_NAME = "manifest.json"
SUCCESS_FILE = "SUCCESS/success.ndjson"
FAILURE_FILE = "FAILURE/failure.ndjson"
# An SNS message is at most 256 KiB: the summary names this many failed files and counts the rest.
MAX_LISTED_FAILURES = 100
SUBJECT_MAX = 100  # SNS subject limit


class OutputNotFoundError(RuntimeError):
    """The job's output manifest is not where the event says; raised so the invocation retries."""


@dataclass(frozen=True)
class Settings(EnvironmentSettings):
    DEPLOYED_BY: ClassVar[str] = "HealthImaging"

    summary_topic_arn: str


def find_job_manifest(s3: Any, *, output_uri: str, job_id: str) -> tuple[str, str]:
    """(bucket, key) of the job's output manifest: the one under ``output_uri`` whose path names the job."""
    bucket, prefix = parse_s3_uri(output_uri, what="the event's outputS3Uri")
    keys = [
        item["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for item in page.get("Contents", [])
        if item["Key"].endswith("/" + JOB_MANIFEST_NAME) or item["Key"] == JOB_MANIFEST_NAME
    ]
    # The service nests each job's results in a folder named after the job; a reused output prefix holds several.
    matching = [key for key in keys if job_id in key] or (keys if len(keys) == 1 else [])
    if len(matching) != 1:
        raise OutputNotFoundError(
            f"expected one {JOB_MANIFEST_NAME} for job {job_id} under {output_uri}, found {keys}"
        )
    return bucket, matching[0]


def read_ndjson(s3: Any, bucket: str, key: str) -> Iterator[dict[str, Any]]:
    """Records of an ndjson object; a missing object means no records (e.g. no failures)."""
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    except s3.exceptions.NoSuchKey:
        return
    for line in body.iter_lines():
        if line.strip():
            yield json.loads(line)


def _failure_reason(record: dict[str, Any]) -> str:
    exception = record.get("exception")
    if isinstance(exception, dict):
        kind, message = exception.get("exceptionType", ""), exception.get("message", "")
        return f"{kind}: {message}".strip(": ") or "unknown"
    return str(exception or record.get("message") or "unknown")


def job_locations(medical_imaging: Any, detail: dict[str, Any]) -> dict[str, Any]:
    """The event detail with the job's ``inputS3Uri`` and ``outputS3Uri``: the event's own, else the job's."""
    if detail.get("outputS3Uri"):
        return detail
    job = medical_imaging.get_dicom_import_job(datastoreId=detail["datastoreId"], jobId=detail["jobId"])
    properties = job["jobProperties"]
    return {**detail, "inputS3Uri": properties["inputS3Uri"], "outputS3Uri": properties["outputS3Uri"]}


def summarize(s3: Any, detail: dict[str, Any]) -> dict[str, Any]:
    """The summary of one import job from its event detail (with ``outputS3Uri``) and output files."""
    job_id = detail["jobId"]
    bucket, manifest_key = find_job_manifest(s3, output_uri=detail["outputS3Uri"], job_id=job_id)
    job_summary = json.loads(s3.get_object(Bucket=bucket, Key=manifest_key)["Body"].read()).get("jobSummary", {})
    folder = manifest_key.removesuffix(JOB_MANIFEST_NAME)

    image_sets: set[str] = set()
    imported = 0
    for record in read_ndjson(s3, bucket, folder + SUCCESS_FILE):
        imported += 1
        image_set = (record.get("importResponse") or {}).get("imageSetId")
        if image_set:
            image_sets.add(image_set)
    failures = [
        {"file": record.get("inputFile", "unknown"), "reason": _failure_reason(record)}
        for record in read_ndjson(s3, bucket, folder + FAILURE_FILE)
        if not str(record.get("inputFile", "")).endswith("/" + BATCH_MANIFEST_NAME)
    ]
    return {
        "jobId": job_id,
        "jobName": detail.get("jobName"),
        "jobStatus": detail.get("jobStatus"),
        "datastoreId": detail["datastoreId"],
        "inputS3Uri": detail.get("inputS3Uri"),
        "outputS3Uri": f"s3://{bucket}/{folder}",
        "imageSetIds": sorted(image_sets),
        "importedFileCount": imported,
        "failedFileCount": len(failures),
        "failedFiles": failures[:MAX_LISTED_FAILURES],
        "failedFilesNotListed": max(0, len(failures) - MAX_LISTED_FAILURES),
        # The service's own counters, passed through for cross-checking.
        "jobSummary": {k: v for k, v in job_summary.items() if k.startswith("numberOf")},
    }


def subject(summary: dict[str, Any]) -> str:
    text = (
        f"HealthImaging import {summary['jobName'] or summary['jobId']}: "
        f"{summary['importedFileCount']} imported, {summary['failedFileCount']} failed"
    )
    # SNS subjects are ASCII without control characters, at most 100 of them.
    return text.encode("ascii", "replace").decode()[:SUBJECT_MAX]


@cache
def _clients() -> tuple[Any, Any, Any]:
    # Created on first use, never at import: tests and cold starts without credentials import this module.
    return boto3.client("s3"), boto3.client("sns"), boto3.client("medical-imaging")


@cache
def _settings() -> Settings:
    return Settings.from_environment()


def handle(event: dict[str, Any], *, s3: Any, sns: Any, medical_imaging: Any, settings: Settings) -> dict[str, Any]:
    """An "Import Job Completed" event: publish the job's summary."""
    summary = summarize(s3, job_locations(medical_imaging, event["detail"]))
    sns.publish(
        TopicArn=settings.summary_topic_arn,
        Subject=subject(summary),
        Message=json.dumps(summary, indent=2),
        MessageAttributes={
            "failedFileCount": {"DataType": "Number", "StringValue": str(summary["failedFileCount"])},
        },
    )
    return summary


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    s3, sns, medical_imaging = _clients()
    return handle(event, s3=s3, sns=sns, medical_imaging=medical_imaging, settings=_settings())
