"""Container-images stack: one ECR repository per container image (repositories.py) and, optionally, the stage's
own pipeline that builds, pushes and records them (build_pipeline.py). Every image and SSM name: names.py.

With ``build_images=False`` (a stage of the release pipeline, whose own BuildImages step builds into these
repositories) the stack keeps only the repositories, their key and the cross-account grants.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from stacks.config import PlatformConfig
from stacks.container_images.build_pipeline import ImageBuildPipeline
from stacks.container_images.repositories import ImageRepositories
from stacks.props import ImageBuild, WorkloadNetwork


class ContainerImagesStack(Stack):
    """``repositories`` (image name -> repository) is what the serving and training stacks grant pulls on;
    ``build`` (None without a pipeline of its own) is what the monitoring stack alarms on.

    ``build_images``: whether this stack builds the images itself (its own pipeline, build projects and failure
    rule). The release pipeline passes False: its BuildImages step pushes to the same immutable tags, so a second
    build of the same commit would fail, and an S3 source here would poll a bucket nobody fills.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        config: PlatformConfig,
        logs_key: kms.IKey,
        access_logs_bucket: s3.IBucket,
        network: WorkloadNetwork,
        pipeline_account: str | None = None,
        build_images: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, id_, **kwargs)
        images = ImageRepositories(self, config=config, pipeline_account=pipeline_account)
        self.key = images.key
        self.repositories = images.repositories
        self.image_uri_writer = images.image_uri_writer

        self.build: ImageBuild | None = None
        if build_images:
            self.build = ImageBuildPipeline(
                self,
                config=config,
                key=images.key,
                repositories=images.repositories,
                logs_key=logs_key,
                access_logs_bucket=access_logs_bucket,
                network=network,
            ).build

        for image, repository in self.repositories.items():
            CfnOutput(self, f"{repository.node.id}Uri", value=repository.repository_uri, description=image)
