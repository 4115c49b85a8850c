"""The interactive path: a real-time SageMaker multi-model endpoint on the Triton image.

The model's ``ModelDataUrl`` is an S3 *prefix*; each model is one archive under it (``<name>.tar.gz`` written by
``model_code.triton_model.package.package_triton_model``), and a request picks one with
``TargetModel="<name>.tar.gz"``. SageMaker loads an archive on its first request and evicts the least recently
used ones under memory pressure, so adding a model is copying an archive under the prefix: no endpoint update
(``monai-platform archives add``). A real-time endpoint cannot scale to zero, so the whole construct exists
only when ``serving.multiModelEnabled`` is true: its ``multiModelMinInstances`` instances bill every hour.
"""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sagemaker as sagemaker
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from stacks.components.security_group import https_egress_security_group
from stacks.config import PlatformConfig
from stacks.container_images.names import TRITON_INFERENCE, image_uri_parameter_name
from stacks.props import ModelStore, WorkloadNetwork
from stacks.serving.hosting import (
    SCALE_IN_COOLDOWN,
    SCALE_OUT_COOLDOWN,
    VARIANT_NAME,
    variant_scalable_target,
    workload_vpc_config,
)
from stacks.serving.roles import multi_model_role
from stacks.serving.volume import acknowledge_instance_storage, volume_key_arn

# Archives live here in the model-artifacts bucket, apart from the asynchronous endpoint's models/spleen/.
MULTI_MODEL_PREFIX = "models/triton/"
# SageMakerVariantInvocationsPerInstance counts requests per instance per minute. A segmentation takes seconds
# on a GPU, so about five a minute keeps each instance busy without queueing callers for long.
INVOCATIONS_PER_INSTANCE_TARGET = 5

_MIB = 1024 * 1024
# Read by the SageMaker Triton image's `serve` script. SAGEMAKER_TRITON_DEFAULT_MODEL_NAME is deliberately
# absent: it names the single model of a single-model endpoint; in MultiModel mode (SageMaker sets
# SAGEMAKER_MULTI_MODEL=true) the script starts an empty repository and SageMaker loads the TargetModel archives.
TRITON_ENVIRONMENT = {
    # The python backend passes tensors through shared memory: a series zip is ~25 MB and the SEG comes back the
    # same way, well past the 16 MiB default region (it grows in 16 MiB steps instead of the default 1 MiB).
    "SAGEMAKER_TRITON_SHM_DEFAULT_BYTE_SIZE": str(64 * _MIB),
    "SAGEMAKER_TRITON_SHM_GROWTH_BYTE_SIZE": str(16 * _MIB),
    # Refuse to load another model past 80% of GPU memory, so SageMaker evicts an idle one instead of the
    # running model failing with CUDA out-of-memory.
    "SAGEMAKER_TRITON_MODEL_LOAD_GPU_LIMIT": "0.8",
    # The script defaults to verbose logging (every request's metadata); info, warnings and errors are enough.
    "SAGEMAKER_TRITON_LOG_VERBOSE": "false",
}


class MultiModelEndpoint(Construct):
    """``endpoint_name``, ``model_prefix`` (key prefix in the model-artifacts bucket) and ``role`` are public."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        config: PlatformConfig,
        data_key: kms.IKey,
        model_store: ModelStore,
        network: WorkloadNetwork,
        repository: ecr.IRepository,
    ) -> None:
        super().__init__(scope, id_)
        srv = config.serving
        bucket = model_store.bucket
        self.endpoint_name = f"{config.prefix}-triton-mme"
        self.model_prefix = MULTI_MODEL_PREFIX
        self.model_prefix_url = bucket.s3_url_for_object(MULTI_MODEL_PREFIX)

        # SageMaker fetches the archives and the image through the VPC (S3 gateway prefix list, ECR endpoints).
        self.security_group = https_egress_security_group(
            self,
            "SecurityGroup",
            vpc=network.vpc,
            description="Multi-model endpoint - HTTPS out to the AWS service endpoints of the VPC only, nothing in",
        )

        self.role = multi_model_role(
            self,
            "Role",
            endpoint_name=self.endpoint_name,
            bucket=bucket,
            model_prefix=MULTI_MODEL_PREFIX,
            repository=repository,
        )

        image_uri = ssm.StringParameter.value_for_string_parameter(
            Stack.of(self), image_uri_parameter_name(config.prefix, TRITON_INFERENCE)
        )
        model = sagemaker.CfnModel(
            self,
            "Model",
            execution_role_arn=self.role.role_arn,
            primary_container=sagemaker.CfnModel.ContainerDefinitionProperty(
                image=image_uri,
                mode="MultiModel",
                model_data_url=self.model_prefix_url,
                environment=dict(TRITON_ENVIRONMENT),
            ),
            vpc_config=workload_vpc_config(network, self.security_group),
            # Unlike the asynchronous handler, the Triton model gets the study in the request and returns the
            # SEG: it calls nothing, so the container gets no network at all (SageMaker still loads archives).
            enable_network_isolation=True,
        )
        model.node.add_dependency(self.role)

        endpoint_config = sagemaker.CfnEndpointConfig(
            self,
            "EndpointConfig",
            production_variants=[
                sagemaker.CfnEndpointConfig.ProductionVariantProperty(
                    variant_name=VARIANT_NAME,
                    model_name=model.attr_model_name,
                    instance_type=srv.multi_model_instance_type,
                    initial_instance_count=srv.multi_model_min_instances,
                    initial_variant_weight=1.0,
                )
            ],
            kms_key_id=volume_key_arn(srv.multi_model_instance_type, data_key),
        )
        acknowledge_instance_storage(endpoint_config, srv.multi_model_instance_type)

        self.endpoint = sagemaker.CfnEndpoint(
            self,
            "Endpoint",
            endpoint_name=self.endpoint_name,
            endpoint_config_name=endpoint_config.attr_endpoint_config_name,
        )

        self.scalable_target = variant_scalable_target(
            self,
            "ScalableTarget",
            endpoint_name=self.endpoint_name,
            endpoint=self.endpoint,
            min_capacity=srv.multi_model_min_instances,
            max_capacity=srv.multi_model_max_instances,
        )
        self.scalable_target.scale_to_track_metric(
            "InvocationsPerInstance",
            target_value=INVOCATIONS_PER_INSTANCE_TARGET,
            predefined_metric=appscaling.PredefinedMetric.SAGEMAKER_VARIANT_INVOCATIONS_PER_INSTANCE,
            scale_in_cooldown=SCALE_IN_COOLDOWN,
            scale_out_cooldown=SCALE_OUT_COOLDOWN,
        )
