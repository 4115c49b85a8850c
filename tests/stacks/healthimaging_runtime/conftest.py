"""Real S3 and SNS from moto; HealthImaging through botocore's Stubber (moto has no HealthImaging)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from tests.stacks.fake_aws import REGION, mocked_aws, stubbed_client

INBOX = "inbox-bucket"
OUTPUT = "import-output-bucket"


@dataclass
class Aws:
    s3: Any
    sns: Any
    sqs: Any
    medical_imaging: Any
    stubber: Stubber
    topic_arn: str
    queue_url: str

    def published(self) -> list[dict[str, Any]]:
        """Messages the topic delivered (through an SQS subscription, as a subscriber would see them)."""
        messages: list[dict[str, Any]] = []
        while True:
            batch = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages", [])
            if not batch:
                return messages
            for message in batch:
                envelope = json.loads(message["Body"])
                messages.append({"subject": envelope.get("Subject"), "message": json.loads(envelope["Message"])})
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Aws]:
    with mocked_aws(monkeypatch):
        s3 = boto3.client("s3", region_name=REGION)
        for bucket in (INBOX, OUTPUT):
            s3.create_bucket(Bucket=bucket)
        sns = boto3.client("sns", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        topic_arn = sns.create_topic(Name="notifications")["TopicArn"]
        queue_url = sqs.create_queue(QueueName="subscriber")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
        # Every import the test expected is started, and no other.
        with stubbed_client("medical-imaging") as (medical_imaging, stubber):
            yield Aws(s3, sns, sqs, medical_imaging, stubber, topic_arn, queue_url)
