"""The backfill's item logic: which image sets of an archive to segment, and submitting them without flooding.

The backfill's Lambdas run it (the state machine in stacks/backfill/ only sequences them):

* :func:`list_image_sets` pages through ``SearchImageSets`` under a :class:`Selection` (a study-date range and a
  searchable DICOM attribute go to the service; the modality, which the service cannot search on, is matched on
  each summary's ``DICOMSeriesModality``), at the pace :mod:`healthimaging_quotas` allows. Throttling and 5xx
  answers are retried by botocore's own retry handler; when its attempts run out the listing returns what it has
  with the token to continue from, so no page is lost and none is read twice.
* :func:`pending` drops the image sets that already have a result of the model version (the results index,
  ``results_layout``) and those an earlier run submitted and whose result has not arrived (their claims).
* :func:`submit_batch` sends at most ``room`` items to the async endpoint, where ``room`` is what keeps the
  endpoint's backlog (CloudWatch ``ApproximateBacklogSize``, :func:`read_backlog`) near the configured target;
  the rest come back deferred for the state machine's backlog-wait loop. A failed item lands in the failure path
  with its reason and whether a retry can help; :func:`failed_items` reads them back to retry them alone.

Every S3 object the backfill writes is keyed by model name and version, so re-running the same backfill resumes:
finished and in-flight items are skipped, failed ones wait for ``retry-failed``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError
from healthimaging_quotas import Pacer
from results_layout import RESULTS_PREFIX, image_set_of, model_prefix

# SearchImageSets filters (botocore's medical-imaging model, SearchByAttributeValue): the attributes the
# service searches with EQUAL. The study date range uses DICOMStudyDateAndTime with BETWEEN.
SEARCHABLE_ATTRIBUTES = (
    "DICOMPatientId",
    "DICOMAccessionNumber",
    "DICOMStudyId",
    "DICOMStudyInstanceUID",
    "DICOMSeriesInstanceUID",
)
SEARCH_PAGE_SIZE = 50  # the service's maximum (maxResults 1..50)
_DICOM_DATE = re.compile(r"^\d{8}$")  # DA: YYYYMMDD
_MODALITY = re.compile(r"^[A-Z0-9_]{1,16}$")  # CS, the defined terms of (0008,0060)
_ID = re.compile(r"^[0-9a-z]{32}$")
# Errors a later attempt can clear (HealthImaging and SageMaker runtime error codes, their API references).
RETRYABLE_CODES = frozenset(
    {
        "ThrottlingException", "InternalServerException", "ServiceUnavailableException",  # HealthImaging
        "InternalFailure", "ServiceUnavailable", "ModelNotReadyException",  # SageMaker (and ThrottlingException)
        "SlowDown", "InternalError", "RequestTimeout",  # S3
    }
)  # fmt: skip
CLAIMED, INVOKED = "CLAIMED", "INVOKED"
# Longer than the submit function's timeout (5 minutes) with margin: a CLAIMED claim this old has no live owner.
STALE_CLAIM = timedelta(minutes=10)
_TAKEN = ("PreconditionFailed", "ConditionalRequestConflict", "409", "412")
REQUEST_PREFIX = "input/"  # where request_inference writes requests: import_seg and the index read them there
BACKFILL_PREFIX = "backfill/"
REQUEST_CONTENT_TYPE = "application/json"
RESPONSE_ACCEPT = "application/dicom"  # the SEG itself (model_code/core/requests.py)
SEG_FILENAME = "seg.dcm"
# ApproximateBacklogSize is a 1-minute metric; the newest point of the last few minutes is the backlog now.
BACKLOG_METRIC = ("AWS/SageMaker", "ApproximateBacklogSize")
BACKLOG_LOOKBACK = timedelta(minutes=5)


class BackfillInputError(ValueError):
    """A backfill input that cannot run: the message names the key and what to send instead (an HTTP 400)."""

    status = 400


@dataclass(frozen=True)
class Selection:
    """Which image sets a backfill covers; every field optional (all image sets of the data store)."""

    modality: str | None = None
    study_date_from: str | None = None  # DICOM DA, inclusive
    study_date_to: str | None = None
    attribute: str | None = None  # one of SEARCHABLE_ATTRIBUTES
    value: str | None = None

    @classmethod
    def from_input(cls, document: Mapping[str, Any] | None) -> Selection:
        """``{"modality": "CT", "studyDateFrom": "20200101", "studyDateTo": "20201231",
        "attribute": {"name": "DICOMAccessionNumber", "value": "A123"}}``, each key optional."""
        document = dict(document or {})
        unknown = set(document) - {"modality", "studyDateFrom", "studyDateTo", "attribute"}
        if unknown:
            raise BackfillInputError(
                f"filter has unknown keys {sorted(unknown)}: use modality, studyDateFrom, studyDateTo, attribute"
            )
        modality = document.get("modality")
        if modality is not None and not (isinstance(modality, str) and _MODALITY.match(modality)):
            raise BackfillInputError(f"filter.modality {modality!r} is not a DICOM modality code such as 'CT'")
        dates = {}
        for key in ("studyDateFrom", "studyDateTo"):
            value = document.get(key)
            if value is not None and not (isinstance(value, str) and _DICOM_DATE.match(value) and _valid_date(value)):
                raise BackfillInputError(f"filter.{key} {value!r} is not a date written YYYYMMDD")
            dates[key] = value
        start, end = dates["studyDateFrom"], dates["studyDateTo"]
        if (start is None) != (end is None):
            raise BackfillInputError("filter needs both studyDateFrom and studyDateTo for a date range, or neither")
        if start is not None and end is not None and start > end:
            raise BackfillInputError(f"filter.studyDateFrom {start} is after filter.studyDateTo {end}")
        attribute = document.get("attribute")
        name = value = None
        if attribute is not None:
            if not isinstance(attribute, dict) or set(attribute) != {"name", "value"}:
                raise BackfillInputError('filter.attribute must be {"name": ..., "value": ...}')
            name, value = attribute["name"], attribute["value"]
            if name not in SEARCHABLE_ATTRIBUTES:
                raise BackfillInputError(
                    f"filter.attribute.name {name!r} is not searchable: use one of {list(SEARCHABLE_ATTRIBUTES)}"
                )
            if not isinstance(value, str) or not 1 <= len(value) <= 512:
                raise BackfillInputError("filter.attribute.value must be text of 1-512 characters")
        return cls(modality=modality, study_date_from=start, study_date_to=end, attribute=name, value=value)

    def to_input(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.modality:
            out["modality"] = self.modality
        if self.study_date_from and self.study_date_to:
            out["studyDateFrom"], out["studyDateTo"] = self.study_date_from, self.study_date_to
        if self.attribute:
            out["attribute"] = {"name": self.attribute, "value": self.value}
        return out

    def search_criteria(self) -> dict[str, Any] | None:
        """SearchImageSets' ``searchCriteria`` (at most two filters, the service's limit), or None for all."""
        filters: list[dict[str, Any]] = []
        if self.study_date_from and self.study_date_to:
            filters.append(
                {
                    "operator": "BETWEEN",
                    "values": [
                        {"DICOMStudyDateAndTime": {"DICOMStudyDate": self.study_date_from, "DICOMStudyTime": "000000"}},
                        {"DICOMStudyDateAndTime": {"DICOMStudyDate": self.study_date_to, "DICOMStudyTime": "235959"}},
                    ],
                }
            )
        if self.attribute:
            filters.append({"operator": "EQUAL", "values": [{self.attribute: self.value}]})
        return {"filters": filters} if filters else None

    def accepts(self, summary: Mapping[str, Any]) -> bool:
        """The part of the filter the service cannot search on: the series modality of the summary."""
        if self.modality is None:
            return True
        return str((summary.get("DICOMTags") or {}).get("DICOMSeriesModality", "")) == self.modality


def _valid_date(value: str) -> bool:
    try:
        datetime.strptime(value, "%Y%m%d")
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class ImageSetItem:
    """One image set to segment: what the Distributed Map carries per item (small: 256 KiB per batch)."""

    image_set_id: str
    study_instance_uid: str = ""
    series_instance_uid: str = ""
    modality: str = ""
    study_date: str = ""

    @classmethod
    def from_summary(cls, summary: Mapping[str, Any]) -> ImageSetItem:
        tags = summary.get("DICOMTags") or {}
        return cls(
            image_set_id=str(summary["imageSetId"]),
            study_instance_uid=str(tags.get("DICOMStudyInstanceUID", "")),
            series_instance_uid=str(tags.get("DICOMSeriesInstanceUID", "")),
            modality=str(tags.get("DICOMSeriesModality", "")),
            study_date=str(tags.get("DICOMStudyDate", "")),
        )

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> ImageSetItem:
        image_set_id = str(document.get("imageSetId", ""))
        if not _ID.match(image_set_id):
            raise BackfillInputError(f"item imageSetId {image_set_id!r} is not a HealthImaging ID (32 of [0-9a-z])")
        return cls(
            image_set_id=image_set_id,
            study_instance_uid=str(document.get("studyInstanceUid", "")),
            series_instance_uid=str(document.get("seriesInstanceUid", "")),
            modality=str(document.get("modality", "")),
            study_date=str(document.get("studyDate", "")),
        )

    def to_json(self) -> dict[str, str]:
        return {
            "imageSetId": self.image_set_id,
            "studyInstanceUid": self.study_instance_uid,
            "seriesInstanceUid": self.series_instance_uid,
            "modality": self.modality,
            "studyDate": self.study_date,
        }


@dataclass
class Listing:
    """One listing call's outcome: the matching items, where to continue, and what it saw."""

    items: list[ImageSetItem] = field(default_factory=list)
    next_token: str | None = None
    pages: int = 0
    scanned: int = 0  # summaries the service returned, before the modality match
    interrupted_by: str | None = None  # the error code that stopped it early (retry from next_token)

    @property
    def complete(self) -> bool:
        return self.next_token is None and self.interrupted_by is None


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def list_image_sets(
    medical_imaging: Any,
    datastore_id: str,
    selection: Selection,
    *,
    pacer: Pacer,
    next_token: str | None = None,
    max_pages: int | None = None,
) -> Listing:
    """Page through SearchImageSets from ``next_token``: all pages, or ``max_pages`` of them (a Lambda's share).

    Each page waits for the pacer first. A retryable error that outlived botocore's retries ends the listing with
    ``interrupted_by`` and the token of the page that failed: calling again from it loses and repeats nothing.
    """
    listing = Listing(next_token=next_token)
    criteria = selection.search_criteria()
    while max_pages is None or listing.pages < max_pages:
        request: dict[str, Any] = {"datastoreId": datastore_id, "maxResults": SEARCH_PAGE_SIZE}
        if criteria is not None:
            request["searchCriteria"] = criteria
        if listing.next_token is not None:
            request["nextToken"] = listing.next_token
        pacer.acquire()
        try:
            page = medical_imaging.search_image_sets(**request)
        except ClientError as error:
            if error_code(error) not in RETRYABLE_CODES:
                raise
            listing.interrupted_by = error_code(error)
            return listing
        listing.pages += 1
        summaries = page.get("imageSetsMetadataSummaries", [])
        listing.scanned += len(summaries)
        listing.items.extend(ImageSetItem.from_summary(s) for s in summaries if selection.accepts(s))
        listing.next_token = page.get("nextToken")
        if listing.next_token is None:
            break
    return listing


@dataclass(frozen=True)
class Run:
    """One backfill: a data store, a model version, the endpoint that serves it, and the bucket it writes to."""

    datastore_id: str
    model_name: str
    model_version: str
    endpoint_name: str
    bucket: str  # the inference bucket: requests, claims, failures and the results index
    results_prefix: str = RESULTS_PREFIX

    def __post_init__(self) -> None:
        if not _ID.match(self.datastore_id):
            raise BackfillInputError(f"datastoreId {self.datastore_id!r} is not a HealthImaging ID (32 of [0-9a-z])")
        try:
            model_prefix(self.model_name, self.model_version)
        except ValueError as error:
            raise BackfillInputError(str(error)) from error

    @property
    def _scope(self) -> str:
        return f"{BACKFILL_PREFIX}model_name={self.model_name}/model_version={self.model_version}/"

    @property
    def claims_prefix(self) -> str:
        return f"{self._scope}claims/{self.datastore_id}/"

    @property
    def failures_prefix(self) -> str:
        return f"{self._scope}failures/{self.datastore_id}/"

    def claim_key(self, image_set_id: str) -> str:
        return f"{self.claims_prefix}{image_set_id}.json"

    def failure_key(self, image_set_id: str) -> str:
        return f"{self.failures_prefix}{image_set_id}.json"

    def request_key(self, image_set_id: str) -> str:
        """The live flow's request key: the body is the same, and import_seg and the index know it."""
        return f"{REQUEST_PREFIX}{self.datastore_id}/{image_set_id}.json"

    def output_extension(self, image_set_id: str) -> str:
        """Under the endpoint's output path, one folder per model version: a rerun never overwrites a SEG."""
        return f"{self.datastore_id}/{image_set_id}/{self.model_name}-{self.model_version}"


def _keys(s3: Any, bucket: str, prefix: str) -> Iterator[str]:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for entry in page.get("Contents", []):
            yield str(entry["Key"])


def _ids_under(s3: Any, bucket: str, prefix: str) -> set[str]:
    return {image_set for key in _keys(s3, bucket, prefix) if (image_set := image_set_of(key)) is not None}


def finished_image_sets(s3: Any, run: Run) -> set[str]:
    """Image sets with a result of this model version in the results index (any date partition)."""
    return _ids_under(s3, run.bucket, model_prefix(run.model_name, run.model_version, prefix=run.results_prefix))


def claimed_image_sets(s3: Any, run: Run) -> set[str]:
    """Image sets an earlier run of this model version submitted (in flight, or finished since)."""
    return _ids_under(s3, run.bucket, run.claims_prefix)


def failed_image_sets(s3: Any, run: Run) -> set[str]:
    return _ids_under(s3, run.bucket, run.failures_prefix)


@dataclass(frozen=True)
class Plan:
    pending: list[ImageSetItem]
    finished: int  # already have a result of the model version
    in_flight: int  # submitted by an earlier run, result not yet indexed
    failed: int  # in the failure path: retried by retry-failed, not by a rerun


def pending(s3: Any, run: Run, items: Iterable[ImageSetItem]) -> Plan:
    """What a (re-)run still has to submit, in listing order, each image set once."""
    finished = finished_image_sets(s3, run)
    claimed = claimed_image_sets(s3, run) - finished
    failed = failed_image_sets(s3, run) - finished
    seen: set[str] = set()
    todo: list[ImageSetItem] = []
    counts = {"finished": 0, "in_flight": 0, "failed": 0}
    for item in items:
        if item.image_set_id in seen:
            continue
        seen.add(item.image_set_id)
        if item.image_set_id in finished:
            counts["finished"] += 1
        elif item.image_set_id in failed:
            counts["failed"] += 1
        elif item.image_set_id in claimed:
            counts["in_flight"] += 1
        else:
            todo.append(item)
    return Plan(pending=todo, **counts)


def read_backlog(cloudwatch: Any, endpoint_name: str, *, now: datetime) -> float:
    """The endpoint's async backlog now: the newest ApproximateBacklogSize point of the last minutes, 0 without one
    (SageMaker publishes nothing while the endpoint has never had a request)."""
    namespace, metric = BACKLOG_METRIC
    answer = cloudwatch.get_metric_data(
        MetricDataQueries=[
            {
                "Id": "backlog",
                "MetricStat": {
                    "Metric": {
                        "Namespace": namespace,
                        "MetricName": metric,
                        "Dimensions": [{"Name": "EndpointName", "Value": endpoint_name}],
                    },
                    "Period": 60,
                    "Stat": "Maximum",
                },
                "ReturnData": True,
            }
        ],
        StartTime=now - BACKLOG_LOOKBACK,
        EndTime=now,
        ScanBy="TimestampDescending",
    )
    for result in answer.get("MetricDataResults", []):
        values = result.get("Values") or []
        if values:
            return float(values[0])
    return 0.0


def room(backlog: float, target: int, workers: int) -> int:
    """How many requests one of ``workers`` concurrent submitters may add: its share of the gap to the target."""
    if target < 1 or workers < 1:
        raise BackfillInputError(f"backlog target and workers must be >= 1, got {target} and {workers}")
    return max(0, math.ceil((target - backlog) / workers))


@dataclass
class BatchOutcome:
    submitted: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # claimed by an earlier run
    deferred: list[ImageSetItem] = field(default_factory=list)  # over the room: for the backlog-wait loop
    failed: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "submitted": len(self.submitted),
            "skipped": len(self.skipped),
            "failed": len(self.failed),
            "deferred": [item.to_json() for item in self.deferred],
            "failures": self.failed,
        }


def _put_json(s3: Any, bucket: str, key: str, document: Mapping[str, Any], **extra: Any) -> None:
    s3.put_object(
        Bucket=bucket, Key=key, Body=json.dumps(document).encode(), ContentType="application/json", **extra
    )


def _claim(s3: Any, run: Run, item: ImageSetItem, now: datetime) -> bool:
    """Take this model version's claim on the image set; False when an earlier run holds it.

    A claim still CLAIMED after STALE_CLAIM belongs to a submitter that died between claim and invoke (the function
    times out after 5 minutes): it is taken over with If-Match on its ETag, so exactly one submitter proceeds.
    """
    body = {"status": CLAIMED, "claimedAt": now.isoformat(), "item": item.to_json()}
    key = run.claim_key(item.image_set_id)
    try:
        _put_json(s3, run.bucket, key, body, IfNoneMatch="*")
        return True
    except ClientError as error:
        # 412: the claim exists; 409: a concurrent conditional write to the same key won the race.
        if error_code(error) not in _TAKEN:
            raise
    existing = s3.get_object(Bucket=run.bucket, Key=key)
    record = json.loads(existing["Body"].read())
    if record.get("status") != CLAIMED or now - existing["LastModified"] < STALE_CLAIM:
        return False
    try:
        _put_json(s3, run.bucket, key, {**body, "tookOverFrom": record.get("claimedAt")}, IfMatch=existing["ETag"])
    except ClientError as error:
        if error_code(error) in _TAKEN:
            return False  # another submitter took it over first
        raise
    return True


def record_failure(s3: Any, run: Run, item: ImageSetItem, error: Exception, now: datetime) -> dict[str, Any]:
    """The failure path: one object per failed item, with the reason and whether a retry can help."""
    code = error_code(error) if isinstance(error, ClientError) else type(error).__name__
    failure = {
        "imageSetId": item.image_set_id,
        "code": code,
        "reason": str(error),
        "retryable": code in RETRYABLE_CODES,
        "failedAt": now.isoformat(),
        "item": item.to_json(),
    }
    _put_json(s3, run.bucket, run.failure_key(item.image_set_id), failure)
    return failure


def _submit(s3: Any, sagemaker_runtime: Any, run: Run, item: ImageSetItem, now: datetime) -> dict[str, Any]:
    key = run.request_key(item.image_set_id)
    _put_json(s3, run.bucket, key, {"datastoreId": run.datastore_id, "imageSetId": item.image_set_id})
    response = sagemaker_runtime.invoke_endpoint_async(
        EndpointName=run.endpoint_name,
        InputLocation=f"s3://{run.bucket}/{key}",
        ContentType=REQUEST_CONTENT_TYPE,
        Accept=RESPONSE_ACCEPT,
        InferenceId=item.image_set_id,
        S3OutputPathExtension=run.output_extension(item.image_set_id),
        Filename=SEG_FILENAME,
    )
    return {
        "status": INVOKED,
        "imageSetId": item.image_set_id,
        "inferenceId": response["InferenceId"],
        "outputLocation": response.get("OutputLocation"),
        "invokedAt": now.isoformat(),
        "item": item.to_json(),
    }


def submit_batch(
    items: Iterable[ImageSetItem], *, s3: Any, sagemaker_runtime: Any, run: Run, room: int, now: datetime
) -> BatchOutcome:
    """Submit up to ``room`` items (claim, request, InvokeEndpointAsync); the rest come back deferred."""
    outcome = BatchOutcome()
    for item in items:
        if len(outcome.submitted) >= room:
            outcome.deferred.append(item)
            continue
        if not _claim(s3, run, item, now):
            outcome.skipped.append(item.image_set_id)
            continue
        try:
            invoked = _submit(s3, sagemaker_runtime, run, item, now)
        except ClientError as error:
            # The claim goes, the failure record stays: a rerun skips the item, retry-failed takes it.
            s3.delete_object(Bucket=run.bucket, Key=run.claim_key(item.image_set_id))
            outcome.failed.append(record_failure(s3, run, item, error, now))
            continue
        _put_json(s3, run.bucket, run.claim_key(item.image_set_id), invoked)
        outcome.submitted.append(invoked)
    return outcome


def failed_items(s3: Any, run: Run, *, retryable_only: bool = False) -> list[tuple[ImageSetItem, dict[str, Any]]]:
    """The failure path of this run: each failed item with its record, in key order."""
    out = []
    for key in sorted(_keys(s3, run.bucket, run.failures_prefix)):
        if image_set_of(key) is None:
            continue
        record = json.loads(s3.get_object(Bucket=run.bucket, Key=key)["Body"].read())
        if retryable_only and not record.get("retryable"):
            continue
        out.append((ImageSetItem.from_json(record["item"]), record))
    return out


def retry_failed(
    s3: Any, sagemaker_runtime: Any, run: Run, *, room: int, now: datetime, image_set_ids: Iterable[str] | None = None
) -> BatchOutcome:
    """Submit failed items again, alone (all of them, or those named): a success clears its failure record."""
    wanted = set(image_set_ids) if image_set_ids is not None else None
    chosen = [item for item, _ in failed_items(s3, run) if wanted is None or item.image_set_id in wanted]
    outcome = submit_batch(chosen, s3=s3, sagemaker_runtime=sagemaker_runtime, run=run, room=room, now=now)
    for invoked in outcome.submitted:
        s3.delete_object(Bucket=run.bucket, Key=run.failure_key(invoked["imageSetId"]))
    return outcome


def utc_now() -> datetime:
    return datetime.now(UTC)



