"""Acknowledgments for what CDK Pipelines generates: its roles, policies and CodeBuild projects.

``CodePipeline.build_pipeline()`` creates one role per action and CodeBuild project, with grant policies whose
wildcards cdk-nag reports one by one. This walks the stack after the build and acknowledges each generated
policy on its own resource, with the reason that holds for it.
"""

from __future__ import annotations

from aws_cdk import Stack, Stage
from aws_cdk import aws_codebuild as codebuild
from aws_cdk import aws_iam as iam
from constructs import IConstruct

from stacks.compliance import GRANT_POLICY_REASON, acknowledge, skip_checkov
from stacks.nag_wildcards import acknowledge_wildcards

PIPELINE_WILDCARDS_REASON = (
    "CDK Pipelines writes this policy from grants on the pipeline's own artifact bucket and key (object keys "
    "under it), its own log group and report groups, and the CDK bootstrap roles of the stage environments "
    "(cdk-* roles, assumed to deploy and publish assets); no wildcard reaches another workload's resources."
)
PIPELINE_SOURCE_REASON = (
    "The project's source is the CodePipeline artifact (type CODEPIPELINE): it has no repository URL and holds no "
    "Git credentials; the pipeline's source action authenticates through a CodeStar connection or S3."
)
ASSET_ROLE_REASON = (
    "CDK Pipelines lets the asset-publishing role start and watch the publishing CodeBuild builds it runs; "
    "CodeBuild's BatchGetBuilds/StartBuild/StopBuild are granted on '*' by aws-cdk-lib itself, and the role can "
    "only assume this account's cdk file- and image-publishing roles."
)


def _walk(scope: IConstruct) -> list[IConstruct]:
    # The deployed stages are separate assemblies with their own acknowledgments: only this stack's resources.
    found: list[IConstruct] = []
    for child in scope.node.children:
        if isinstance(child, Stage | Stack):
            continue
        found.append(child)
        found.extend(_walk(child))
    return found


def acknowledge_generated_resources(stack: Stack) -> None:
    """Call after ``build_pipeline()``: every generated policy and project gets its scoped acknowledgment."""
    for construct in _walk(stack):
        if isinstance(construct, iam.Policy) and construct.node.id == "DefaultPolicy":
            acknowledge(construct, ["HIPAA.Security-IAMNoInlinePolicy"], GRANT_POLICY_REASON)
            acknowledge_wildcards(construct, PIPELINE_WILDCARDS_REASON)
            if "Assets" in construct.node.path.split("/"):
                skip_checkov(construct, {"CKV_AWS_111": ASSET_ROLE_REASON})
        elif isinstance(construct, codebuild.Project):
            acknowledge(construct, ["HIPAA.Security-CodeBuildProjectSourceRepoUrl"], PIPELINE_SOURCE_REASON)
