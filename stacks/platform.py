"""Builds every stack of one deployment stage from one configuration, in dependency order."""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from constructs import Construct

from stacks.approval.stack import ApprovalStack
from stacks.config import PlatformConfig
from stacks.data.stack import DataStack
from stacks.edge.stack import EdgeStack
from stacks.images.names import PYTORCH_INFERENCE, TRAINING, TRITON_INFERENCE
from stacks.images.stack import ImagesStack
from stacks.imaging.stack import ImagingStack
from stacks.inference.stack import InferenceStack
from stacks.monitoring.stack import MonitoringStack
from stacks.network.stack import NetworkStack
from stacks.serving.stack import ServingStack
from stacks.training.stack import TrainingStack


@dataclass(frozen=True)
class Platform:
    data: DataStack
    network: NetworkStack
    imaging: ImagingStack
    images: ImagesStack
    serving: ServingStack
    training: TrainingStack
    approval: ApprovalStack
    inference: InferenceStack
    monitoring: MonitoringStack
    # None when edge.enabled is false.
    edge: EdgeStack | None = None


def build_platform(
    scope: Construct, config: PlatformConfig, *, pipeline_account: str | None = None, build_images: bool = True
) -> Platform:
    """Instantiate the stacks of ``config.stage`` under ``scope`` (an App, or a stage of the release pipeline).

    ``pipeline_account``: the release pipeline's account; when it differs from the stage's, the Images stack
    lets it push images and record their URIs. ``build_images``: False in the release pipeline, whose own step
    builds the images; the Images stack then has no pipeline of its own and monitoring no build alarms.
    """
    env = cdk.Environment(account=config.account, region=config.region)
    tags = {"project": config.project_name, "stage": config.stage}

    def stack_props(name: str) -> dict[str, object]:
        return {
            "env": env,
            "stack_name": f"{config.prefix}-{name.lower()}",
            "description": f"MONAI Imaging Platform ({config.stage}): {name.lower()} stack",
            "termination_protection": config.stage == "prod",
        }

    data = DataStack(scope, "Data", config=config, **stack_props("Data"))  # type: ignore[arg-type]
    network = NetworkStack(
        scope, "Network", config=config, logs_key=data.keys.logs_key, **stack_props("Network")  # type: ignore[arg-type]
    )
    imaging = ImagingStack(
        scope,
        "Imaging",
        config=config,
        inbox_bucket=data.dicom_inbox_bucket,
        output_bucket=data.import_output_bucket,
        data_key=data.keys.data_key,
        logs_key=data.keys.logs_key,
        vpc=network.vpc,
        subnets=network.workload_subnets,
        **stack_props("Imaging"),  # type: ignore[arg-type]
    )
    images = ImagesStack(
        scope,
        "Images",
        config=config,
        logs_key=data.keys.logs_key,
        access_logs_bucket=data.access_logs_bucket,
        vpc=network.vpc,
        workload_subnets=network.workload_subnets,
        pipeline_account=pipeline_account,
        build_images=build_images,
        **stack_props("Images"),  # type: ignore[arg-type]
    )
    # Reads the inference image URI that the images pipeline writes to SSM: deploy after its first run.
    serving = ServingStack(
        scope,
        "Serving",
        config=config,
        data=data,
        network=network,
        inference_image_repository=images.repositories[PYTORCH_INFERENCE],
        triton_image_repository=images.repositories[TRITON_INFERENCE],
        **stack_props("Serving"),  # type: ignore[arg-type]
    )
    # Reads the training and inference image URIs from SSM, like serving: deploy after the pipeline's first run.
    training = TrainingStack(
        scope,
        "Training",
        config=config,
        data=data,
        network=network,
        logs_key=data.keys.logs_key,
        training_image_repository=images.repositories[TRAINING],
        **stack_props("Training"),  # type: ignore[arg-type]
    )
    # An approved model package in the training stack's group -> guarded update of the serving endpoint.
    approval = ApprovalStack(
        scope,
        "Approval",
        config=config,
        data=data,
        network=network,
        serving=serving,
        training=training,
        logs_key=data.keys.logs_key,
        **stack_props("Approval"),  # type: ignore[arg-type]
    )
    # Image sets created in the data store -> the async endpoint; results optionally imported back.
    inference = InferenceStack(
        scope,
        "Inference",
        config=config,
        data=data,
        network=network,
        imaging=imaging,
        serving=serving,
        **stack_props("Inference"),  # type: ignore[arg-type]
    )
    # Last: alarms read the endpoint, rules, queues and builds of the stacks above.
    monitoring = MonitoringStack(
        scope,
        "Monitoring",
        config=config,
        serving=serving,
        imaging=imaging,
        images=images,
        inference=inference,
        # Every queue whose messages are failures: each gets an alarm on its depth.
        failure_queues={
            "ImagingDeadLetters": imaging.dead_letter_queue,
            "ApprovalDeadLetters": approval.dead_letter_queue,
            "InferenceDeadLetters": inference.dead_letter_queue,
            "InferenceFailures": inference.failure_queue,
        },
        **stack_props("Monitoring"),  # type: ignore[arg-type]
    )
    # Offline sites: the edge runner as a Greengrass v2 component, its bundle read from the model-artifacts bucket.
    edge = (
        EdgeStack(
            scope,
            "Edge",
            config=config,
            model_artifacts_bucket=data.model_artifacts_bucket,
            data_key=data.keys.data_key,
            **stack_props("Edge"),  # type: ignore[arg-type]
        )
        if config.edge.enabled
        else None
    )
    for stack in (data, network, imaging, images, serving, training, approval, inference, monitoring,
                  *([edge] if edge is not None else [])):
        for key, value in tags.items():
            cdk.Tags.of(stack).add(key, value)
    return Platform(
        data=data,
        network=network,
        imaging=imaging,
        images=images,
        serving=serving,
        training=training,
        approval=approval,
        inference=inference,
        monitoring=monitoring,
        edge=edge,
    )
