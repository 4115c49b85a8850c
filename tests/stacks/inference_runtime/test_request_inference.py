"""request_inference: each new CT image set is sent to the endpoint exactly once, retried events included."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from stacks.inference.runtime import request_inference
from tests.stacks.inference_runtime.conftest import DATASTORE_ID, IMAGE_SET_ID, INFERENCE, REGION, Aws

ENDPOINT = "monai-imaging-dev-spleen-async"
REQUEST_KEY = f"input/{DATASTORE_ID}/{IMAGE_SET_ID}.json"
CLAIM_KEY = f"input/{DATASTORE_ID}/{IMAGE_SET_ID}.invocation.json"
SETTINGS = request_inference.Settings(
    endpoint_name=ENDPOINT, inference_bucket=INFERENCE, input_prefix="input/", datastore_id=DATASTORE_ID
)


def event(datastore_id: str = DATASTORE_ID, image_set_id: str = IMAGE_SET_ID) -> dict[str, Any]:
    """An "Image Set Created" event as EventBridge delivers it."""
    return {
        "version": "0",
        "detail-type": "Image Set Created",
        "source": "aws.medical-imaging",
        "account": "123456789012",
        "region": REGION,
        "detail": {
            "imagingVersion": "1.0",
            "datastoreId": datastore_id,
            "imageSetId": image_set_id,
            "imageSetState": "ACTIVE",
            "imageSetWorkflowStatus": "CREATED",
        },
    }


def handle(aws: Aws, evt: dict[str, Any] | None = None, *, runtime: Any = None) -> dict[str, Any]:
    return request_inference.handle(
        evt or event(),
        s3=aws.s3,
        sagemaker_runtime=runtime or aws.sagemaker_runtime,
        medical_imaging=aws.medical_imaging,
        settings=SETTINGS,
    )


def test_a_ct_image_set_writes_its_request_and_invokes_the_endpoint_once(aws: Aws) -> None:
    aws.expect_metadata("CT")
    result = handle(aws)
    assert result["status"] == "INVOKED"
    assert aws.json_object(INFERENCE, REQUEST_KEY) == {"datastoreId": DATASTORE_ID, "imageSetId": IMAGE_SET_ID}
    (call,) = aws.invocations
    assert call == {
        "EndpointName": ENDPOINT,
        "InputLocation": f"s3://{INFERENCE}/{REQUEST_KEY}",
        "ContentType": "application/json",
        "Accept": "application/dicom",  # the container answers with the SEG itself
        "InferenceId": IMAGE_SET_ID,
        "S3OutputPathExtension": f"{DATASTORE_ID}/{IMAGE_SET_ID}",
        "Filename": "seg.dcm",
    }
    claim = aws.json_object(INFERENCE, CLAIM_KEY)
    assert (claim["status"], claim["inferenceId"]) == ("INVOKED", IMAGE_SET_ID)
    assert claim["outputLocation"] == result["outputLocation"]


def test_a_retried_event_does_not_invoke_again(aws: Aws) -> None:
    aws.expect_metadata("CT")
    aws.expect_metadata("CT")
    first, second = handle(aws), handle(aws)
    assert (first["status"], second["status"]) == ("INVOKED", "DUPLICATE")
    assert len(aws.invocations) == 1
    assert aws.keys(INFERENCE) == [CLAIM_KEY, REQUEST_KEY]


@pytest.mark.parametrize(
    ("modalities", "invoked"),
    [
        (("CT",), True),
        (("CT", "SEG"), True),  # a study holding both still has a CT series to segment
        (("SEG",), False),  # the result imported back: segmenting it would loop
        (("MR",), False),  # the spleen model is a CT model
        ((), False),  # no series at all
    ],
)
def test_only_image_sets_with_a_ct_series_are_segmented(aws: Aws, modalities: tuple[str, ...], invoked: bool) -> None:
    aws.expect_metadata(*modalities)
    result = handle(aws)
    assert (result["status"] == "INVOKED") is invoked
    assert len(aws.invocations) == int(invoked)
    if not invoked:
        assert result["status"] == "SKIPPED"
        assert aws.keys(INFERENCE) == []  # must not: a claim would block a later, corrected run


def test_an_event_of_another_data_store_is_ignored_without_any_call(aws: Aws) -> None:
    result = handle(aws, event(datastore_id="f" * 32))
    assert result["status"] == "IGNORED"
    assert aws.invocations == []
    assert aws.keys(INFERENCE) == []


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("imageSetId", "../../etc"),  # would escape the input/ prefix
        ("imageSetId", ""),
        ("datastoreId", "0123456789ABCDEF0123456789ABCDEF"),  # upper case is not a HealthImaging ID
    ],
)
def test_malformed_ids_are_refused(aws: Aws, field: str, value: str) -> None:
    evt = event()
    evt["detail"][field] = value
    with pytest.raises(ValueError, match=f"event detail {field} .* is not a HealthImaging ID"):
        handle(aws, evt)
    assert aws.invocations == []


@pytest.mark.parametrize(
    "field",
    [
        "imageSetId",  # the EventBridge schema's spelling (CDK's generated event classes)
        "imagesetId",  # the HealthImaging developer guide's sample event
    ],
)
def test_both_spellings_of_the_image_set_field_request_the_segmentation(aws: Aws, field: str) -> None:
    evt = event()
    evt["detail"][field] = evt["detail"].pop("imageSetId")
    aws.expect_metadata("CT")
    assert handle(aws, evt)["imageSetId"] == IMAGE_SET_ID
    assert len(aws.invocations) == 1


def test_an_event_with_both_spellings_naming_different_image_sets_is_refused(aws: Aws) -> None:
    evt = event()
    evt["detail"]["imagesetId"] = "f" * 32
    with pytest.raises(ValueError, match="event detail names two image sets"):
        handle(aws, evt)
    assert aws.invocations == []
    # Must: both spellings naming the same image set is one image set.
    evt["detail"]["imagesetId"] = IMAGE_SET_ID
    assert request_inference.image_set_from_event(evt).image_set_id == IMAGE_SET_ID


def put_claim(aws: Aws, status: str = "CLAIMED") -> datetime:
    aws.s3.put_object(Bucket=INFERENCE, Key=CLAIM_KEY, Body=json.dumps({"status": status}).encode())
    return aws.s3.head_object(Bucket=INFERENCE, Key=CLAIM_KEY)["LastModified"]


def test_a_fresh_claim_of_a_concurrent_invocation_is_retried_later(aws: Aws) -> None:
    claimed_at = put_claim(aws)
    aws.expect_metadata("CT")
    with pytest.raises(request_inference.ClaimInProgressError, match="claimed 30 s ago by another invocation"):
        request_inference.request_inference(
            s3=aws.s3, sagemaker_runtime=aws.sagemaker_runtime, medical_imaging=aws.medical_imaging,
            settings=SETTINGS, ref=request_inference.image_set_from_event(event()),
            now=claimed_at + timedelta(seconds=30),
        )
    assert aws.invocations == []


def test_a_stale_claim_of_a_dead_invocation_is_taken_over_once(aws: Aws) -> None:
    claimed_at = put_claim(aws)
    aws.expect_metadata("CT")
    result = request_inference.request_inference(
        s3=aws.s3, sagemaker_runtime=aws.sagemaker_runtime, medical_imaging=aws.medical_imaging,
        settings=SETTINGS, ref=request_inference.image_set_from_event(event()),
        now=claimed_at + timedelta(seconds=request_inference.STALE_CLAIM_SECONDS + 1),
    )
    assert result["status"] == "INVOKED"
    assert len(aws.invocations) == 1


def test_an_invoked_claim_makes_the_event_a_duplicate(aws: Aws) -> None:
    put_claim(aws, status="INVOKED")
    aws.expect_metadata("CT")
    assert handle(aws)["status"] == "DUPLICATE"
    assert aws.invocations == []


def test_a_failed_invocation_releases_its_claim_so_the_retry_invokes(aws: Aws) -> None:
    # The endpoint's error comes from a Stubber (moto's runtime always succeeds); it also checks the request.
    failing = boto3.client("sagemaker-runtime", region_name=REGION)
    with Stubber(failing) as runtime_stub:
        runtime_stub.add_client_error(
            "invoke_endpoint_async", service_error_code="ServiceUnavailable", http_status_code=503
        )
        aws.expect_metadata("CT")
        with pytest.raises(Exception, match="ServiceUnavailable"):
            handle(aws, runtime=failing)
        runtime_stub.assert_no_pending_responses()
    assert CLAIM_KEY not in aws.keys(INFERENCE)  # released: the retry is not mistaken for a duplicate
    aws.expect_metadata("CT")
    assert handle(aws)["status"] == "INVOKED"
    assert len(aws.invocations) == 1


def test_settings_name_every_missing_variable() -> None:
    with pytest.raises(RuntimeError, match=r"\['ENDPOINT_NAME', 'DATASTORE_ID'\] are not set"):
        request_inference.Settings.from_environment({"INFERENCE_BUCKET": "b", "INPUT_PREFIX": "input/"})
    # Must: a complete environment parses.
    complete = {"ENDPOINT_NAME": "e", "INFERENCE_BUCKET": "b", "INPUT_PREFIX": "input/", "DATASTORE_ID": "d"}
    assert request_inference.Settings.from_environment(complete).endpoint_name == "e"


def test_the_request_is_one_the_serving_container_decodes_and_answers_with_a_seg(aws: Aws) -> None:
    # The container's own decoder and content negotiation (model_code/serving), not a copy of their rules.
    from model_code.core.http import DICOM, negotiate
    from model_code.core.requests import HealthImagingRequest, decode_request

    aws.expect_metadata("CT")
    handle(aws)
    (call,) = aws.invocations
    body = aws.s3.get_object(Bucket=INFERENCE, Key=REQUEST_KEY)["Body"].read()
    decoded = decode_request(body, call["ContentType"])
    assert isinstance(decoded, HealthImagingRequest)
    assert (decoded.datastore_id, decoded.image_set_id) == (DATASTORE_ID, IMAGE_SET_ID)
    assert negotiate(call["Accept"]) == DICOM
