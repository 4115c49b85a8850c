"""Builds every stack of one deployment stage from one configuration, in dependency order."""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from constructs import Construct

from stacks.config import PlatformConfig
from stacks.data.stack import DataStack
from stacks.images.stack import ImagesStack
from stacks.imaging.stack import ImagingStack
from stacks.network.stack import NetworkStack
from stacks.serving.stack import ServingStack


@dataclass(frozen=True)
class Platform:
    data: DataStack
    network: NetworkStack
    imaging: ImagingStack
    images: ImagesStack
    serving: ServingStack


def build_platform(scope: Construct, config: PlatformConfig) -> Platform:
    """Instantiate the stacks of ``config.stage`` under ``scope`` (an App today, a pipeline Stage later)."""
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
        **stack_props("Images"),  # type: ignore[arg-type]
    )
    # Reads the inference image URI that the images pipeline writes to SSM: deploy after its first run.
    serving = ServingStack(
        scope,
        "Serving",
        config=config,
        data=data,
        network=network,
        inference_image_repository=images.repositories["pytorch-inference"],
        **stack_props("Serving"),  # type: ignore[arg-type]
    )
    for stack in (data, network, imaging, images, serving):
        for key, value in tags.items():
            cdk.Tags.of(stack).add(key, value)
    return Platform(data=data, network=network, imaging=imaging, images=images, serving=serving)
