"""The platform's ECR repositories: one per container image, their key, and the grants a release pipeline in
another account needs to push into them.

Built into the stack's own scope, not under a construct ID of its own: the repositories, key and role keep the
logical IDs and construct paths they had when the stack built them itself (deployed repositories are retained and
must never be replaced by a rename).
"""

from __future__ import annotations

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms

from stacks.compliance import acknowledge_grant_policy
from stacks.components.keys import rotating_key
from stacks.config import PlatformConfig
from stacks.container_images.names import (
    ECR_PUSH_ACTIONS,
    IMAGES,
    image_uri_parameter_arns,
    image_uri_writer_role_name,
    pushes_cross_account,
    repository_name,
)


def repository_id(image: str) -> str:
    """``pytorch-inference`` -> ``RepositoryPytorchInference``."""
    return f"Repository{''.join(part.title() for part in image.split('-'))}"


class ImageRepositories:
    """``key``, ``repositories`` (image name -> repository) and ``image_uri_writer`` (None unless a release
    pipeline in another account pushes here)."""

    def __init__(self, stack: Stack, *, config: PlatformConfig, pipeline_account: str | None) -> None:
        self.key: kms.Key = rotating_key(
            stack,
            "ImagesKey",
            alias=f"alias/{config.prefix}/images",
            description="Encrypts container images, pipeline artifacts, build output and build notifications",
        )
        self.repositories: dict[str, ecr.Repository] = {
            image: ecr.Repository(
                stack,
                repository_id(image),
                repository_name=repository_name(config.prefix, image),
                image_scan_on_push=True,
                image_tag_mutability=ecr.TagMutability.IMMUTABLE,
                encryption=ecr.RepositoryEncryption.KMS,
                encryption_key=self.key,
                lifecycle_rules=[
                    ecr.LifecycleRule(
                        description=f"keep the last {config.images.keep_images} images",
                        max_image_count=config.images.keep_images,
                    )
                ],
                # An endpoint or training job may still reference any retained tag.
                removal_policy=RemovalPolicy.RETAIN,
            )
            for image in IMAGES
        }
        self.image_uri_writer: iam.Role | None = None
        if pipeline_account is not None and pushes_cross_account(pipeline_account, config.account):
            self.image_uri_writer = self._allow_pipeline_account(stack, config, pipeline_account)

    def _allow_pipeline_account(self, stack: Stack, config: PlatformConfig, pipeline_account: str) -> iam.Role:
        """Let the release pipeline's image step, in ``pipeline_account``, push here and record the URIs.

        Repository policies admit its pushes, the key policy lets ECR encrypt them for it, and a role it may
        assume writes the three SSM parameters (SSM has no resource policies).
        """
        pipeline = iam.AccountPrincipal(pipeline_account)
        for repository in self.repositories.values():
            repository.add_to_resource_policy(
                iam.PolicyStatement(sid="ReleasePipelinePushPull", principals=[pipeline], actions=ECR_PUSH_ACTIONS)
            )
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowReleasePipelineImagePushes",
                principals=[pipeline],
                actions=["kms:GenerateDataKey*", "kms:Decrypt", "kms:Encrypt"],
                resources=["*"],
                # Only through ECR in this region: the pipeline account cannot use the key directly.
                conditions={"StringEquals": {"kms:ViaService": f"ecr.{stack.region}.amazonaws.com"}},
            )
        )
        role = iam.Role(
            stack,
            "ImageUriWriter",
            role_name=image_uri_writer_role_name(config.prefix),
            description=f"Assumed by the release pipeline (account {pipeline_account}) to record pushed image URIs",
            assumed_by=pipeline,
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="WriteImageUriParameters",
                actions=["ssm:GetParameter", "ssm:PutParameter"],
                resources=image_uri_parameter_arns(
                    partition=stack.partition, region=stack.region, account=stack.account, prefix=config.prefix
                ),
            )
        )
        acknowledge_grant_policy(role)
        return role
