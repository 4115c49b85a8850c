"""HealthImaging stack: the HealthImaging data store, its import role, and event-driven ingestion.

Flow: a ``manifest.json`` uploaded under ``incoming/<batch>/`` in the inbox -> S3 "Object Created" on
EventBridge -> ``StartImport`` function -> ``StartDICOMImportJob``. HealthImaging then emits events on the
default bus: "Import Job Completed" -> ``ImportCompleted`` function -> summary topic; "Import Job Failed" ->
alarm topic; "Image Set Created" -> image-set-created topic (and ``image_set_created_pattern`` for later rules).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aws_cdk import CfnOutput, Duration, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_healthimaging as healthimaging
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from stacks.compliance import acknowledge_grant_policy
from stacks.components.platform_function import (
    EVENT_RETRY_ATTEMPTS,
    acknowledge_function_role,
    encrypted_queue,
    function_target,
    platform_function,
)
from stacks.components.security_group import https_egress_security_group
from stacks.config import PlatformConfig
from stacks.data.stack import INBOX_INCOMING_PREFIX
from stacks.healthimaging.runtime import import_completed, start_import
from stacks.nag_wildcards import acknowledge_wildcards
from stacks.props import DicomStore, PlatformKeys, WorkloadNetwork

RUNTIME_DIR = str(Path(__file__).resolve().parent / "runtime")
HEALTHIMAGING_SERVICE = "medical-imaging.amazonaws.com"
HEALTHIMAGING_SOURCE = "aws.medical-imaging"
IMPORT_JOB_COMPLETED = "Import Job Completed"
IMPORT_JOB_FAILED = "Import Job Failed"
IMAGE_SET_CREATED = "Image Set Created"
MANIFEST_KEY_PATTERN = f"{INBOX_INCOMING_PREFIX}*/{start_import.MANIFEST_NAME}"
# An ingestion burst must not exhaust the account's concurrency; imports are asynchronous anyway.
FUNCTION_RESERVED_CONCURRENCY = 5

IAM5_FUNCTION_REASON = (
    "Wildcards here come from CDK grants scoped to one bucket (object keys under one prefix) and from KMS "
    "actions such as kms:GenerateDataKey* on the single data key; no statement spans other resources."
)
IAM5_TOPIC_RULE_REASON = (
    "The rule's events role publishes to one topic; kms:GenerateDataKey* is the topic grant's action family on "
    "the single data key that encrypts that topic, not a wildcard over keys or topics."
)
IAM5_IMPORT_ROLE_REASON = (
    "HealthImaging reads every object of a batch and writes result files it names itself, so object ARNs end "
    "in a wildcard; reads are limited to the inbox incoming/ prefix and writes to the import-output bucket."
)


class HealthImagingStack(Stack):
    """``dicom_store`` (data store, import role, image-set-created pattern) is what the inference flow takes;
    ``import_failed_rule`` and ``dead_letter_queue`` are what monitoring alarms on."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        config: PlatformConfig,
        keys: PlatformKeys,
        network: WorkloadNetwork,
        inbox_bucket: s3.IBucket,
        output_bucket: s3.IBucket,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, id_, **kwargs)
        data_key = keys.data_key
        self._keys = keys
        self._network = network

        self.datastore = healthimaging.CfnDatastore(
            self, "Datastore", datastore_name=f"{config.prefix}-dicom", kms_key_arn=data_key.key_arn
        )
        self.datastore_id = self.datastore.attr_datastore_id
        self.import_role = self._import_role(inbox_bucket=inbox_bucket, output_bucket=output_bucket)

        self.import_summary_topic = self._topic("ImportSummaryTopic", "HealthImaging import job summaries", config)
        self.import_alarm_topic = self._topic(
            "ImportAlarmTopic", "HealthImaging import failures and rejected batch manifests", config
        )
        self.image_set_created_topic = self._topic("ImageSetCreatedTopic", "HealthImaging image sets created", config)
        self.dead_letter_queue = encrypted_queue(
            self,
            "DeadLetterQueue",
            key=data_key,
            no_dead_letter_reason="This queue is itself the dead-letter queue of the ingestion functions and rules; "
            "a queue behind it would only move the same undeliverable events again.",
        )

        self.security_group = https_egress_security_group(
            self,
            "FunctionSecurityGroup",
            vpc=network.vpc,
            description="Ingestion functions: HTTPS out to the VPC endpoints of AWS services only",
        )

        self.start_import_function = self._function(
            "StartImport",
            handler="start_import.handler",
            description="Starts a HealthImaging import when a batch manifest lands in the DICOM inbox",
            environment={
                start_import.ENV_DATASTORE_ID: self.datastore_id,
                start_import.ENV_IMPORT_ROLE_ARN: self.import_role.role_arn,
                start_import.ENV_OUTPUT_BUCKET: output_bucket.bucket_name,
                start_import.ENV_INCOMING_PREFIX: INBOX_INCOMING_PREFIX,
                start_import.ENV_NOTIFICATION_TOPIC_ARN: self.import_alarm_topic.topic_arn,
            },
        )
        inbox_bucket.grant_read(self.start_import_function, f"{INBOX_INCOMING_PREFIX}*")
        self.import_alarm_topic.grant_publish(self.start_import_function)
        self.start_import_function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["medical-imaging:StartDICOMImportJob"], resources=[self.datastore.attr_datastore_arn]
            )
        )
        self.start_import_function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["iam:PassRole"],
                resources=[self.import_role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": HEALTHIMAGING_SERVICE}},
            )
        )

        self.import_completed_function = self._function(
            "ImportCompleted",
            handler="import_completed.handler",
            description="Publishes the summary of a completed HealthImaging import job",
            environment={import_completed.ENV_SUMMARY_TOPIC_ARN: self.import_summary_topic.topic_arn},
        )
        output_bucket.grant_read(self.import_completed_function)
        self.import_summary_topic.grant_publish(self.import_completed_function)
        # An event without the job's output location is completed from the job (runtime/import_completed.py).
        self.import_completed_function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["medical-imaging:GetDICOMImportJob"], resources=[self.datastore.attr_datastore_arn]
            )
        )
        for function in (self.start_import_function, self.import_completed_function):
            acknowledge_function_role(function, IAM5_FUNCTION_REASON)

        self.manifest_uploaded_rule = events.Rule(
            self,
            "ManifestUploadedRule",
            description="A batch manifest uploaded to the DICOM inbox starts its import",
            event_pattern=events.EventPattern(
                source=["aws.s3"],
                detail_type=["Object Created"],
                detail={
                    "bucket": {"name": [inbox_bucket.bucket_name]},
                    "object": {"key": events.Match.wildcard(MANIFEST_KEY_PATTERN)},
                },
            ),
            targets=[function_target(self.start_import_function, dead_letter_queue=self.dead_letter_queue)],
        )
        self.import_completed_rule = events.Rule(
            self,
            "ImportJobCompletedRule",
            description="Summarizes completed HealthImaging import jobs of this data store",
            event_pattern=self._healthimaging_pattern(IMPORT_JOB_COMPLETED),
            targets=[function_target(self.import_completed_function, dead_letter_queue=self.dead_letter_queue)],
        )
        self.import_failed_rule = events.Rule(
            self,
            "ImportJobFailedRule",
            description="Alarms on failed HealthImaging import jobs of this data store",
            event_pattern=self._healthimaging_pattern(IMPORT_JOB_FAILED),
            targets=[self._topic_target(self.import_alarm_topic)],
        )
        # The inference flow subscribes to the topic or adds its own rule with this pattern.
        self.image_set_created_pattern = self._healthimaging_pattern(IMAGE_SET_CREATED)
        self.image_set_created_rule = events.Rule(
            self,
            "ImageSetCreatedRule",
            description="Publishes image sets created in this data store for the inference flow",
            event_pattern=self.image_set_created_pattern,
            targets=[self._topic_target(self.image_set_created_topic)],
        )
        self.dicom_store = DicomStore(
            datastore_id=self.datastore_id,
            datastore_arn=self.datastore.attr_datastore_arn,
            import_role=self.import_role,
            image_set_created_pattern=self.image_set_created_pattern,
        )

        for topic_rule in (self.import_failed_rule, self.image_set_created_rule):
            events_role = topic_rule.node.find_child("EventsRole")
            acknowledge_grant_policy(events_role)
            acknowledge_wildcards(events_role.node.find_child("DefaultPolicy"), IAM5_TOPIC_RULE_REASON)

        for name, value in {
            "DatastoreId": self.datastore_id,
            "ImportRoleArn": self.import_role.role_arn,
            "ImportSummaryTopicArn": self.import_summary_topic.topic_arn,
            "ImportAlarmTopicArn": self.import_alarm_topic.topic_arn,
            "ImageSetCreatedTopicArn": self.image_set_created_topic.topic_arn,
            "DeadLetterQueueUrl": self.dead_letter_queue.queue_url,
        }.items():
            CfnOutput(self, name, value=value)

    def _import_role(self, *, inbox_bucket: s3.IBucket, output_bucket: s3.IBucket) -> iam.Role:
        """The role HealthImaging assumes for an import: read the inbox batch, write the results, nothing else."""
        role = iam.Role(
            self,
            "ImportRole",
            description="Assumed by HealthImaging import jobs: reads incoming/ in the inbox, writes import output",
            assumed_by=iam.ServicePrincipal(
                HEALTHIMAGING_SERVICE,
                # Confused-deputy guard: only HealthImaging acting for this account can assume the role.
                conditions={"StringEquals": {"aws:SourceAccount": Stack.of(self).account}},
            ),
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ListInboxIncoming",
                actions=["s3:ListBucket"],
                resources=[inbox_bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{INBOX_INCOMING_PREFIX}*"]}},
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ReadInboxIncoming",
                actions=["s3:GetObject"],
                resources=[inbox_bucket.arn_for_objects(f"{INBOX_INCOMING_PREFIX}*")],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(sid="ListImportOutput", actions=["s3:ListBucket"], resources=[output_bucket.bucket_arn])
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="WriteImportOutput", actions=["s3:PutObject"], resources=[output_bucket.arn_for_objects("*")]
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="UseDataKeyForBuckets",
                actions=["kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"],
                resources=[self._keys.data_key.key_arn],
            )
        )
        acknowledge_grant_policy(role)
        acknowledge_wildcards(role.node.find_child("DefaultPolicy"), IAM5_IMPORT_ROLE_REASON)
        return role

    def _topic(self, id_: str, display_name: str, config: PlatformConfig) -> sns.Topic:
        topic = sns.Topic(self, id_, display_name=display_name, master_key=self._keys.data_key, enforce_ssl=True)
        for email in config.notification_emails:
            topic.add_subscription(subscriptions.EmailSubscription(email))
        return topic

    def _function(
        self,
        id_: str,
        *,
        handler: str,
        description: str,
        environment: dict[str, str],
    ) -> lambda_.Function:
        return platform_function(
            self,
            id_,
            runtime_dir=RUNTIME_DIR,
            handler=handler,
            description=description,
            environment=environment,
            environment_key=self._keys.data_key,
            logs_key=self._keys.logs_key,
            timeout=Duration.seconds(60),
            memory_size=256,
            reserved_concurrency=FUNCTION_RESERVED_CONCURRENCY,
            vpc=self._network.vpc,
            subnets=self._network.subnets,
            security_group=self.security_group,
            dead_letter_queue=self.dead_letter_queue,
        )

    def _topic_target(self, topic: sns.ITopic) -> targets.SnsTopic:
        # Published with a role of this stack, granted on the topic and the data key: without it, CDK would let
        # events.amazonaws.com (any account's rules) use the data key. Dead letters still go through EventBridge
        # itself, which the data stack's key policy admits for this account only (stacks/components/keys.py).
        return targets.SnsTopic(
            topic,
            authorize_using_role=True,
            dead_letter_queue=self.dead_letter_queue,
            retry_attempts=EVENT_RETRY_ATTEMPTS,
        )

    def _healthimaging_pattern(self, detail_type: str) -> events.EventPattern:
        return events.EventPattern(
            source=[HEALTHIMAGING_SOURCE],
            detail_type=[detail_type],
            detail={"datastoreId": [self.datastore_id]},
        )
