"""Edge stack: the offline runner as a Greengrass v2 component, its device read policy, an optional deployment.

The bundle is uploaded by a documented command (docs/edge.md), not by CDK: Greengrass reads the artifact when
the component version is created, so upload ``<artifactPrefix><version>/bundle.zip`` before deploying this stack.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_greengrassv2 as greengrass
from aws_cdk import aws_iam as iam
from constructs import Construct

from stacks.config import PlatformConfig
from stacks.edge.recipe import RunnerSettings, artifact_key, build_recipe
from stacks.props import ModelStore


def component_name(config: PlatformConfig) -> str:
    return f"{config.prefix}.spleen-edge-runner"


class EdgeStack(Stack):
    """Public attributes: ``component`` (the version), ``device_policy``, ``deployment`` (None unless configured)."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        config: PlatformConfig,
        model_store: ModelStore,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, id_, **kwargs)
        edge = config.edge
        model_artifacts_bucket = model_store.bucket
        key = artifact_key(edge.artifact_prefix, edge.component_version)
        artifact_uri = f"s3://{model_artifacts_bucket.bucket_name}/{key}"
        name = component_name(config)
        recipe = build_recipe(
            component_name=name,
            component_version=edge.component_version,
            artifact_uri=artifact_uri,
            settings=RunnerSettings(
                port=edge.port, threads=edge.threads, queue=edge.queue, max_request_mb=edge.max_request_mb
            ),
            description=f"Offline spleen CT segmentation (ONNX edge bundle), {config.stage} stage",
        )
        self.component = greengrass.CfnComponentVersion(self, "Component", inline_recipe=self.to_json_string(recipe))

        # Greengrass devices fetch artifacts with the credentials of their token exchange role, which the device
        # setup creates (GreengrassV2TokenExchangeRole by default), not this stack: attach this policy to it.
        # It reads exactly this version's bundle, and decrypts only through S3.
        self.device_policy = iam.ManagedPolicy(
            self,
            "DeviceArtifactRead",
            description=f"Greengrass devices of {config.prefix}: read the edge bundle {key}",
            statements=[
                iam.PolicyStatement(actions=["s3:GetObject"], resources=[model_artifacts_bucket.arn_for_objects(key)]),
                iam.PolicyStatement(
                    actions=["kms:Decrypt"],
                    resources=[model_store.key.key_arn],
                    conditions={"StringEquals": {"kms:ViaService": f"s3.{self.region}.amazonaws.com"}},
                ),
            ],
        )

        self.deployment: greengrass.CfnDeployment | None = None
        if edge.thing_group_arn is not None:
            self.deployment = greengrass.CfnDeployment(
                self,
                "Deployment",
                target_arn=edge.thing_group_arn,
                deployment_name=f"{config.prefix}-spleen-edge",
                components={
                    name: greengrass.CfnDeployment.ComponentDeploymentSpecificationProperty(
                        component_version=self.component.attr_component_version
                    )
                },
            )

        CfnOutput(self, "ComponentArn", value=self.component.attr_arn)
        CfnOutput(self, "BundleS3Uri", value=artifact_uri, description="upload the exported bundle.zip here first")
        CfnOutput(self, "DevicePolicyArn", value=self.device_policy.managed_policy_arn,
                  description="attach to the Greengrass token exchange role")
