"""``monai-platform segment``: segment one image set on the asynchronous endpoint and download the SEG.

The request is the JSON document the endpoint's handler decodes (model_code/core/requests.py), validated
here by that same decoder. It goes to the inference bucket's ``input/`` prefix; InvokeEndpointAsync with
``Accept: application/dicom`` makes SageMaker write the SEG itself to the output location it returns, or the
handler's JSON error to the failure location.
"""

from __future__ import annotations

import argparse
import json
import uuid
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError as AwsClientError

from model_code.core.errors import ClientError
from model_code.core.http import DICOM, JSON
from model_code.core.requests import decode_request
from model_code.core.s3_uri import parse_s3_uri
from platform_cli import outputs
from platform_cli.dicom_import import DICOM_MAGIC, DICOM_MAGIC_OFFSET
from platform_cli.errors import CommandFailedError, UsageError
from platform_cli.polling import wait_for
from platform_cli.runtime import Runtime

# stacks/data/stack.py INFERENCE_INPUT_PREFIX (a test keeps them equal).
INFERENCE_INPUT_PREFIX = "input/"


def add_parser(subparsers: Any, parents: list[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "segment",
        parents=parents,
        help="segment a HealthImaging image set on the async endpoint and download the DICOM SEG",
        description="Writes the request to the inference bucket, invokes the asynchronous endpoint, waits for "
        "the result and saves the SEG.",
    )
    parser.add_argument("image_set_id", metavar="IMAGE_SET_ID", help="the image set to segment (32 characters)")
    parser.add_argument("--datastore-id", help="data store of the image set (default: the Imaging stack's)")
    parser.add_argument("--series-uid", help="SeriesInstanceUID to segment when the image set holds several")
    parser.add_argument("--out", type=Path, help="where to save the SEG (default: seg-<IMAGE_SET_ID>.dcm)")
    parser.add_argument("--no-wait", action="store_true", help="print the output and failure locations and return")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds to wait (default 3600: a cold start "
                        "from zero instances takes minutes)")
    parser.add_argument("--poll-interval", type=float, default=10, help="seconds between checks")
    parser.set_defaults(run=run)


def request_body(*, datastore_id: str, image_set_id: str, series_uid: str | None) -> bytes:
    document = {"datastoreId": datastore_id, "imageSetId": image_set_id}
    if series_uid:
        document["seriesInstanceUid"] = series_uid
    body = json.dumps(document).encode()
    try:
        decode_request(body, JSON)  # the endpoint's own decoder: a bad ID fails here, not after a cold start
    except ClientError as error:
        raise UsageError(error.message) from error
    return body


def run(args: argparse.Namespace, runtime: Runtime) -> int:
    datastore_id = args.datastore_id or runtime.output(outputs.DATASTORE_ID)
    body = request_body(datastore_id=datastore_id, image_set_id=args.image_set_id, series_uid=args.series_uid)
    out = args.out or Path(f"seg-{args.image_set_id}.dcm")
    if not args.no_wait and not out.parent.is_dir():
        raise UsageError(f"--out {out}: folder {out.parent} does not exist")
    bucket = runtime.output(outputs.INFERENCE_BUCKET)
    endpoint = runtime.output(outputs.ENDPOINT_NAME)

    inference_id = uuid.uuid4().hex
    # One object per request: a second run for the same image set never overwrites a queued request.
    key = f"{INFERENCE_INPUT_PREFIX}{datastore_id}/{args.image_set_id}/{inference_id}.json"
    runtime.client("s3").put_object(Bucket=bucket, Key=key, Body=body, ContentType=JSON)
    response = runtime.client("sagemaker-runtime").invoke_endpoint_async(
        EndpointName=endpoint,
        InputLocation=f"s3://{bucket}/{key}",
        ContentType=JSON,
        Accept=DICOM,
        InferenceId=inference_id,
    )
    output_uri, failure_uri = response["OutputLocation"], response.get("FailureLocation")
    runtime.note(f"queued inference {response.get('InferenceId', inference_id)} on {endpoint}")
    if args.no_wait:
        runtime.emit(json.dumps({"outputLocation": output_uri, "failureLocation": failure_uri}))
        return 0

    def poll() -> tuple[tuple[str, bytes] | None, str]:
        for outcome, uri in (("output", output_uri), ("failure", failure_uri)):
            if uri:
                data = _read_if_present(runtime.client("s3"), uri)
                if data is not None:
                    return (outcome, data), outcome
        return None, "queued or running"

    outcome, data = wait_for(
        runtime,
        poll,
        what=f"segment {args.image_set_id}",
        timeout_s=args.timeout,
        interval_s=args.poll_interval,
        on_timeout=f"the request stays queued: the SEG will appear at {output_uri} (failures at {failure_uri})",
    )
    if outcome == "failure":
        raise CommandFailedError(f"the endpoint could not segment {args.image_set_id}: {_error_message(data)}")
    if data[DICOM_MAGIC_OFFSET : DICOM_MAGIC_OFFSET + len(DICOM_MAGIC)] != DICOM_MAGIC:
        raise CommandFailedError(f"{output_uri} is not a DICOM file ({data[:80]!r}...): the endpoint ignored Accept")
    out.write_bytes(data)
    runtime.note(f"saved the SEG from {output_uri}")
    runtime.emit(str(out))
    return 0


def _read_if_present(s3: Any, uri: str) -> bytes | None:
    location = parse_s3_uri(uri, what="the endpoint's result location", require_key=True)
    try:
        return bytes(s3.get_object(Bucket=location.bucket, Key=location.key)["Body"].read())
    except AwsClientError as error:
        if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return None
        raise


def _error_message(data: bytes) -> str:
    """The handler's ``{"error": {"status", "reason", "message"}}`` body, else the raw text."""
    try:
        error = json.loads(data)["error"]
        return f"{error['status']} {error['reason']}: {error['message']}"
    except (ValueError, KeyError, TypeError):
        return data[:2000].decode("utf-8", "replace")
