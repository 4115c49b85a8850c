"""Real S3, SNS, SQS and SageMaker runtime from moto; HealthImaging through botocore's Stubber (moto has no
HealthImaging). The results topic has one SQS subscriber, which reads what the topic delivered as a subscriber would."""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber
from moto.core import DEFAULT_ACCOUNT_ID

from testkit.aws_account import PARTITION
from tests.stacks.fake_aws import REGION, mocked_aws, stubbed_client

INFERENCE = "inference-bucket"
INBOX = "inbox-bucket"
IMPORT_OUTPUT = "import-output-bucket"
DATASTORE_ID = "0123456789abcdef0123456789abcdef"
IMAGE_SET_ID = "fedcba9876543210fedcba9876543210"
RESULTS_TOPIC = "seg-results-topic"
RESULTS_TOPIC_ARN = f"arn:{PARTITION}:sns:{REGION}:{DEFAULT_ACCOUNT_ID}:{RESULTS_TOPIC}"


@dataclass
class Aws:
    s3: Any
    sagemaker_runtime: Any
    medical_imaging: Any
    stubber: Stubber
    sns: Any = None
    sqs: Any = None
    results_topic_arn: str = ""
    results_queue_url: str = ""
    # Every InvokeEndpointAsync request the real (moto) client sent, as the service received its parameters.
    invocations: list[dict[str, Any]] = field(default_factory=list)

    def keys(self, bucket: str) -> list[str]:
        return sorted(item["Key"] for item in self.s3.list_objects_v2(Bucket=bucket).get("Contents", []))

    def json_object(self, bucket: str, key: str) -> dict[str, Any]:
        return dict(json.loads(self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()))

    def published(self) -> list[dict[str, Any]]:
        """What the results topic delivered (the SNS envelopes its SQS subscriber received), in order."""
        envelopes: list[dict[str, Any]] = []
        while batch := self.sqs.receive_message(QueueUrl=self.results_queue_url, MaxNumberOfMessages=10).get(
            "Messages", []
        ):
            for message in batch:
                envelopes.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.results_queue_url, ReceiptHandle=message["ReceiptHandle"])
        return envelopes

    def expect_metadata(self, *modalities: str, image_set_id: str = IMAGE_SET_ID) -> None:
        """Queue one GetImageSetMetadata answer: an image set with one series per modality, gzip-compressed."""
        document = {
            "SchemaVersion": "1.1",
            "DatastoreID": DATASTORE_ID,
            "ImageSetID": image_set_id,
            "Study": {
                "DICOM": {"StudyInstanceUID": "1.2.3"},
                "Series": {f"1.2.3.{i}": {"DICOM": {"Modality": m}, "Instances": {}} for i, m in enumerate(modalities)},
            },
        }
        blob = gzip.compress(json.dumps(document).encode())
        self.stubber.add_response(
            "get_image_set_metadata",
            {
                "imageSetMetadataBlob": StreamingBody(io.BytesIO(blob), len(blob)),
                "contentType": "application/json",
                "contentEncoding": "gzip",
            },
            {"datastoreId": DATASTORE_ID, "imageSetId": image_set_id},
        )


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Aws]:
    with mocked_aws(monkeypatch):
        s3 = boto3.client("s3", region_name=REGION)
        for bucket in (INFERENCE, INBOX, IMPORT_OUTPUT):
            s3.create_bucket(Bucket=bucket)
        sagemaker_runtime = boto3.client("sagemaker-runtime", region_name=REGION)
        sns = boto3.client("sns", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        topic_arn = sns.create_topic(Name=RESULTS_TOPIC)["TopicArn"]
        assert topic_arn == RESULTS_TOPIC_ARN  # the ARN the handlers' settings name
        queue_url = sqs.create_queue(QueueName="results-subscriber")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
        # Every HealthImaging call the test expected is made, and no other.
        with stubbed_client("medical-imaging") as (medical_imaging, stubber):
            env = Aws(s3, sagemaker_runtime, medical_imaging, stubber, sns=sns, sqs=sqs, results_topic_arn=topic_arn,
                      results_queue_url=queue_url)

            def record(params: dict[str, Any], **_: Any) -> None:
                env.invocations.append(dict(params))

            sagemaker_runtime.meta.events.register("provide-client-params.sagemaker-runtime.InvokeEndpointAsync", record)
            yield env
