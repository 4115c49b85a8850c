"""Builds every stack of one deployment stage from one configuration, in dependency order."""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk
from constructs import Construct

from stacks.config import PlatformConfig
from stacks.data.stack import DataStack
from stacks.network.stack import NetworkStack


@dataclass(frozen=True)
class Platform:
    data: DataStack
    network: NetworkStack


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
    for stack in (data, network):
        for key, value in tags.items():
            cdk.Tags.of(stack).add(key, value)
    return Platform(data=data, network=network)
