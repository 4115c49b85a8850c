"""import_seg: a successful inference's SEG goes back into its study once (STOW-RS; an import job only for a SEG too big
for that); anything else is refused with a reason. The STOW-RS path against a real DICOMweb server is in
test_store_seg.py."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from stacks.inference.runtime import import_seg, request_inference
from tests.stacks.inference_runtime.conftest import (
    DATASTORE_ID,
    IMAGE_SET_ID,
    IMPORT_OUTPUT,
    INBOX,
    INFERENCE,
    REGION,
    RESULTS_TOPIC_ARN,
    Aws,
)

ROLE_ARN = "arn:aws:iam::123456789012:role/monai-imaging-dev-import"
OUTPUT_KEY = f"output/{DATASTORE_ID}/{IMAGE_SET_ID}/seg.dcm"
SEG_KEY = f"incoming/inference-seg/{IMAGE_SET_ID}/seg.dcm"
# A DICOM Part 10 file begins with a 128-byte preamble and "DICM"; the rest does not matter here.
DICOM_BYTES = b"\0" * 128 + b"DICM" + b"\x02\x00\x00\x00UL\x04\x00\x00\x00\x00\x00"
SETTINGS = import_seg.Settings(
    datastore_id=DATASTORE_ID,
    import_role_arn=ROLE_ARN,
    inbox_bucket=INBOX,
    seg_import_prefix="incoming/inference-seg/",
    import_output_bucket=IMPORT_OUTPUT,
    dicomweb_endpoint="https://dicom-medical-imaging.us-east-1.amazonaws.com",
    signing_region=REGION,
    inference_bucket=INFERENCE,
    result_prefix="output/results/",
    results_topic_arn=RESULTS_TOPIC_ARN,
)


@pytest.fixture
def big_seg(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every SEG counts as too big for STOW-RS from the function: the import-job path."""
    monkeypatch.setattr(import_seg, "STOW_IN_FUNCTION_MAX_BYTES", 0)


def notification(
    *, status: str = "Completed", input_key: str | None = None, output_key: str = OUTPUT_KEY
) -> dict[str, Any]:
    """The message SageMaker publishes on the success topic (SageMaker developer guide, async inference)."""
    return {
        "awsRegion": REGION,
        "eventTime": "2026-11-21T12:00:00.000Z",
        "receivedTime": "2026-11-21T11:58:00.000Z",
        "invocationStatus": status,
        "requestParameters": {
            "contentType": "application/json",
            "endpointName": "monai-imaging-dev-spleen-async",
            "inputLocation": f"s3://{INFERENCE}/{input_key or f'input/{DATASTORE_ID}/{IMAGE_SET_ID}.json'}",
        },
        "responseParameters": {"contentType": "application/dicom", "outputLocation": f"s3://{INFERENCE}/{output_key}"},
        "inferenceId": IMAGE_SET_ID,
        "eventVersion": "1.0",
        "eventSource": "aws:sagemaker",
        "eventName": "InferenceResult",
    }


def sns_event(*messages: dict[str, Any]) -> dict[str, Any]:
    """The event SNS invokes a subscribed function with: one record per message."""
    return {
        "Records": [
            {"EventSource": "aws:sns", "Sns": {"Type": "Notification", "Message": json.dumps(m)}} for m in messages
        ]
    }


def expect_import(aws: Aws) -> None:
    aws.stubber.add_response(
        "start_dicom_import_job",
        {"datastoreId": DATASTORE_ID, "jobId": "a" * 32, "jobStatus": "SUBMITTED", "submittedAt": "2026-11-21"},
        {
            "jobName": f"seg-{IMAGE_SET_ID}",
            "dataAccessRoleArn": ROLE_ARN,
            # Derived from the inference ID: HealthImaging starts one job per token, however often it is sent.
            "clientToken": hashlib.sha256(f"seg-import/{IMAGE_SET_ID}".encode()).hexdigest(),
            "datastoreId": DATASTORE_ID,
            "inputS3Uri": f"s3://{INBOX}/incoming/inference-seg/{IMAGE_SET_ID}/",
            "outputS3Uri": f"s3://{IMPORT_OUTPUT}/inference-seg/{IMAGE_SET_ID}/",
        },
    )


def handle(aws: Aws, event: dict[str, Any]) -> list[dict[str, Any]]:
    return import_seg.handle(event, s3=aws.s3, medical_imaging=aws.medical_imaging, sns=aws.sns, settings=SETTINGS)


def test_a_seg_too_big_for_stow_is_copied_to_the_inbox_and_imported(aws: Aws, big_seg: None) -> None:
    aws.s3.put_object(Bucket=INFERENCE, Key=OUTPUT_KEY, Body=DICOM_BYTES)
    expect_import(aws)
    (outcome,) = handle(aws, sns_event(notification()))
    assert outcome["status"] == "IMPORTING"
    assert outcome["sourceImageSetId"] == IMAGE_SET_ID
    assert aws.keys(INBOX) == [SEG_KEY]
    assert aws.s3.get_object(Bucket=INBOX, Key=SEG_KEY)["Body"].read() == DICOM_BYTES
    # Must not: a manifest.json, which would make the HealthImaging stack's batch rule import the prefix a second time.
    assert not any(key.endswith("manifest.json") for key in aws.keys(INBOX))


def test_a_retried_notification_sends_the_same_client_token(aws: Aws, big_seg: None) -> None:
    aws.s3.put_object(Bucket=INFERENCE, Key=OUTPUT_KEY, Body=DICOM_BYTES)
    expect_import(aws)
    expect_import(aws)  # identical parameters, token included: the service deduplicates the second call
    handle(aws, sns_event(notification()))
    handle(aws, sns_event(notification()))
    assert aws.keys(INBOX) == [SEG_KEY]  # the copy overwrote the same key


def test_an_output_that_is_not_dicom_is_not_imported(aws: Aws) -> None:
    aws.s3.put_object(Bucket=INFERENCE, Key=OUTPUT_KEY, Body=json.dumps({"labels": [1]}).encode() * 20)
    with pytest.raises(import_seg.NotDicomError, match="is not a DICOM file: invoke with Accept: application/dicom"):
        handle(aws, sns_event(notification()))
    assert aws.keys(INBOX) == []


@pytest.mark.parametrize(
    ("message", "error"),
    [
        # A request against another data store: the import role must not write there.
        (notification(input_key=f"input/{'f' * 32}/{IMAGE_SET_ID}.json"), "not the platform's"),
        ({**notification(), "inferenceId": ""}, "notification has no inferenceId"),
        ({**notification(), "responseParameters": {"outputLocation": "output/seg.dcm"}}, r"responseParameters.outputLocation must look like s3://bucket/key \(an object\)"),
        ({**notification(), "responseParameters": {"outputLocation": "s3://inference-bucket"}}, r"responseParameters.outputLocation must name an object \(s3://bucket/key\), got 's3://inference-bucket'"),
    ],
)
def test_notifications_the_flow_did_not_produce_are_refused(
    aws: Aws, message: dict[str, Any], error: str
) -> None:
    aws.s3.put_object(Bucket=INFERENCE, Key=OUTPUT_KEY, Body=DICOM_BYTES)
    with pytest.raises(import_seg.NotificationError, match=error):
        handle(aws, sns_event(message))
    assert aws.keys(INBOX) == []


def test_a_failed_inference_on_the_wrong_topic_is_ignored(aws: Aws) -> None:
    assert handle(aws, sns_event(notification(status="Failed"))) == [
        {"status": "IGNORED", "reason": "not a completed inference"}
    ]
    assert aws.keys(INBOX) == []


@pytest.mark.parametrize(
    "input_key",
    [
        "uploads/manual-request.json",  # a manual InvokeEndpointAsync
        f"input/{DATASTORE_ID}/{IMAGE_SET_ID}/{'ab' * 16}.json",  # monai-platform segment's one-off request
    ],
)
def test_results_of_requests_the_flow_did_not_write_are_ignored(aws: Aws, input_key: str) -> None:
    aws.s3.put_object(Bucket=INFERENCE, Key=OUTPUT_KEY, Body=DICOM_BYTES)
    (outcome,) = handle(aws, sns_event(notification(input_key=input_key)))
    assert outcome["status"] == "IGNORED"
    assert "was not written by the inference flow" in outcome["reason"]
    assert aws.keys(INBOX) == []


def test_the_request_prefix_is_the_data_stacks_inference_input_prefix() -> None:
    from stacks.data.stack import INFERENCE_INPUT_PREFIX

    assert import_seg.REQUEST_PREFIX == INFERENCE_INPUT_PREFIX


def test_the_request_key_of_request_inference_is_the_one_import_seg_parses() -> None:
    # The two handlers are deployed as separate modules; this pins their shared key layout.
    ref = request_inference.ImageSetRef(datastore_id=DATASTORE_ID, image_set_id=IMAGE_SET_ID)
    key = request_inference.request_key("input/", ref)
    message = {**notification(input_key=key)}
    result = import_seg.parse_notification(json.dumps(message))
    assert result is not None
    assert (result.datastore_id, result.image_set_id) == (DATASTORE_ID, IMAGE_SET_ID)
    assert (result.output_bucket, result.output_key) == (INFERENCE, OUTPUT_KEY)


def test_settings_name_every_missing_variable() -> None:
    with pytest.raises(RuntimeError, match=r"\['IMPORT_ROLE_ARN', 'IMPORT_OUTPUT_BUCKET', 'DICOMWEB_ENDPOINT', "
                       r"'SIGNING_REGION', 'INFERENCE_BUCKET', 'RESULT_PREFIX', 'RESULTS_TOPIC_ARN'\] are not set"):
        import_seg.Settings.from_environment(
            {"DATASTORE_ID": "d", "INBOX_BUCKET": "b", "SEG_IMPORT_PREFIX": "incoming/inference-seg/"}
        )
