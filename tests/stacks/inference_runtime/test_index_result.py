"""index_result: each finished SEG becomes one record of the results index; its volumes are the model's own."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest

from stacks.components.function_shared.results_layout import record_key
from stacks.inference.runtime import index_result
from stacks.inference.runtime.seg_reader import SegReadError, read_seg
from testkit.results import make_seg
from tests.stacks.inference_runtime.conftest import DATASTORE_ID, IMAGE_SET_ID, INFERENCE, REGION, Aws

OUTPUT_KEY = f"output/{DATASTORE_ID}/{IMAGE_SET_ID}/spleen_ct_segmentation-0.5.9/seg.dcm"
SETTINGS = index_result.Settings(inference_bucket=INFERENCE, results_prefix="results-index/")


def notification(*, input_key: str | None = None, output: str | None = None, status: str = "Completed") -> str:
    """The message SageMaker publishes on the success topic (SageMaker developer guide, async inference)."""
    return json.dumps({
        "awsRegion": REGION,
        "eventTime": "2026-11-21T12:00:30.500Z",
        "receivedTime": "2026-11-21T11:58:00.000Z",
        "invocationStatus": status,
        "requestParameters": {
            "contentType": "application/json",
            "endpointName": "monai-imaging-dev-spleen-async",
            "inputLocation": f"s3://{INFERENCE}/{input_key or f'input/{DATASTORE_ID}/{IMAGE_SET_ID}.json'}",
        },
        "responseParameters": {"contentType": "application/dicom",
                               "outputLocation": output or f"s3://{INFERENCE}/{OUTPUT_KEY}"},
        "inferenceId": IMAGE_SET_ID,
        "eventVersion": "1.0",
        "eventSource": "aws:sagemaker",
        "eventName": "InferenceResult",
    })  # fmt: skip


def sns_event(*messages: str) -> dict[str, Any]:
    return {"Records": [{"EventSource": "aws:sns", "Sns": {"Type": "Notification", "Message": m}} for m in messages]}


@pytest.fixture(scope="module")
def seg() -> tuple[bytes, dict[str, Any]]:
    return make_seg(300, voxel_mm=(2.5, 1.5, 1.5))


@pytest.mark.parametrize(
    ("voxels", "voxel_mm"),
    [
        (0, (2.0, 1.0, 1.0)),  # an empty mask: 0 mL, every frame still present
        (300, (2.5, 1.5, 1.5)),  # part of several frames
        (2048, (5.0, 8.0, 8.0)),  # every voxel, coarse voxels: 655 mL
    ],
)
def test_the_seg_reader_gives_the_volume_the_model_reported(voxels: int, voxel_mm: tuple[float, float, float]) -> None:
    data, summary = make_seg(voxels, voxel_mm=voxel_mm)
    read = read_seg(data)
    assert read.label_volumes_ml == {"spleen": summary["spleen_volume_ml"]}
    assert read.model_name == summary["model"]["name"]  # type: ignore[index]
    assert read.model_version == summary["model"]["version"] == "0.5.9"  # type: ignore[index]
    assert read.source_series_instance_uid == summary["series_instance_uid"]
    assert read.seg_sop_instance_uid == summary["seg_sop_instance_uid"]


def test_a_finished_segmentation_is_indexed_once_under_its_model_and_date(aws: Aws, seg: Any) -> None:
    data, summary = seg
    aws.s3.put_object(Bucket=INFERENCE, Key=OUTPUT_KEY, Body=data)
    (outcome,) = index_result.handle(sns_event(notification()), s3=aws.s3, settings=SETTINGS)
    key = record_key("spleen_ct_segmentation", "0.5.9", date(2026, 11, 21), IMAGE_SET_ID)
    assert outcome == {"status": "INDEXED", "imageSetId": IMAGE_SET_ID, "key": key}
    body = aws.s3.get_object(Bucket=INFERENCE, Key=key)["Body"].read().decode()
    assert body.endswith("\n")
    assert body.count("\n") == 1  # one JSON line
    record = json.loads(body)
    assert list(record) == [name for name, _ in index_result.RECORD_COLUMNS]
    assert record["label_volumes_ml"] == {"spleen": summary["spleen_volume_ml"]}
    assert record["series_instance_uid"] == summary["series_instance_uid"]
    assert record["inference_seconds"] == 150.5
    assert record["seg_location"] == f"s3://{INFERENCE}/{OUTPUT_KEY}"
    # A retried notification rewrites the same record.
    index_result.handle(sns_event(notification()), s3=aws.s3, settings=SETTINGS)
    assert [k for k in aws.keys(INFERENCE) if k.startswith("results-index/")] == [key]


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (notification(status="Failed"), "not a completed inference"),  # the error topic's shape
        (notification(input_key=f"input/{DATASTORE_ID}/{IMAGE_SET_ID}/{'a' * 32}.json"), "not a completed"),  # CLI
    ],
)
def test_results_the_flow_did_not_request_are_not_indexed(aws: Aws, seg: Any, message: str, reason: str) -> None:
    aws.s3.put_object(Bucket=INFERENCE, Key=OUTPUT_KEY, Body=seg[0])
    (outcome,) = index_result.handle(sns_event(message), s3=aws.s3, settings=SETTINGS)
    assert outcome["status"] == "IGNORED"
    assert reason in outcome["reason"]
    assert not [k for k in aws.keys(INFERENCE) if k.startswith("results-index/")]


def test_a_json_answer_is_not_a_seg_and_is_ignored(aws: Aws) -> None:
    aws.s3.put_object(Bucket=INFERENCE, Key=OUTPUT_KEY, Body=json.dumps({"summary": {}}).encode() * 10)
    (outcome,) = index_result.handle(sns_event(notification()), s3=aws.s3, settings=SETTINGS)
    assert outcome["status"] == "IGNORED"
    assert "is not a SEG" in outcome["reason"]


def test_a_seg_the_reader_cannot_read_fails_with_the_reason(aws: Aws, seg: Any) -> None:
    broken = seg[0].replace(b"1.2.840.10008.1.2.1\x00", b"1.2.840.10008.1.2.5\x00", 1)  # RLE, as if compressed
    aws.s3.put_object(Bucket=INFERENCE, Key=OUTPUT_KEY, Body=broken)
    with pytest.raises(SegReadError, match=r"cannot be indexed: transfer syntax 1\.2\.840\.10008\.1\.2\.5 is not"):
        index_result.handle(sns_event(notification()), s3=aws.s3, settings=SETTINGS)
