"""The platform's own success notification: one message on the results topic for each SEG stored into its study.

SageMaker's success notification (the endpoint's success topic) is SageMaker's message: it names the SEG file, not
where the data store put it, and the platform cannot add to it. ``import_seg`` publishes this one after it has
written the result JSON, so a subscriber (the ``notificationEmails`` addresses, a queue, a function) learns of the
stored SEG and its deep link in the viewer without reading S3. The message is JSON:

    {"event": "SegStored", "inferenceId": "...", "datastoreId": "...", "imageSetId": "...",
     "studyInstanceUid": "...", "segSeriesInstanceUid": "...", "segSopInstanceUid": "...",
     "model": {"name": "...", "version": "..."}, "result": "s3://<inference bucket>/output/results/...json",
     "viewerUrl": "https://<viewer>/viewer?..."}            # viewerUrl only with viewer.enabled

with a Subject for e-mail readers and the model as message attributes (``modelName``, ``modelVersion``) for
subscription filter policies. Delivery is at least once: SNS itself may deliver twice, and a retried success
notification (a failed publish raises, so SNS invokes the function again) publishes the same message again, so a
subscriber keys on ``segSopInstanceUid`` (or ``inferenceId``) rather than counting messages.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

EVENT = "SegStored"
ATTRIBUTE_MODEL_NAME = "modelName"
ATTRIBUTE_MODEL_VERSION = "modelVersion"
# SNS Publish: "Subjects must be ASCII text that begins with a letter, number, or punctuation mark; must not include
# line breaks or control characters; and must be less than 100 characters long."
SUBJECT_MAX_CHARS = 99
_NOT_SUBJECT_TEXT = re.compile(r"[^\x20-\x7e]+")


@dataclass(frozen=True)
class ResultNotice:
    inference_id: str
    datastore_id: str
    image_set_id: str
    study_instance_uid: str
    seg_series_instance_uid: str
    seg_sop_instance_uid: str
    model_name: str  # "" when the stored SEG names none (ManufacturerModelName, SoftwareVersions)
    model_version: str
    result_uri: str  # the result JSON, s3://bucket/key
    viewer_url: str = ""  # "" when the viewer is off

    def message(self) -> str:
        document: dict[str, Any] = {
            "event": EVENT,
            "inferenceId": self.inference_id,
            "datastoreId": self.datastore_id,
            "imageSetId": self.image_set_id,
            "studyInstanceUid": self.study_instance_uid,
            "segSeriesInstanceUid": self.seg_series_instance_uid,
            "segSopInstanceUid": self.seg_sop_instance_uid,
            "model": {"name": self.model_name, "version": self.model_version},
            "result": self.result_uri,
        }
        if self.viewer_url:
            document["viewerUrl"] = self.viewer_url
        return json.dumps(document)

    def subject(self) -> str:
        model = " ".join(part for part in (self.model_name, self.model_version) if part) or "segmentation"
        text = " ".join(_NOT_SUBJECT_TEXT.sub(" ", f"SEG stored: {model}, image set {self.image_set_id}").split())
        if len(text) <= SUBJECT_MAX_CHARS:
            return text
        return text[: SUBJECT_MAX_CHARS - 3].rstrip() + "..."

    def attributes(self) -> dict[str, dict[str, str]]:
        # SNS refuses an attribute with an empty value: a SEG that names no model has no model attribute.
        values = {ATTRIBUTE_MODEL_NAME: self.model_name, ATTRIBUTE_MODEL_VERSION: self.model_version}
        return {name: {"DataType": "String", "StringValue": value} for name, value in values.items() if value}


def publish(sns: Any, topic_arn: str, notice: ResultNotice) -> str:
    """Publish ``notice`` on the results topic; the message ID SNS assigned."""
    response = sns.publish(
        TopicArn=topic_arn,
        Subject=notice.subject(),
        Message=notice.message(),
        MessageAttributes=notice.attributes(),
    )
    return str(response["MessageId"])
