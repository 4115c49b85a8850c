"""Data stack: the platform's KMS keys and every bucket that holds studies, models or results."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_s3 as s3
from constructs import Construct

from stacks.components.keys import DataAndLogsKeys
from stacks.components.secure_bucket import (
    SecureBucket,
    access_logs_bucket,
    expiration_rule,
    infrequent_access_rule,
    noncurrent_version_rule,
)
from stacks.config import PlatformConfig
from stacks.props import ModelStore

# Prefixes inside the buckets, shared by the stacks and functions that read and write them.
INBOX_INCOMING_PREFIX = "incoming/"
INFERENCE_INPUT_PREFIX = "input/"
INFERENCE_OUTPUT_PREFIX = "output/"
INFERENCE_FAILURE_PREFIX = "failures/"

ACCESS_LOG_ENCRYPTION_REASON = (
    "S3 server access logging delivers only to buckets encrypted with SSE-S3 (AES256); SSE-KMS targets are "
    "not supported, so this log bucket uses S3-managed keys and holds no object contents."
)


class DataStack(Stack):
    """Keys and buckets. ``keys``, ``model_store`` and the ``*_bucket`` attributes are what other stacks take."""

    def __init__(self, scope: Construct, id_: str, *, config: PlatformConfig, **kwargs: Any) -> None:
        super().__init__(scope, id_, **kwargs)
        data = config.data
        self.keys = DataAndLogsKeys(self, "Keys", alias_prefix=config.prefix).keys

        self.access_logs_bucket = access_logs_bucket(
            self,
            "AccessLogs",
            expiration_days=data.access_log_expiration_days,
            target_reason="This is the server-access-log target of every platform bucket; logging it into itself "
            f"would loop, and {config.audit.coverage_claim('the platform audit trail (the Audit stack)')}.",
            encryption_reason=ACCESS_LOG_ENCRYPTION_REASON,
        )

        def bucket(id_: str, *rules: s3.LifecycleRule) -> s3.Bucket:
            secure = SecureBucket(
                self,
                id_,
                encryption_key=self.keys.data_key,
                access_logs=self.access_logs_bucket,
                lifecycle_rules=[noncurrent_version_rule(data.noncurrent_version_expiration_days), *rules],
            )
            return secure.bucket

        ia_days = data.infrequent_access_transition_days
        self.dicom_inbox_bucket = bucket("DicomInbox", infrequent_access_rule(ia_days))
        # The HealthImaging stack starts imports from the inbox's "Object Created" events on EventBridge; the L1
        # property avoids the notification custom resource (and its Lambda) that the L2 option would add.
        inbox = self.dicom_inbox_bucket.node.default_child
        assert isinstance(inbox, s3.CfnBucket)  # an L2 Bucket's default child is its CfnBucket
        inbox.add_property_override("NotificationConfiguration.EventBridgeConfiguration.EventBridgeEnabled", True)
        self.import_output_bucket = bucket("ImportOutput", infrequent_access_rule(ia_days))
        self.training_data_bucket = bucket("TrainingData", infrequent_access_rule(ia_days))
        self.model_artifacts_bucket = bucket("ModelArtifacts")
        self.model_store = ModelStore(bucket=self.model_artifacts_bucket, key=self.keys.data_key)
        self.inference_bucket = bucket(
            "Inference",
            expiration_rule(data.inference_output_expiration_days, prefix=INFERENCE_INPUT_PREFIX),
            expiration_rule(data.inference_output_expiration_days, prefix=INFERENCE_OUTPUT_PREFIX),
            # Failures are kept longer than outputs: someone has to look at them.
            expiration_rule(max(data.inference_output_expiration_days, 90), prefix=INFERENCE_FAILURE_PREFIX),
        )

        for name, value in {
            "DataKeyArn": self.keys.data_key.key_arn,
            "DicomInboxBucketName": self.dicom_inbox_bucket.bucket_name,
            "ImportOutputBucketName": self.import_output_bucket.bucket_name,
            "TrainingDataBucketName": self.training_data_bucket.bucket_name,
            "ModelArtifactsBucketName": self.model_artifacts_bucket.bucket_name,
            "InferenceBucketName": self.inference_bucket.bucket_name,
        }.items():
            CfnOutput(self, name, value=value)
