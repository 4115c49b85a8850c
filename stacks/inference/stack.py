"""Inference stack: image sets created in HealthImaging are segmented by the async endpoint, automatically.

Flow: "Image Set Created" (the HealthImaging stack's pattern, filtered to the platform's data store) -> EventBridge
rule -> ``RequestInference`` (request JSON under ``input/`` + InvokeEndpointAsync, idempotent) -> the endpoint
writes the SEG under ``output/`` and notifies the serving stack's success or error topic.
Success topic -> ``ImportSeg`` (only when ``serving.importSegBack``) -> SEG stored into its study with DICOMweb
STOW-RS (HealthImaging's StoreDICOM, SigV4, through the network stack's DICOMweb endpoint), the result JSON naming
the stored instance under ``output/results/``, then one message on the results topic (``<prefix>-results``: the
stored UIDs, the model, the result JSON and the viewer's deep link; ``notificationEmails`` subscribed); a SEG too big
for that is copied into the inbox's ``incoming/inference-seg/`` prefix and imported with the HealthImaging stack's
import role.
Success topic -> ``IndexResult`` (always) -> one record per result in the results index (``results-index/``),
queried through the Glue table and Athena workgroup of ``results_table.py``.
``Backfill`` (stacks/backfill/workflow.py): a Step Functions Distributed Map runs an archive's image sets through
the same endpoint, keeping its backlog near ``backfill.backlogTarget``.
Error topic -> ``failure_queue`` (kept 14 days for inspection; the monitoring stack alarms on its depth).
Undeliverable events and failed function invocations -> ``dead_letter_queue`` (alarmed too).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aws_cdk import CfnOutput, Duration, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from stacks.backfill.workflow import BackfillWorkflow
from stacks.components.function_shared.results_layout import RESULTS_PREFIX
from stacks.components.keys import allow_service, rotating_key
from stacks.components.platform_function import (
    acknowledge_function_role,
    encrypted_queue,
    function_target,
    platform_function,
)
from stacks.components.security_group import https_egress_security_group
from stacks.config import PlatformConfig
from stacks.data.stack import INBOX_INCOMING_PREFIX, INFERENCE_INPUT_PREFIX, INFERENCE_OUTPUT_PREFIX
from stacks.healthimaging.stack import HEALTHIMAGING_SERVICE
from stacks.inference.results_table import ResultsTable
from stacks.inference.runtime import import_seg, index_result, request_inference
from stacks.props import AsyncEndpoint, DicomStore, PlatformKeys, WorkloadNetwork

RUNTIME_DIR = str(Path(__file__).resolve().parent / "runtime")
# Inbox prefix the SEG imports read: under incoming/ (the import role's only readable prefix), never holding a
# manifest.json, so the batch-import rule of the HealthImaging stack does not fire for it.
SEG_IMPORT_PREFIX = f"{INBOX_INCOMING_PREFIX}inference-seg/"
# Where ImportSeg writes each result JSON (the stored instance): under output/, so its lifecycle rule applies.
RESULT_PREFIX = f"{INFERENCE_OUTPUT_PREFIX}results/"
# The HealthImaging DICOMweb actions the write-back signs for: the store, and the read-back that confirms it.
DICOMWEB_STORE_ACTIONS = ("medical-imaging:StoreDICOM", "medical-imaging:GetDICOMInstanceMetadata")
# Each request wakes a GPU instance at most; a burst of image sets queues in the endpoint, not in Lambda.
FUNCTION_RESERVED_CONCURRENCY = 5
FUNCTION_TIMEOUT = Duration.seconds(60)


def results_topic_name(prefix: str) -> str:
    """The topic ImportSeg announces each stored SEG on (beside the monitoring stack's ``<prefix>-alarms``)."""
    return f"{prefix}-results"


IAM5_REASON = (
    "Wildcards come from CDK grants scoped to one bucket prefix (input/ or output/ of the inference bucket, the "
    "inbox's inference-seg/ prefix), KMS actions such as kms:GenerateDataKey* on one key, and the image sets of "
    "the platform's single data store."
)


class InferenceStack(Stack):
    """``request_function``, ``import_seg_function`` and ``results_topic`` (None when the write-back is off),
    ``functions`` (those that exist), ``dead_letter_queue`` and ``failure_queue``."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        config: PlatformConfig,
        keys: PlatformKeys,
        network: WorkloadNetwork,
        inference_bucket: s3.IBucket,
        inbox_bucket: s3.IBucket,
        import_output_bucket: s3.IBucket,
        dicom_store: DicomStore,
        endpoint: AsyncEndpoint,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, id_, **kwargs)
        self._keys = keys
        self._network = network
        self._sns_may_redrive = False
        # The queues' own key: SNS and EventBridge deliver into them with it, and its policy names this stack's
        # topics and rules; the data stack's key cannot reference them without a cycle (serving depends on data).
        self.queue_key = rotating_key(
            self,
            "QueueKey",
            alias=f"alias/{config.prefix}/inference-queues",
            description="Encrypts the inference dead-letter and failure queues (image set and inference IDs)",
        )
        # EventBridge encrypts what it redrives into the dead-letter queue.
        allow_service(
            self.queue_key,
            "events.amazonaws.com",
            ["kms:Decrypt", "kms:GenerateDataKey*"],
            sid="AllowEventBridgeDeadLettersOfThisAccount",
        )
        self.dead_letter_queue = self._queue(
            "DeadLetterQueue",
            "This queue is itself the dead-letter queue of the inference rule and functions; a queue behind it "
            "would only move the same undeliverable events again.",
        )
        self.failure_queue = self._queue(
            "FailureQueue",
            "This queue only keeps the endpoint's failure notifications for inspection; nothing consumes it, so "
            "no message can fail processing and need a dead-letter queue.",
        )
        endpoint.error_topic.add_subscription(
            subscriptions.SqsSubscription(self.failure_queue, raw_message_delivery=True)
        )

        self.security_group = https_egress_security_group(
            self,
            "FunctionSecurityGroup",
            vpc=network.vpc,
            description="Inference functions - HTTPS out to the VPC endpoints of AWS services only",
        )

        bucket = inference_bucket
        datastore_arn = dicom_store.datastore_arn
        self.request_function = self._function(
            "RequestInference",
            handler="request_inference.handler",
            description="Requests the segmentation of each image set created in the platform's data store",
            environment={
                request_inference.ENV_ENDPOINT_NAME: endpoint.name,
                request_inference.ENV_BUCKET: bucket.bucket_name,
                request_inference.ENV_INPUT_PREFIX: INFERENCE_INPUT_PREFIX,
                request_inference.ENV_DATASTORE_ID: dicom_store.datastore_id,
            },
        )
        # Requests and claims are written, read back (claims) and deleted (a released claim) under input/ only.
        self.request_function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                resources=[bucket.arn_for_objects(f"{INFERENCE_INPUT_PREFIX}*")],
            )
        )
        keys.data_key.grant_encrypt_decrypt(self.request_function)
        self.request_function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["sagemaker:InvokeEndpointAsync"],
                resources=[
                    self.format_arn(service="sagemaker", resource="endpoint", resource_name=endpoint.name)
                ],
            )
        )
        self.request_function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["medical-imaging:GetImageSetMetadata"],
                resources=[datastore_arn, f"{datastore_arn}/imageset/*"],
            )
        )
        self.image_set_created_rule = events.Rule(
            self,
            "ImageSetCreatedRule",
            description="Requests a segmentation for each image set created in the platform's data store",
            event_pattern=dicom_store.image_set_created_pattern,
            targets=[function_target(self.request_function, dead_letter_queue=self.dead_letter_queue)],
        )

        self.import_seg_function: lambda_.Function | None = None
        self.results_topic: sns.Topic | None = None
        if config.serving.import_seg_back:
            # Only the write-back knows where a SEG was stored: without it nothing would publish here.
            self.results_topic = self._results_topic(config)
            self.import_seg_function = self._import_seg_function(
                results_topic=self.results_topic,
                viewer_url=config.viewer.url,
                inference_bucket=inference_bucket,
                inbox_bucket=inbox_bucket,
                import_output_bucket=import_output_bucket,
                dicom_store=dicom_store,
                endpoint=endpoint,
            )

        self.index_function = self._index_function(inference_bucket=inference_bucket, endpoint=endpoint)
        self.results_table = ResultsTable(
            self, "ResultsTable", prefix=config.prefix, bucket=inference_bucket, key=keys.data_key
        )
        # The backfill of an archive goes through the same endpoint, bucket and data store (stacks/backfill).
        self.backfill = BackfillWorkflow(
            self, "Backfill", config=config, keys=keys, vpc=network.vpc, subnets=network.subnets,
            security_group=self.security_group, dead_letter_queue=self.dead_letter_queue, bucket=inference_bucket,
            dicom_store=dicom_store, endpoint=endpoint,
        )  # fmt: skip

        # What the monitoring stack graphs.
        self.functions = tuple(
            f for f in (self.request_function, self.import_seg_function, self.index_function) if f is not None
        )
        for function in self.functions:
            acknowledge_function_role(function, IAM5_REASON)

        CfnOutput(self, "DeadLetterQueueUrl", value=self.dead_letter_queue.queue_url)
        CfnOutput(self, "BackfillStateMachineArn", value=self.backfill.state_machine.state_machine_arn)
        CfnOutput(self, "ResultsDatabase", value=self.results_table.database_name)
        CfnOutput(self, "ResultsWorkGroup", value=self.results_table.workgroup.ref)
        CfnOutput(self, "FailureQueueUrl", value=self.failure_queue.queue_url)
        if self.results_topic is not None:
            CfnOutput(self, "ResultsTopicArn", value=self.results_topic.topic_arn,
                      description="One message per SEG stored into its study (docs/inference.md)")

    def _results_topic(self, config: PlatformConfig) -> sns.Topic:
        # The data key, as the serving stack's success and error topics: the messages name studies and image sets.
        topic = sns.Topic(
            self,
            "ResultsTopic",
            topic_name=results_topic_name(config.prefix),
            display_name=f"{config.prefix} stored segmentations",
            master_key=self._keys.data_key,
            enforce_ssl=True,
        )
        for email in config.notification_emails:
            topic.add_subscription(subscriptions.EmailSubscription(email))
        return topic

    def _import_seg_function(
        self,
        *,
        results_topic: sns.ITopic,
        viewer_url: str | None,
        inference_bucket: s3.IBucket,
        inbox_bucket: s3.IBucket,
        import_output_bucket: s3.IBucket,
        dicom_store: DicomStore,
        endpoint: AsyncEndpoint,
    ) -> lambda_.Function:
        function = self._function(
            "ImportSeg",
            handler="import_seg.handler",
            description="Stores each segmentation the async endpoint produced back into its study (STOW-RS)",
            environment={
                import_seg.ENV_DATASTORE_ID: dicom_store.datastore_id,
                import_seg.ENV_IMPORT_ROLE_ARN: dicom_store.import_role.role_arn,
                import_seg.ENV_INBOX_BUCKET: inbox_bucket.bucket_name,
                import_seg.ENV_SEG_PREFIX: SEG_IMPORT_PREFIX,
                import_seg.ENV_IMPORT_OUTPUT_BUCKET: import_output_bucket.bucket_name,
                import_seg.ENV_DICOMWEB_ENDPOINT: f"https://dicom-medical-imaging.{self.region}.{self.url_suffix}",
                import_seg.ENV_SIGNING_REGION: self.region,
                import_seg.ENV_INFERENCE_BUCKET: inference_bucket.bucket_name,
                import_seg.ENV_RESULT_PREFIX: RESULT_PREFIX,
                import_seg.ENV_RESULTS_TOPIC_ARN: results_topic.topic_arn,
                # The viewer stack's URL (known at synth): each stored result names its deep link (viewerUrl).
                **({import_seg.ENV_VIEWER_URL: viewer_url} if viewer_url else {}),
            },
        )
        inference_bucket.grant_read(function, f"{INFERENCE_OUTPUT_PREFIX}*")
        inference_bucket.grant_put(function, f"{RESULT_PREFIX}*")
        # sns:Publish on this topic only, and kms:Decrypt / kms:GenerateDataKey* on its key (the data key).
        results_topic.grant_publish(function)
        # STOW-RS into the one data store (StoreDICOM takes the data store as its resource), and the read-back.
        function.add_to_role_policy(
            iam.PolicyStatement(actions=list(DICOMWEB_STORE_ACTIONS), resources=[dicom_store.datastore_arn])
        )
        inbox_bucket.grant_put(function, f"{SEG_IMPORT_PREFIX}*")
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["medical-imaging:StartDICOMImportJob"], resources=[dicom_store.datastore_arn]
            )
        )
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["iam:PassRole"],
                resources=[dicom_store.import_role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": HEALTHIMAGING_SERVICE}},
            )
        )
        self._subscribe_to_results(function, endpoint)
        return function

    def _index_function(self, *, inference_bucket: s3.IBucket, endpoint: AsyncEndpoint) -> lambda_.Function:
        function = self._function(
            "IndexResult",
            handler="index_result.handler",
            description="Writes one results-index record (UIDs, model, volumes, timings) per finished segmentation",
            environment={
                index_result.ENV_INFERENCE_BUCKET: inference_bucket.bucket_name,
                index_result.ENV_RESULTS_PREFIX: RESULTS_PREFIX,
            },
        )
        # It reads the SEGs under output/ and writes records under results-index/, nothing else.
        inference_bucket.grant_read(function, f"{INFERENCE_OUTPUT_PREFIX}*")
        inference_bucket.grant_put(function, f"{RESULTS_PREFIX}*")
        self._subscribe_to_results(function, endpoint)
        return function

    def _subscribe_to_results(self, function: lambda_.Function, endpoint: AsyncEndpoint) -> None:
        endpoint.success_topic.add_subscription(
            subscriptions.LambdaSubscription(function, dead_letter_queue=self.dead_letter_queue)
        )
        if self._sns_may_redrive:
            return
        self._sns_may_redrive = True
        # SNS encrypts what it redrives into the dead-letter queue; only for this topic's deliveries.
        self.queue_key.grant(
            iam.PrincipalWithConditions(
                iam.ServicePrincipal("sns.amazonaws.com"),
                {"ArnEquals": {"aws:SourceArn": endpoint.success_topic.topic_arn}},
            ),
            "kms:Decrypt",
            "kms:GenerateDataKey*",
        )

    def _queue(self, id_: str, no_dlq_reason: str) -> sqs.Queue:
        return encrypted_queue(self, id_, key=self.queue_key, no_dead_letter_reason=no_dlq_reason)

    def _function(
        self, id_: str, *, handler: str, description: str, environment: dict[str, str]
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
            timeout=FUNCTION_TIMEOUT,
            memory_size=512,  # GetImageSetMetadata documents of large CT series are decompressed in memory
            reserved_concurrency=FUNCTION_RESERVED_CONCURRENCY,
            vpc=self._network.vpc,
            subnets=self._network.subnets,
            security_group=self.security_group,
            dead_letter_queue=self.dead_letter_queue,
        )
