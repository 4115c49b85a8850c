"""result_notice: the results topic's message, Subject and filter attributes stay within what SNS Publish accepts
(botocore's Publish shape checks the parameters, moto's SNS the Subject's length), whatever model name a SEG carries.
What import_seg publishes for a real stored SEG is in test_store_seg.py."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from stacks.inference.runtime import result_notice
from tests.stacks.inference_runtime.conftest import DATASTORE_ID, IMAGE_SET_ID, Aws

NOTICE = result_notice.ResultNotice(
    inference_id="inference-1",
    datastore_id=DATASTORE_ID,
    image_set_id=IMAGE_SET_ID,
    study_instance_uid="1.2.3",
    seg_series_instance_uid="1.2.3.4",
    seg_sop_instance_uid="1.2.3.4.5",
    model_name="spleen_ct_segmentation",
    model_version="0.1.0",
    result_uri=f"s3://inference-bucket/output/results/{DATASTORE_ID}/{IMAGE_SET_ID}.json",
)


def notice(**changes: Any) -> result_notice.ResultNotice:
    return result_notice.ResultNotice(**{**NOTICE.__dict__, **changes})


@pytest.mark.parametrize(
    ("changes", "subject"),
    [
        ({}, f"SEG stored: spleen_ct_segmentation 0.1.0, image set {IMAGE_SET_ID}"),
        # A SEG that names no model still reads as a sentence.
        ({"model_name": "", "model_version": ""}, f"SEG stored: segmentation, image set {IMAGE_SET_ID}"),
        # ManufacturerModelName is free text (LO): line breaks and non-ASCII are no Subject text.
        ({"model_name": "spleen\nCT é", "model_version": "2"}, f"SEG stored: spleen CT 2, image set {IMAGE_SET_ID}"),
    ],
)
def test_the_subject_names_the_model_and_the_image_set(changes: dict[str, str], subject: str) -> None:
    assert notice(**changes).subject() == subject


def test_a_long_model_name_is_cut_to_the_subjects_limit(aws: Aws) -> None:
    long = notice(model_name="m" * 64, model_version="v" * 64)  # LO's 64 characters each
    subject = long.subject()
    assert len(subject) == result_notice.SUBJECT_MAX_CHARS
    assert subject.endswith("...")
    # Must: the service takes it (moto refuses a Subject over 100 characters, as SNS does).
    result_notice.publish(aws.sns, aws.results_topic_arn, long)
    (envelope,) = aws.published()
    assert envelope["Subject"] == subject
    assert json.loads(envelope["Message"])["model"] == {"name": "m" * 64, "version": "v" * 64}


def test_a_subject_over_the_limit_is_what_sns_refuses(aws: Aws) -> None:
    # The limit the cut keeps to is the service's: one character more than SNS takes is refused.
    with pytest.raises(ClientError, match="Subject must be less than 100 characters"):
        aws.sns.publish(TopicArn=aws.results_topic_arn, Subject="s" * 101, Message="{}")


@pytest.mark.parametrize(
    ("changes", "attributes"),
    [
        ({}, {"modelName": "spleen_ct_segmentation", "modelVersion": "0.1.0"}),
        # SNS refuses an attribute with an empty value: a missing version is no attribute at all.
        ({"model_version": ""}, {"modelName": "spleen_ct_segmentation"}),
        ({"model_name": "", "model_version": ""}, {}),
    ],
)
def test_subscribers_can_filter_on_the_model(aws: Aws, changes: dict[str, str], attributes: dict[str, str]) -> None:
    result_notice.publish(aws.sns, aws.results_topic_arn, notice(**changes))
    (envelope,) = aws.published()
    assert {name: value["Value"] for name, value in envelope.get("MessageAttributes", {}).items()} == attributes
    assert all(value["Type"] == "String" for value in envelope.get("MessageAttributes", {}).values())


def test_the_viewer_link_is_in_the_message_only_when_there_is_one() -> None:
    assert "viewerUrl" not in json.loads(NOTICE.message())
    link = "https://viewer.example.org/viewer?StudyInstanceUIDs=1.2.3&initialSeriesInstanceUID=1.2.3.4"
    assert json.loads(notice(viewer_url=link).message())["viewerUrl"] == link
