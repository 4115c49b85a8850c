"""Store a finished segmentation (DICOM SEG) back into HealthImaging, into the study it was made from.

Deployed only when ``serving.importSegBack`` is true. SageMaker publishes each successful async inference on
the endpoint's success topic; SNS invokes this function with that notification (the documented format):

    {"invocationStatus": "Completed", "inferenceId": "...", "eventName": "InferenceResult",
     "requestParameters": {"endpointName": "...", "inputLocation": "s3://<bucket>/input/<ds>/<set>.json", ...},
     "responseParameters": {"contentType": "application/dicom", "outputLocation": "s3://<bucket>/output/..."}}

The SEG is checked (DICOM preamble) and stored with DICOMweb STOW-RS (``store_seg.py``: HealthImaging's
``StoreDICOM``, synchronous, SigV4-signed, read back before it counts as stored); the result JSON naming the stored
instance is written to ``<result prefix><datastoreId>/<imageSetId>.json`` in the inference bucket, then announced on
the results topic (``result_notice.py``: the stored UIDs, the model, the result JSON's URI and, with the viewer, its
deep link; at least once, like every SNS delivery). Only a SEG too
big for one STOW-RS request from this function (``STOW_IN_FUNCTION_MAX_BYTES``) takes the import-job path: copied
to ``incoming/inference-seg/<imageSetId>/seg.dcm`` in the DICOM inbox (the prefix the import role may read; no
manifest is written, so the batch-import rule ignores it) and imported with ``StartDICOMImportJob``, whose client
token is derived from the inference ID, so a retried notification never starts a second job. A store the service
rejects and AWS errors raise: SNS's asynchronous invocation retries (a repeated STOW-RS of the same SOP Instance
UID stores it once, the result JSON is rewritten and the notice published again), then the dead-letter queue, which
the monitoring stack alarms on. The import-job path publishes no notice: the SEG is not stored until the job ends.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, ClassVar

import boto3

# Beside this module in the function's asset (stacks/components/function_shared: the settings helper and the
# platform's one S3-URI parser, model_code/core/s3_uri.py).
from function_settings import EnvironmentSettings
from result_notice import ResultNotice, publish
from s3_uri import parse_s3_uri
from store_seg import StoredSeg, store_seg
from viewer_link import viewer_link

ENV_DATASTORE_ID = "DATASTORE_ID"
ENV_IMPORT_ROLE_ARN = "IMPORT_ROLE_ARN"
ENV_INBOX_BUCKET = "INBOX_BUCKET"
ENV_SEG_PREFIX = "SEG_IMPORT_PREFIX"
ENV_IMPORT_OUTPUT_BUCKET = "IMPORT_OUTPUT_BUCKET"
ENV_DICOMWEB_ENDPOINT = "DICOMWEB_ENDPOINT"
ENV_SIGNING_REGION = "SIGNING_REGION"
ENV_INFERENCE_BUCKET = "INFERENCE_BUCKET"
ENV_RESULT_PREFIX = "RESULT_PREFIX"
# The inference stack's results topic: each stored SEG is announced there.
ENV_RESULTS_TOPIC_ARN = "RESULTS_TOPIC_ARN"
# Set only when the viewer stack is enabled (viewer.enabled): the result then carries the SEG's deep link.
ENV_VIEWER_URL = "VIEWER_URL"
OPTIONAL_VARIABLES = (ENV_VIEWER_URL,)
# Above this the SEG goes through an import job: the function holds the SEG and its multipart copy in its 512 MB
# (StoreDICOM itself takes up to 1 GB a request). Spleen SEGs are a few MB.
STOW_IN_FUNCTION_MAX_BYTES = 200 * 1024 * 1024
RESULT_FILENAME_SUFFIX = ".json"

COMPLETED = "Completed"
# Where HealthImaging reports SEG imports in the import-output bucket: one folder per source image set.
IMPORT_OUTPUT_PREFIX = "inference-seg/"
SEG_FILENAME = "seg.dcm"
# A DICOM Part 10 file: 128-byte preamble, then "DICM".
DICOM_MAGIC_RANGE = "bytes=128-131"
DICOM_MAGIC = b"DICM"
# StartDICOMImportJob limits (botocore service model): clientToken 1-64 of [A-Za-z0-9._-], jobName 1-64.
CLIENT_TOKEN_LENGTH = 64
JOB_NAME_MAX = 64
# The request key written by request_inference: <input prefix><datastoreId>/<imageSetId>.json. Anchored on the
# whole key: the success topic carries every async result, and other requests (``monai-platform segment`` writes
# input/<datastoreId>/<imageSetId>/<32-hex id>.json) must not be read as an image set. The prefix is the data
# stack's INFERENCE_INPUT_PREFIX (a test keeps them equal).
REQUEST_PREFIX = "input/"
_REQUEST_KEY = re.compile(
    rf"^{re.escape(REQUEST_PREFIX)}(?P<datastore>[0-9a-z]{{32}})/(?P<image_set>[0-9a-z]{{32}})\.json$"
)


class NotificationError(ValueError):
    """The message is not a SageMaker async success notification this platform produced."""


class NotOurRequestError(ValueError):
    """A completed inference that the automatic flow did not request (a CLI run, a manual call): not imported."""


class NotDicomError(ValueError):
    """The inference output is not a DICOM file (e.g. the endpoint answered JSON): nothing to import."""


@dataclass(frozen=True)
class Settings(EnvironmentSettings):
    DEPLOYED_BY: ClassVar[str] = "inference"

    datastore_id: str
    import_role_arn: str
    inbox_bucket: str
    seg_import_prefix: str
    import_output_bucket: str
    # https://dicom-medical-imaging.<region>.amazonaws.com (through the DICOMweb VPC endpoint's private DNS)
    dicomweb_endpoint: str
    signing_region: str
    inference_bucket: str
    result_prefix: str
    results_topic_arn: str

    viewer_url: str = ""  # optional (ENV_VIEWER_URL): "" when the viewer is off

    @classmethod
    def variables(cls) -> dict[str, str]:
        return {name: variable for name, variable in super().variables().items() if name != "viewer_url"}

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        return dataclasses.replace(super().from_environment(env), viewer_url=env.get(ENV_VIEWER_URL, ""))

    @property
    def dicomweb_root(self) -> str:
        return f"{self.dicomweb_endpoint.rstrip('/')}/datastore/{self.datastore_id}"


@dataclass(frozen=True)
class Result:
    inference_id: str
    datastore_id: str
    image_set_id: str
    output_bucket: str
    output_key: str


def object_location(uri: Any, *, what: str) -> tuple[str, str]:
    """(bucket, key) of the object a notification names at ``what``."""
    try:
        return parse_s3_uri(uri, what=what, require_key=True)
    except ValueError as error:
        raise NotificationError(str(error)) from error


def parse_notification(message: str) -> Result | None:
    """The result a success notification announces; ``None`` for a notification that is not a success."""
    try:
        document = json.loads(message)
    except json.JSONDecodeError as error:
        raise NotificationError(f"notification is not JSON ({error})") from error
    if not isinstance(document, dict):
        raise NotificationError("notification is not a JSON object")
    if document.get("invocationStatus") != COMPLETED:
        return None
    inference_id = document.get("inferenceId")
    if not isinstance(inference_id, str) or not inference_id:
        raise NotificationError("notification has no inferenceId")
    _, input_key = object_location(
        (document.get("requestParameters") or {}).get("inputLocation"), what="requestParameters.inputLocation"
    )
    match = _REQUEST_KEY.match(input_key)
    if not match:
        raise NotOurRequestError(
            f"request {input_key!r} was not written by the inference flow "
            f"({REQUEST_PREFIX}<datastoreId>/<imageSetId>.json)"
        )
    bucket, key = object_location(
        (document.get("responseParameters") or {}).get("outputLocation"), what="responseParameters.outputLocation"
    )
    return Result(
        inference_id=inference_id,
        datastore_id=match["datastore"],
        image_set_id=match["image_set"],
        output_bucket=bucket,
        output_key=key,
    )


def client_token(result: Result) -> str:
    """Deterministic per inference: a retried notification reuses it, so HealthImaging imports only once."""
    return hashlib.sha256(f"seg-import/{result.inference_id}".encode()).hexdigest()[:CLIENT_TOKEN_LENGTH]


def seg_prefix(settings: Settings, result: Result) -> str:
    return f"{settings.seg_import_prefix}{result.image_set_id}/"


def result_key(settings: Settings, result: Result) -> str:
    return f"{settings.result_prefix}{result.datastore_id}/{result.image_set_id}{RESULT_FILENAME_SUFFIX}"


def _check(s3: Any, settings: Settings, result: Result) -> None:
    if result.datastore_id != settings.datastore_id:
        raise NotificationError(
            f"inference {result.inference_id} read data store {result.datastore_id}, not the platform's "
            f"{settings.datastore_id}: it was not requested by this flow"
        )
    head = s3.get_object(Bucket=result.output_bucket, Key=result.output_key, Range=DICOM_MAGIC_RANGE)["Body"].read()
    if head != DICOM_MAGIC:
        raise NotDicomError(
            f"s3://{result.output_bucket}/{result.output_key} is not a DICOM file: invoke with "
            "Accept: application/dicom so the endpoint returns the SEG"
        )


def write_back(*, s3: Any, medical_imaging: Any, sns: Any, settings: Settings, result: Result, credentials: Any,
               store: Any = store_seg) -> dict[str, Any]:
    """The SEG into its study: STOW-RS when one request from here carries it (then the result JSON and the notice),
    else the import job."""
    _check(s3, settings, result)
    size = int(s3.head_object(Bucket=result.output_bucket, Key=result.output_key)["ContentLength"])
    if size > STOW_IN_FUNCTION_MAX_BYTES:
        return import_seg(s3=s3, medical_imaging=medical_imaging, settings=settings, result=result, checked=True)
    part10 = s3.get_object(Bucket=result.output_bucket, Key=result.output_key)["Body"].read()
    stored: StoredSeg = store(part10, dicomweb_root=settings.dicomweb_root, credentials=credentials,
                              region=settings.signing_region)
    document = {
        "status": "STORED",
        "inferenceId": result.inference_id,
        "datastoreId": result.datastore_id,
        "sourceImageSetId": result.image_set_id,
        "seg": f"s3://{result.output_bucket}/{result.output_key}",
        "stored": stored.to_json(),
    }
    if settings.viewer_url and stored.study_instance_uid and stored.series_instance_uid:
        document["viewerUrl"] = viewer_link(settings.viewer_url, stored.study_instance_uid,
                                            stored.series_instance_uid)
    key = result_key(settings, result)
    s3.put_object(Bucket=settings.inference_bucket, Key=key, Body=json.dumps(document, indent=2).encode(),
                  ContentType="application/json")
    result_uri = f"s3://{settings.inference_bucket}/{key}"
    # After the result JSON: a subscriber that follows the notice's "result" always finds it.
    notice = ResultNotice(
        inference_id=result.inference_id,
        datastore_id=result.datastore_id,
        image_set_id=result.image_set_id,
        study_instance_uid=stored.study_instance_uid,
        seg_series_instance_uid=stored.series_instance_uid,
        seg_sop_instance_uid=stored.sop_instance_uid,
        model_name=stored.model_name,
        model_version=stored.model_version,
        result_uri=result_uri,
        viewer_url=str(document.get("viewerUrl", "")),
    )
    message_id = publish(sns, settings.results_topic_arn, notice)
    return {**document, "result": result_uri, "notificationId": message_id}


def import_seg(*, s3: Any, medical_imaging: Any, settings: Settings, result: Result,
               checked: bool = False) -> dict[str, Any]:
    """The import-job path (a SEG over ``STOW_IN_FUNCTION_MAX_BYTES``)."""
    if not checked:
        _check(s3, settings, result)
    prefix = seg_prefix(settings, result)
    s3.copy_object(
        Bucket=settings.inbox_bucket,
        Key=f"{prefix}{SEG_FILENAME}",
        CopySource={"Bucket": result.output_bucket, "Key": result.output_key},
    )
    response = medical_imaging.start_dicom_import_job(
        jobName=f"seg-{result.image_set_id}"[:JOB_NAME_MAX],
        dataAccessRoleArn=settings.import_role_arn,
        clientToken=client_token(result),
        datastoreId=settings.datastore_id,
        inputS3Uri=f"s3://{settings.inbox_bucket}/{prefix}",
        outputS3Uri=f"s3://{settings.import_output_bucket}/{IMPORT_OUTPUT_PREFIX}{result.image_set_id}/",
    )
    return {
        "status": "IMPORTING",
        "inferenceId": result.inference_id,
        "sourceImageSetId": result.image_set_id,
        "jobId": response["jobId"],
        "jobStatus": response["jobStatus"],
    }


@cache
def _clients() -> tuple[Any, Any, Any]:
    # Created on first use, never at import: tests and cold starts without credentials import this module.
    return boto3.client("s3"), boto3.client("medical-imaging"), boto3.client("sns")


@cache
def _session() -> Any:
    # The session refreshes the role's credentials itself; each store signs with a frozen snapshot.
    return boto3.Session()


@cache
def _settings() -> Settings:
    return Settings.from_environment()


def handle(event: dict[str, Any], *, s3: Any, medical_imaging: Any, sns: Any, settings: Settings,
           credentials: Any = None, store: Any = store_seg) -> list[dict[str, Any]]:
    """An SNS event (one record per notification): store each successful result back into its study."""
    outcomes = []
    for record in event.get("Records", []):
        try:
            result = parse_notification(record["Sns"]["Message"])
        except NotOurRequestError as skipped:
            outcomes.append({"status": "IGNORED", "reason": str(skipped)})
            continue
        if result is None:
            outcomes.append({"status": "IGNORED", "reason": "not a completed inference"})
            continue
        outcomes.append(write_back(s3=s3, medical_imaging=medical_imaging, sns=sns, settings=settings, result=result,
                                   credentials=credentials, store=store))
    return outcomes


def handler(event: dict[str, Any], context: Any) -> list[dict[str, Any]]:
    s3, medical_imaging, sns = _clients()
    credentials = _session().get_credentials().get_frozen_credentials()
    return handle(event, s3=s3, medical_imaging=medical_imaging, sns=sns, settings=_settings(),
                  credentials=credentials)
