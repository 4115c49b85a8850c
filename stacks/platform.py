"""Builds every stack of one deployment stage from one configuration, in dependency order.

The one place that wires stacks together: each stack gets the narrow props it uses (stacks/props.py), built here
from what the stacks before it expose, never a sibling stack itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict

import aws_cdk as cdk
from constructs import Construct

from stacks.approval.stack import ApprovalStack
from stacks.audit.stack import AuditStack
from stacks.config import PlatformConfig
from stacks.container_images.names import PYTORCH_INFERENCE, TRAINING, TRITON_INFERENCE
from stacks.container_images.stack import ContainerImagesStack
from stacks.data.stack import DataStack
from stacks.edge.stack import EdgeStack
from stacks.healthimaging.stack import HealthImagingStack
from stacks.inference.stack import InferenceStack
from stacks.monitoring.stack import MonitoringStack
from stacks.network.stack import NetworkStack
from stacks.props import AuditedResources
from stacks.serving.stack import ServingStack
from stacks.training.stack import TrainingStack


@dataclass(frozen=True)
class Platform:
    data: DataStack
    network: NetworkStack
    healthimaging: HealthImagingStack
    container_images: ContainerImagesStack
    serving: ServingStack
    training: TrainingStack
    approval: ApprovalStack
    inference: InferenceStack
    monitoring: MonitoringStack
    audit: AuditStack
    # None when edge.enabled is false.
    edge: EdgeStack | None = None


class StackProps(TypedDict):
    """What every stack of a stage passes to ``cdk.Stack``."""

    env: cdk.Environment
    stack_name: str
    description: str
    termination_protection: bool


def stack_props(config: PlatformConfig, name: str) -> StackProps:
    """The stage's environment, ``<prefix>-<name>`` as the CloudFormation stack name, and prod's protection."""
    return {
        "env": cdk.Environment(account=config.account, region=config.region),
        "stack_name": f"{config.prefix}-{name.lower()}",
        "description": f"MONAI Imaging Platform ({config.stage}): {name.lower()} stack",
        "termination_protection": config.stage == "prod",
    }


def build_platform(
    scope: Construct, config: PlatformConfig, *, pipeline_account: str | None = None, build_images: bool = True
) -> Platform:
    """Instantiate the stacks of ``config.stage`` under ``scope`` (an App, or a stage of the release pipeline).

    ``pipeline_account``: the release pipeline's account; when it differs from the stage's, the container-images
    stack lets it push images and record their URIs. ``build_images``: False in the release pipeline, whose own
    step builds the images; the container-images stack then has no pipeline of its own and monitoring no build
    alarms.
    """
    tags = {"project": config.project_name, "stage": config.stage}

    # The construct IDs below ("Imaging", "Images", ...) are the deployed stacks' identity: they name the
    # CloudFormation stacks (<prefix>-imaging, <prefix>-images) and every logical ID inside them. The classes were
    # renamed (HealthImagingStack, ContainerImagesStack); the IDs stay, or a deploy would replace whole stacks.
    data = DataStack(scope, "Data", config=config, **stack_props(config, "Data"))
    keys = data.keys
    network = NetworkStack(scope, "Network", config=config, logs_key=keys.logs_key, **stack_props(config, "Network"))
    workload = network.workload
    healthimaging = HealthImagingStack(
        scope,
        "Imaging",
        config=config,
        keys=keys,
        network=workload,
        inbox_bucket=data.dicom_inbox_bucket,
        output_bucket=data.import_output_bucket,
        **stack_props(config, "Imaging"),
    )
    # Who read or changed patient data: the buckets' objects and the data store's image sets (or an existing
    # organization trail that records them, with audit.organizationTrailArn).
    audit = AuditStack(
        scope,
        "Audit",
        config=config,
        logs_key=keys.logs_key,
        access_logs_bucket=data.access_logs_bucket,
        audited=AuditedResources(
            patient_buckets=(
                data.dicom_inbox_bucket,
                data.import_output_bucket,
                data.training_data_bucket,
                data.model_artifacts_bucket,
                data.inference_bucket,
            ),
            log_buckets=(data.access_logs_bucket,),
            datastore_arns=(healthimaging.dicom_store.datastore_arn,),
        ),
        **stack_props(config, "Audit"),
    )
    container_images = ContainerImagesStack(
        scope,
        "Images",
        config=config,
        logs_key=keys.logs_key,
        access_logs_bucket=data.access_logs_bucket,
        network=workload,
        pipeline_account=pipeline_account,
        build_images=build_images,
        **stack_props(config, "Images"),
    )
    repositories = container_images.repositories
    # Reads the inference image URI that the images pipeline writes to SSM: deploy after its first run.
    serving = ServingStack(
        scope,
        "Serving",
        config=config,
        keys=keys,
        network=workload,
        model_store=data.model_store,
        inference_bucket=data.inference_bucket,
        inference_image_repository=repositories[PYTORCH_INFERENCE],
        triton_image_repository=repositories[TRITON_INFERENCE],
        **stack_props(config, "Serving"),
    )
    # Reads the training and inference image URIs from SSM, like serving: deploy after the pipeline's first run.
    training = TrainingStack(
        scope,
        "Training",
        config=config,
        keys=keys,
        network=workload,
        training_data_bucket=data.training_data_bucket,
        model_store=data.model_store,
        training_image_repository=repositories[TRAINING],
        **stack_props(config, "Training"),
    )
    # An approved model package in the training stack's group -> guarded update of the serving endpoint.
    approval = ApprovalStack(
        scope,
        "Approval",
        config=config,
        keys=keys,
        network=workload,
        model_store=data.model_store,
        endpoint=serving.endpoint,
        registry=training.registry,
        **stack_props(config, "Approval"),
    )
    # Image sets created in the data store -> the async endpoint; results optionally imported back.
    inference = InferenceStack(
        scope,
        "Inference",
        config=config,
        keys=keys,
        network=workload,
        inference_bucket=data.inference_bucket,
        inbox_bucket=data.dicom_inbox_bucket,
        import_output_bucket=data.import_output_bucket,
        dicom_store=healthimaging.dicom_store,
        endpoint=serving.endpoint,
        **stack_props(config, "Inference"),
    )
    # Last: alarms read the endpoint, rules, queues and builds of the stacks above.
    monitoring = MonitoringStack(
        scope,
        "Monitoring",
        config=config,
        endpoint_name=serving.endpoint.name,
        multi_model_endpoint_name=None if serving.multi_model is None else serving.multi_model.endpoint_name,
        import_failed_rule=healthimaging.import_failed_rule,
        image_build=container_images.build,
        # Every queue whose messages are failures: each gets an alarm on its depth.
        failure_queues={
            "ImagingDeadLetters": healthimaging.dead_letter_queue,
            "ApprovalDeadLetters": approval.dead_letter_queue,
            "InferenceDeadLetters": inference.dead_letter_queue,
            "InferenceFailures": inference.failure_queue,
        },
        inference_functions=inference.functions,
        **stack_props(config, "Monitoring"),
    )
    # Offline sites: the edge runner as a Greengrass v2 component, its bundle read from the model-artifacts bucket.
    edge = (
        EdgeStack(scope, "Edge", config=config, model_store=data.model_store, **stack_props(config, "Edge"))
        if config.edge.enabled
        else None
    )
    for stack in (data, network, healthimaging, audit, container_images, serving, training, approval, inference,
                  monitoring, *([edge] if edge is not None else [])):
        for key, value in tags.items():
            cdk.Tags.of(stack).add(key, value)
    return Platform(
        data=data,
        network=network,
        healthimaging=healthimaging,
        audit=audit,
        container_images=container_images,
        serving=serving,
        training=training,
        approval=approval,
        inference=inference,
        monitoring=monitoring,
        edge=edge,
    )
