"""One deployment stage of the platform as a CDK Stage, so the release pipeline can deploy it as a unit."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
from constructs import Construct

from stacks.config import PlatformConfig
from stacks.platform import Platform, build_platform


class PlatformStage(cdk.Stage):
    """The stacks `cdk synth -c stage=<name>` produces, in the stage's account and region.

    Less the Images stack's own image pipeline: the release pipeline builds the images in its
    BuildImages-<stage> step, and two builds of one commit would collide on the immutable tags.
    """

    def __init__(
        self, scope: Construct, id_: str, *, config: PlatformConfig, pipeline_account: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(scope, id_, env=cdk.Environment(account=config.account, region=config.region), **kwargs)
        self.config = config
        self.platform: Platform = build_platform(self, config, pipeline_account=pipeline_account, build_images=False)
