"""Request a segmentation from the async endpoint when HealthImaging creates an image set in our data store.

EventBridge "Image Set Created" (filtered to the platform's data store) -> this function:

1. skips image sets that the model cannot segment (modality not in MODALITIES, e.g. the SEG image sets
   that importing results back creates: without this check every import would request a new inference);
2. claims ``input/<datastoreId>/<imageSetId>.invocation.json`` with a conditional put (If-None-Match: *);
3. writes the request ``input/<datastoreId>/<imageSetId>.json`` = ``{"datastoreId": ..., "imageSetId": ...}``;
4. calls InvokeEndpointAsync with ``Accept: application/dicom`` (the container returns the SEG bytes, which
   SageMaker writes to ``output/<datastoreId>/<imageSetId>/seg.dcm``) and InferenceId = the image set ID;
5. records the inference ID and output location in the claim.

Idempotency: SageMaker does not deduplicate InvokeEndpointAsync by InferenceId (the ID only labels the
request), so the claim object is the guard. A retried or duplicated event finds the claim and returns
DUPLICATE without invoking; a claim left by an invocation that died mid-way (older than STALE_CLAIM_SECONDS)
is taken over with If-Match on its ETag, so exactly one retry proceeds. AWS errors raise, so EventBridge and
Lambda retry, and the event finally lands in the dead-letter queue.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any, ClassVar

import boto3
from botocore.exceptions import ClientError

# Beside this module in the function's asset (stacks/components/function_shared).
from function_settings import EnvironmentSettings

ENV_ENDPOINT_NAME = "ENDPOINT_NAME"
ENV_BUCKET = "INFERENCE_BUCKET"
ENV_INPUT_PREFIX = "INPUT_PREFIX"
ENV_DATASTORE_ID = "DATASTORE_ID"

# The spleen model is a CT model (DESIGN.md, model contract).
MODALITIES = ("CT",)
REQUEST_CONTENT_TYPE = "application/json"
# The container returns the DICOM SEG itself for this Accept type (model_code/core/requests.py).
RESPONSE_ACCEPT = "application/dicom"
SEG_FILENAME = "seg.dcm"
# Longer than the function's timeout (60 s) with margin: a claim this old belongs to a dead invocation. Shorter
# than Lambda's first asynchronous retry (about a minute after a failure, the second about two minutes later),
# so the retry of a timed-out invocation takes the claim over instead of landing in the dead-letter queue.
STALE_CLAIM_SECONDS = 90
CLAIMED, INVOKED = "CLAIMED", "INVOKED"
# HealthImaging IDs (botocore service model): 32 characters of [0-9a-z].
_ID = re.compile(r"^[0-9a-z]{32}$")
# AWS's sources disagree on the detail's image set field: the developer guide's sample "Image Set Created" event
# writes imagesetId, the EventBridge schema (CDK's generated event classes) imageSetId. Both are read.
IMAGE_SET_ID_FIELDS = ("imageSetId", "imagesetId")


class ClaimInProgressError(RuntimeError):
    """Another invocation holds a fresh claim for this image set; raised so the event is retried later."""


@dataclass(frozen=True)
class Settings(EnvironmentSettings):
    DEPLOYED_BY: ClassVar[str] = "inference"

    endpoint_name: str
    inference_bucket: str
    input_prefix: str
    datastore_id: str


@dataclass(frozen=True)
class ImageSetRef:
    datastore_id: str
    image_set_id: str


def image_set_from_event(event: dict[str, Any]) -> ImageSetRef:
    detail = event.get("detail") or {}
    spellings = {str(detail[name]) for name in IMAGE_SET_ID_FIELDS if name in detail}
    if len(spellings) > 1:
        raise ValueError(f"event detail names two image sets ({' and '.join(IMAGE_SET_ID_FIELDS)}): "
                         f"{sorted(spellings)}")
    ref = ImageSetRef(datastore_id=str(detail.get("datastoreId", "")), image_set_id=next(iter(spellings), ""))
    for name, value in (("datastoreId", ref.datastore_id), ("imageSetId", ref.image_set_id)):
        if not _ID.match(value):
            raise ValueError(f"event detail {name} {value!r} is not a HealthImaging ID (32 of [0-9a-z])")
    return ref


def request_key(prefix: str, ref: ImageSetRef) -> str:
    """Deterministic: a retried event rewrites the same request object."""
    return f"{prefix}{ref.datastore_id}/{ref.image_set_id}.json"


def claim_key(prefix: str, ref: ImageSetRef) -> str:
    return f"{prefix}{ref.datastore_id}/{ref.image_set_id}.invocation.json"


def output_extension(ref: ImageSetRef) -> str:
    """Appended by SageMaker to the endpoint's S3 output path: ``output/<datastore>/<imageSet>/seg.dcm``."""
    return f"{ref.datastore_id}/{ref.image_set_id}"


def modalities(metadata: dict[str, Any]) -> set[str]:
    """The DICOM modalities of an image set's series (GetImageSetMetadata's Study.Series.<uid>.DICOM)."""
    series = (metadata.get("Study") or {}).get("Series") or {}
    return {str((s.get("DICOM") or {}).get("Modality", "")) for s in series.values() if isinstance(s, dict)}


def read_metadata(medical_imaging: Any, ref: ImageSetRef) -> dict[str, Any]:
    response = medical_imaging.get_image_set_metadata(datastoreId=ref.datastore_id, imageSetId=ref.image_set_id)
    blob = response["imageSetMetadataBlob"].read()
    # The service returns the document gzip-compressed (contentEncoding "gzip").
    if response.get("contentEncoding") == "gzip" or blob[:2] == b"\x1f\x8b":
        blob = gzip.decompress(blob)
    return dict(json.loads(blob))


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def claim(s3: Any, *, bucket: str, key: str, now: datetime) -> dict[str, Any] | None:
    """Take the invocation claim; ``None`` when an earlier invocation already invoked (the event is a duplicate)."""
    body = json.dumps({"status": CLAIMED, "claimedAt": now.isoformat()}).encode()
    try:
        s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json", IfNoneMatch="*")
        return {"status": CLAIMED}
    except ClientError as error:
        # 412: the claim exists; 409: a concurrent conditional write to the same key won the race.
        if _error_code(error) not in ("PreconditionFailed", "ConditionalRequestConflict", "409", "412"):
            raise
    existing = s3.get_object(Bucket=bucket, Key=key)
    record = json.loads(existing["Body"].read())
    if record.get("status") == INVOKED:
        return None
    age = (now - existing["LastModified"]).total_seconds()
    if age < STALE_CLAIM_SECONDS:
        raise ClaimInProgressError(
            f"s3://{bucket}/{key} was claimed {age:.0f} s ago by another invocation: retrying later"
        )
    # The claimant died between claim and invoke; If-Match lets exactly one retry take the claim over.
    s3.put_object(
        Bucket=bucket, Key=key, Body=body, ContentType="application/json", IfMatch=existing["ETag"]
    )
    return {"status": CLAIMED, "tookOverFrom": record.get("claimedAt")}


def request_inference(
    *, s3: Any, sagemaker_runtime: Any, medical_imaging: Any, settings: Settings, ref: ImageSetRef, now: datetime
) -> dict[str, Any]:
    found = modalities(read_metadata(medical_imaging, ref))
    if not found & set(MODALITIES):
        return {"status": "SKIPPED", "imageSetId": ref.image_set_id, "reason": f"modalities {sorted(found)}"}

    bucket, prefix = settings.inference_bucket, settings.input_prefix
    marker = claim_key(prefix, ref)
    if claim(s3, bucket=bucket, key=marker, now=now) is None:
        return {"status": "DUPLICATE", "imageSetId": ref.image_set_id}

    key = request_key(prefix, ref)
    try:
        s3.put_object(
            Bucket=bucket,
            Key=key,
            Body=json.dumps({"datastoreId": ref.datastore_id, "imageSetId": ref.image_set_id}).encode(),
            ContentType=REQUEST_CONTENT_TYPE,
        )
        response = sagemaker_runtime.invoke_endpoint_async(
            EndpointName=settings.endpoint_name,
            InputLocation=f"s3://{bucket}/{key}",
            ContentType=REQUEST_CONTENT_TYPE,
            Accept=RESPONSE_ACCEPT,
            InferenceId=ref.image_set_id,
            S3OutputPathExtension=output_extension(ref),
            Filename=SEG_FILENAME,
        )
    except Exception:
        # Release the claim so the retry of this event can invoke; the original error is what matters.
        with contextlib.suppress(ClientError):
            s3.delete_object(Bucket=bucket, Key=marker)
        raise
    result = {
        "status": INVOKED,
        "datastoreId": ref.datastore_id,
        "imageSetId": ref.image_set_id,
        "inferenceId": response["InferenceId"],
        "inputLocation": f"s3://{bucket}/{key}",
        "outputLocation": response.get("OutputLocation"),
        "invokedAt": now.isoformat(),
    }
    s3.put_object(Bucket=bucket, Key=marker, Body=json.dumps(result).encode(), ContentType="application/json")
    return result


@cache
def _clients() -> tuple[Any, Any, Any]:
    # Created on first use, never at import: tests and cold starts without credentials import this module.
    return boto3.client("s3"), boto3.client("sagemaker-runtime"), boto3.client("medical-imaging")


@cache
def _settings() -> Settings:
    return Settings.from_environment()


def handle(
    event: dict[str, Any], *, s3: Any, sagemaker_runtime: Any, medical_imaging: Any, settings: Settings
) -> dict[str, Any]:
    """An "Image Set Created" event: request its segmentation once."""
    ref = image_set_from_event(event)
    if ref.datastore_id != settings.datastore_id:
        # The rule already filters on the data store; a foreign event is dropped rather than retried.
        return {"status": "IGNORED", "imageSetId": ref.image_set_id, "reason": f"data store {ref.datastore_id}"}
    return request_inference(
        s3=s3,
        sagemaker_runtime=sagemaker_runtime,
        medical_imaging=medical_imaging,
        settings=settings,
        ref=ref,
        now=datetime.now(UTC),
    )


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    s3, sagemaker_runtime, medical_imaging = _clients()
    return handle(
        event, s3=s3, sagemaker_runtime=sagemaker_runtime, medical_imaging=medical_imaging, settings=_settings()
    )
