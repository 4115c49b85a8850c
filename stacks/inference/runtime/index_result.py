"""Index every finished segmentation: one record per result under the results index's partitioned layout.

SageMaker publishes each successful async inference on the endpoint's success topic (the documented format):

    {"eventTime": "...", "receivedTime": "...", "invocationStatus": "Completed", "inferenceId": "...",
     "requestParameters": {"inputLocation": "s3://<bucket>/input/<ds>/<set>.json", ...},
     "responseParameters": {"contentType": "application/dicom", "outputLocation": "s3://<bucket>/output/..."}}

This function reads the SEG the notification names (``seg_reader``: UIDs, model name and version, per-label volumes)
and writes one JSON line to ``results_layout.record_key(model name, model version, completion date, image set)`` in
the inference bucket, which the Glue table ``results`` (stacks/inference/results_table.py) reads. Only results of
requests the automatic flow or the backfill wrote (``input/<datastoreId>/<imageSetId>.json``) are indexed; others
(a CLI run, a JSON answer) are ignored. Writing is idempotent: a retried notification rewrites the same record.
It is its own function on the success topic, beside (never inside) the SEG's write-back to HealthImaging.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import cache
from typing import Any, ClassVar

import boto3

# Beside this module in the function's asset (stacks/components/function_shared, and seg_reader from this folder).
from function_settings import EnvironmentSettings
from results_layout import record_key
from s3_uri import parse_s3_uri
from seg_reader import SegReadError, read_seg

ENV_INFERENCE_BUCKET = "INFERENCE_BUCKET"
ENV_RESULTS_PREFIX = "RESULTS_PREFIX"

COMPLETED = "Completed"
# The request key request_inference and the backfill write (the data stack's INFERENCE_INPUT_PREFIX).
_REQUEST_KEY = re.compile(r"^input/(?P<datastore>[0-9a-z]{32})/(?P<image_set>[0-9a-z]{32})\.json$")
DICOM_MAGIC = b"DICM"
# The Glue table's columns, in its order (stacks/inference/results_table.py builds the table from this list; the
# partition keys model_name, model_version and result_date live in the key, not in the record).
RECORD_COLUMNS = (
    ("image_set_id", "string"),
    ("datastore_id", "string"),
    ("study_instance_uid", "string"),
    ("series_instance_uid", "string"),
    ("seg_series_instance_uid", "string"),
    ("seg_sop_instance_uid", "string"),
    ("label_volumes_ml", "map<string,double>"),
    ("inference_id", "string"),
    ("received_at", "string"),
    ("completed_at", "string"),
    ("inference_seconds", "double"),
    ("seg_location", "string"),
)


class NotificationError(ValueError):
    """The message is not a SageMaker async success notification."""


@dataclass(frozen=True)
class Settings(EnvironmentSettings):
    DEPLOYED_BY: ClassVar[str] = "inference"

    inference_bucket: str
    results_prefix: str


@dataclass(frozen=True)
class Result:
    inference_id: str
    datastore_id: str
    image_set_id: str
    output_bucket: str
    output_key: str
    received_at: datetime
    completed_at: datetime


def _time(document: dict[str, Any], name: str) -> datetime:
    value = document.get(name)
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError as error:
        raise NotificationError(f"notification {name} {value!r} is not an ISO 8601 time") from error
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_notification(message: str) -> Result | None:
    """The result a notification announces; ``None`` for one that is not ours or not a completed inference."""
    try:
        document = json.loads(message)
    except json.JSONDecodeError as error:
        raise NotificationError(f"notification is not JSON ({error})") from error
    if not isinstance(document, dict) or document.get("invocationStatus") != COMPLETED:
        return None
    _, input_key = parse_s3_uri((document.get("requestParameters") or {}).get("inputLocation"),
                                what="requestParameters.inputLocation", require_key=True)
    match = _REQUEST_KEY.match(input_key)
    if not match:
        return None
    bucket, key = parse_s3_uri((document.get("responseParameters") or {}).get("outputLocation"),
                               what="responseParameters.outputLocation", require_key=True)
    return Result(
        inference_id=str(document.get("inferenceId", "")),
        datastore_id=match["datastore"],
        image_set_id=match["image_set"],
        output_bucket=bucket,
        output_key=key,
        received_at=_time(document, "receivedTime"),
        completed_at=_time(document, "eventTime"),
    )


def build_record(result: Result, seg: bytes) -> tuple[str, str, date, dict[str, Any]]:
    """(model name, model version, result date, record) of one result; the record has exactly RECORD_COLUMNS."""
    summary = read_seg(seg)
    record = {
        "image_set_id": result.image_set_id,
        "datastore_id": result.datastore_id,
        "study_instance_uid": summary.study_instance_uid,
        "series_instance_uid": summary.source_series_instance_uid,
        "seg_series_instance_uid": summary.seg_series_instance_uid,
        "seg_sop_instance_uid": summary.seg_sop_instance_uid,
        "label_volumes_ml": summary.label_volumes_ml,
        "inference_id": result.inference_id,
        "received_at": result.received_at.isoformat(),
        "completed_at": result.completed_at.isoformat(),
        "inference_seconds": round((result.completed_at - result.received_at).total_seconds(), 3),
        "seg_location": f"s3://{result.output_bucket}/{result.output_key}",
    }
    return summary.model_name, summary.model_version, result.completed_at.date(), record


def index_result(*, s3: Any, settings: Settings, result: Result) -> dict[str, Any]:
    if result.output_bucket != settings.inference_bucket:
        return {"status": "IGNORED", "reason": f"output in s3://{result.output_bucket}, not the inference bucket"}
    seg = s3.get_object(Bucket=result.output_bucket, Key=result.output_key)["Body"].read()
    if seg[128:132] != DICOM_MAGIC:
        return {"status": "IGNORED", "reason": f"s3://{result.output_bucket}/{result.output_key} is not a SEG"}
    try:
        model_name, model_version, day, record = build_record(result, seg)
        key = record_key(model_name, model_version, day, result.image_set_id, prefix=settings.results_prefix)
    except (SegReadError, ValueError) as error:
        # Retrying cannot change the file: the dead-letter queue keeps the notification with the reason.
        raise SegReadError(f"s3://{result.output_bucket}/{result.output_key} cannot be indexed: {error}") from error
    s3.put_object(Bucket=settings.inference_bucket, Key=key, Body=(json.dumps(record) + "\n").encode(),
                  ContentType="application/x-ndjson")  # fmt: skip
    return {"status": "INDEXED", "imageSetId": result.image_set_id, "key": key}


@cache
def _s3() -> Any:
    return boto3.client("s3")  # on first use, never at import


@cache
def _settings() -> Settings:
    return Settings.from_environment()


def handle(event: dict[str, Any], *, s3: Any, settings: Settings) -> list[dict[str, Any]]:
    """An SNS event (one record per notification): index each completed result of ours."""
    outcomes = []
    for record in event.get("Records", []):
        result = parse_notification(record["Sns"]["Message"])
        if result is None:
            outcomes.append({"status": "IGNORED", "reason": "not a completed inference of the platform's flow"})
            continue
        outcomes.append(index_result(s3=s3, settings=settings, result=result))
    return outcomes


def handler(event: dict[str, Any], context: Any) -> list[dict[str, Any]]:
    return handle(event, s3=_s3(), settings=_settings())
