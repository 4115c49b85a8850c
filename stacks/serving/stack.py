"""Serving stack: the spleen segmentation model behind an asynchronous SageMaker endpoint that scales from zero,
and (``serving.multiModelEnabled``) a real-time multi-model endpoint on the Triton image (multi_model.py).

Requests are JSON documents in the inference bucket's ``input/`` prefix; results land under ``output/``,
failures under ``failures/``, and SageMaker announces each on an encrypted SNS topic. Capacity follows the
queue: target tracking on ApproximateBacklogSizePerInstance, plus a step policy on HasBacklogWithoutCapacity,
because with zero instances the target-tracking metric is never emitted and its alarm never wakes the endpoint.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Duration, Stack
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sagemaker as sagemaker
from aws_cdk import aws_sns as sns
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from model_code.core.settings import SAGEMAKER_MODEL_SERVER_WORKERS, SERVING_INTRA_OP_THREADS
from model_code.core.threads import ThreadPlan
from stacks.compliance import skip_checkov
from stacks.components.security_group import https_egress_security_group
from stacks.config import PlatformConfig
from stacks.container_images.names import PYTORCH_INFERENCE, image_uri_parameter_name
from stacks.data.stack import INFERENCE_FAILURE_PREFIX, INFERENCE_OUTPUT_PREFIX
from stacks.props import AsyncEndpoint, ModelStore, PlatformKeys, WorkloadNetwork
from stacks.serving.hosting import (
    SCALE_IN_COOLDOWN,
    SCALE_OUT_COOLDOWN,
    VARIANT_NAME,
    variant_scalable_target,
    workload_vpc_config,
)
from stacks.serving.multi_model import MultiModelEndpoint
from stacks.serving.roles import endpoint_role
from stacks.serving.volume import acknowledge_instance_storage, volume_key_arn

# SageMaker's metrics for asynchronous endpoints (namespace AWS/SageMaker, dimension EndpointName).
BACKLOG_PER_INSTANCE = "ApproximateBacklogSizePerInstance"
BACKLOG_WITHOUT_CAPACITY = "HasBacklogWithoutCapacity"

NETWORK_ISOLATION_REASON = (
    "The handler fetches image frames from AWS HealthImaging and reads DICOM from S3 at request time, which "
    "network isolation forbids; the model runs in the workload subnets behind a security group that lets only "
    "HTTPS out, "
)
# What the workload subnets are (tests/stacks/controls.py checks "isolated" against the synthesized NAT gateways).
WORKLOAD_SUBNET_REASONS = {
    False: "isolated private subnets that reach AWS only via VPC endpoints.",
    True: "private subnets whose other HTTPS traffic leaves through the VPC's NAT gateways (natGateways > 0).",
}


def thread_environment(plan: ThreadPlan) -> dict[str, str]:
    """TorchServe's workers (the inference toolkit's variable) and each worker's torch threads: together within
    the instance's vCPUs (model_code/core/threads.py); the approval stack's new models copy this environment."""
    return {SAGEMAKER_MODEL_SERVER_WORKERS: str(plan.workers), SERVING_INTRA_OP_THREADS: str(plan.threads)}


class ServingStack(Stack):
    """``endpoint`` (name, role, success and error topics) is what event-driven inference, approval and monitoring
    build on; ``multi_model`` is the multi-model endpoint, or None when it is disabled."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        config: PlatformConfig,
        keys: PlatformKeys,
        network: WorkloadNetwork,
        model_store: ModelStore,
        inference_bucket: s3.IBucket,
        inference_image_repository: ecr.IRepository,
        triton_image_repository: ecr.IRepository,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, id_, **kwargs)
        srv = config.serving
        data_key = keys.data_key
        self.endpoint_name = f"{config.prefix}-spleen-async"

        self.success_topic = sns.Topic(
            self,
            "InferenceSucceeded",
            topic_name=f"{self.endpoint_name}-succeeded",
            master_key=data_key,
            enforce_ssl=True,
        )
        self.error_topic = sns.Topic(
            self, "InferenceFailed", topic_name=f"{self.endpoint_name}-failed", master_key=data_key, enforce_ssl=True
        )

        self.security_group = https_egress_security_group(
            self,
            "EndpointSecurityGroup",
            vpc=network.vpc,
            description="Async endpoint - HTTPS out to the AWS service endpoints of the VPC only, nothing in",
        )

        self.role = endpoint_role(
            self,
            "EndpointRole",
            endpoint_name=self.endpoint_name,
            model_store=model_store,
            inference_bucket=inference_bucket,
            data_key=data_key,
            repository=inference_image_repository,
            model_data_key=srv.model_data_key,
            topics=(self.success_topic, self.error_topic),
        )

        # Resolved by CloudFormation at deploy time (the image pipeline writes it): synth needs no lookup.
        image_uri = ssm.StringParameter.value_for_string_parameter(
            self, image_uri_parameter_name(config.prefix, PYTORCH_INFERENCE)
        )
        model = sagemaker.CfnModel(
            self,
            "Model",
            execution_role_arn=self.role.role_arn,
            primary_container=sagemaker.CfnModel.ContainerDefinitionProperty(
                image=image_uri,
                # The handler picks CUDA when the instance has a GPU (model_code/serving/settings.py).
                model_data_url=model_store.bucket.s3_url_for_object(srv.model_data_key),
                environment=thread_environment(srv.async_thread_plan()),
            ),
            vpc_config=workload_vpc_config(network, self.security_group),
            enable_network_isolation=False,
        )
        model.node.add_dependency(self.role)
        skip_checkov(
            model, {"CKV_AWS_370": NETWORK_ISOLATION_REASON + WORKLOAD_SUBNET_REASONS[config.network.nat_gateways > 0]}
        )

        bucket = inference_bucket
        endpoint_config = sagemaker.CfnEndpointConfig(
            self,
            "EndpointConfig",
            production_variants=[
                sagemaker.CfnEndpointConfig.ProductionVariantProperty(
                    variant_name=VARIANT_NAME,
                    model_name=model.attr_model_name,
                    instance_type=srv.async_instance_type,
                    # SageMaker creates an endpoint with at least one instance; the scaling policy below then
                    # takes it down to asyncMinInstances (0 by default) once the queue is empty.
                    initial_instance_count=max(1, srv.async_min_instances),
                    initial_variant_weight=1.0,
                )
            ],
            kms_key_id=volume_key_arn(srv.async_instance_type, data_key),
            async_inference_config=sagemaker.CfnEndpointConfig.AsyncInferenceConfigProperty(
                output_config=sagemaker.CfnEndpointConfig.AsyncInferenceOutputConfigProperty(
                    s3_output_path=bucket.s3_url_for_object(INFERENCE_OUTPUT_PREFIX),
                    s3_failure_path=bucket.s3_url_for_object(INFERENCE_FAILURE_PREFIX),
                    kms_key_id=data_key.key_arn,
                    notification_config=sagemaker.CfnEndpointConfig.AsyncInferenceNotificationConfigProperty(
                        success_topic=self.success_topic.topic_arn, error_topic=self.error_topic.topic_arn
                    ),
                ),
                client_config=sagemaker.CfnEndpointConfig.AsyncInferenceClientConfigProperty(
                    max_concurrent_invocations_per_instance=srv.async_concurrent_invocations()
                ),
            ),
        )
        acknowledge_instance_storage(endpoint_config, srv.async_instance_type)

        endpoint = sagemaker.CfnEndpoint(
            self,
            "Endpoint",
            endpoint_name=self.endpoint_name,
            endpoint_config_name=endpoint_config.attr_endpoint_config_name,
        )
        self._autoscaling(config, endpoint)

        CfnOutput(self, "EndpointName", value=endpoint.attr_endpoint_name)
        # Where the endpoint reads its model (what `make deploy` seeds and `monai-platform doctor` checks).
        CfnOutput(self, "ModelDataUrl", value=model_store.bucket.s3_url_for_object(srv.model_data_key))
        CfnOutput(self, "SuccessTopicArn", value=self.success_topic.topic_arn)
        CfnOutput(self, "ErrorTopicArn", value=self.error_topic.topic_arn)
        self.endpoint = AsyncEndpoint(
            name=self.endpoint_name, role=self.role, success_topic=self.success_topic, error_topic=self.error_topic
        )

        # The interactive path, only when enabled: a real-time endpoint bills its minimum instances every hour.
        self.multi_model: MultiModelEndpoint | None = None
        if srv.multi_model_enabled:
            self.multi_model = MultiModelEndpoint(
                self,
                "MultiModel",
                config=config,
                data_key=data_key,
                model_store=model_store,
                network=network,
                repository=triton_image_repository,
            )
            CfnOutput(self, "MultiModelEndpointName", value=self.multi_model.endpoint.attr_endpoint_name)
            CfnOutput(self, "MultiModelArchivePrefix", value=self.multi_model.model_prefix_url)

    def _autoscaling(self, config: PlatformConfig, endpoint: Any) -> None:
        srv = config.serving
        self.scalable_target = variant_scalable_target(
            self,
            "ScalableTarget",
            endpoint_name=self.endpoint_name,
            endpoint=endpoint,
            min_capacity=srv.async_min_instances,
            max_capacity=srv.async_max_instances,
        )

        def metric(name: str, statistic: str) -> cloudwatch.Metric:
            return cloudwatch.Metric(
                namespace="AWS/SageMaker",
                metric_name=name,
                dimensions_map={"EndpointName": self.endpoint_name},
                statistic=statistic,
                period=Duration.minutes(1),
            )

        # Steady state: keep about `asyncBacklogPerInstanceTarget` queued requests per running instance.
        self.scalable_target.scale_to_track_metric(
            "BacklogPerInstance",
            target_value=srv.async_backlog_per_instance_target,
            custom_metric=metric(BACKLOG_PER_INSTANCE, "Average"),
            scale_in_cooldown=SCALE_IN_COOLDOWN,
            scale_out_cooldown=SCALE_OUT_COOLDOWN,
        )
        # From zero: the per-instance metric does not exist without instances, so a request arriving at a
        # scaled-in endpoint raises HasBacklogWithoutCapacity instead; this step policy adds the first instance.
        wake = appscaling.StepScalingAction(
            self,
            "WakeFromZero",
            scaling_target=self.scalable_target,
            adjustment_type=appscaling.AdjustmentType.CHANGE_IN_CAPACITY,
            cooldown=SCALE_OUT_COOLDOWN,
        )
        wake.add_adjustment(adjustment=1, lower_bound=0)
        self.wake_alarm = cloudwatch.Alarm(
            self,
            "BacklogWithoutCapacity",
            alarm_description=f"Requests are queued for {self.endpoint_name} but it has no instance: add one",
            metric=metric(BACKLOG_WITHOUT_CAPACITY, "Maximum"),
            threshold=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            evaluation_periods=1,
            datapoints_to_alarm=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self.wake_alarm.add_alarm_action(cloudwatch_actions.ApplicationScalingAction(wake))

