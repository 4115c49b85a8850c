"""A stage's own image pipeline: source -> build and push every image -> record the URIs in SSM; failures to a topic.

Source (S3 archive or a CodeStar connection) -> CodeBuild runs containers/buildspec.yml (docker build, tag with
the commit, push) -> a second, unprivileged CodeBuild step writes each pushed URI to SSM, where the serving and
training stacks read it at deploy time. A failed execution is published to an encrypted SNS topic.

Built into the stack's own scope (like ImageRepositories), so every logical ID and construct path is the one the
stack had before the split. The compliance reasons below justify the projects they are attached to.
"""

from __future__ import annotations

from aws_cdk import CfnOutput, Duration, Stack
from aws_cdk import aws_codebuild as codebuild
from aws_cdk import aws_codepipeline as codepipeline
from aws_cdk import aws_codepipeline_actions as actions
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import IConstruct

from stacks.compliance import acknowledge, acknowledge_grant_policy, skip_checkov
from stacks.components.log_group import encrypted_log_group
from stacks.components.secure_bucket import SecureBucket, noncurrent_version_rule
from stacks.config import PlatformConfig
from stacks.container_images.names import (
    BASE_IMAGE_REPOSITORIES,
    IMAGES,
    image_uri_parameter_arns,
    image_uri_parameter_prefix,
    image_uri_parameter_under,
)
from stacks.nag_wildcards import acknowledge_wildcards
from stacks.props import ImageBuild, WorkloadNetwork

BUILDSPEC_PATH = "containers/buildspec.yml"

# Writes image-uris.json (containers/buildspec.yml's artifact) into one SSM parameter per image.
RECORD_COMMANDS = [
    "set -euo pipefail",
    'for image in ${IMAGES}; do '
    'uri="$(python3 -c \'import json, sys; print(json.load(open("image-uris.json"))[sys.argv[1]])\' "${image}")"; '
    f'aws ssm put-parameter --name "{image_uri_parameter_under("${PARAMETER_PREFIX}", "${image}")}" --type String '
    '--overwrite --value "${uri}"; '
    "done",
]

# The build project (BuildImages): privileged, and outside the VPC when the VPC has no NAT.
PRIVILEGED_REASON = (
    "docker build needs a privileged CodeBuild container; the project runs only containers/buildspec.yml from "
    "the platform's own source and holds no patient data."
)
OUTSIDE_VPC_REASON = (
    "natGateways is 0, so the VPC has no route to PyPI, which the buildspec and Dockerfiles install from; the "
    "build runs in CodeBuild's managed network, handles only source code and public packages, never patient data."
)
CODEBUILD_VPC_POLICY_REASON = (
    "CodeBuild generates this policy for the network interfaces of builds in the VPC: the ENI ids do not exist "
    "before a build starts, and EC2's describe calls have no resource-level form."
)
# Both projects (BuildImages, RecordImageUris).
PIPELINE_SOURCE_REASON = (
    "The project's source is the CodePipeline artifact (type CODEPIPELINE): it has no repository URL and holds no "
    "Git credentials; the pipeline's source action authenticates through a CodeStar connection or S3."
)
# The record project (RecordImageUris).
RECORD_OUTSIDE_VPC_REASON = (
    "This step only reads the build's image-uris.json artifact and calls the SSM API; it needs no VPC "
    "resource, and the VPC's service endpoints do not include SSM."
)
# Every role the pipeline binds (projects, pipeline, actions, the failure rule's events role).
GRANT_WILDCARDS_REASON = (
    "Wildcards come from CDK grants scoped to this stack's own resources: object keys in the artifact and source "
    "buckets, this project's log streams and report groups, KMS actions on the images key only, the ECR token "
    "call (no resource-level form), and base-image pulls by repository name from the regional DLC registry."
)


class ImageBuildPipeline:
    """``build`` (the failure rule and both projects: what monitoring alarms on) and ``pipeline``."""

    def __init__(
        self,
        stack: Stack,
        *,
        config: PlatformConfig,
        key: kms.IKey,
        repositories: dict[str, ecr.Repository],
        logs_key: kms.IKey,
        access_logs_bucket: s3.IBucket,
        network: WorkloadNetwork,
    ) -> None:
        cfg = config.images

        def bucket(id_: str) -> s3.Bucket:
            return SecureBucket(
                stack,
                id_,
                encryption_key=key,
                access_logs=access_logs_bucket,
                lifecycle_rules=[noncurrent_version_rule(30)],
            ).bucket

        artifacts_bucket = bucket("PipelineArtifacts")
        log_group = encrypted_log_group(stack, "BuildLogs", key=logs_key, retention_days=cfg.log_retention_days)
        build_project = build_images_project(
            stack, config, key=key, repositories=repositories, log_group=log_group, network=network
        )
        record_project = record_uris_project(stack, config, key=key, log_group=log_group)

        source_output = codepipeline.Artifact("Source")
        build_output = codepipeline.Artifact("ImageUris")
        source_bucket: s3.Bucket | None = None
        source_action: codepipeline.IAction
        if cfg.source.kind == "s3":
            source_bucket = bucket("Source")
            source_action = actions.S3SourceAction(
                action_name="Source",
                bucket=source_bucket,
                bucket_key=cfg.source.bucket_key or "",
                output=source_output,
                # EVENTS would need a CloudTrail trail with data events on this bucket; polling needs nothing.
                trigger=actions.S3Trigger.POLL,
            )
        else:
            owner, repo = (cfg.source.repository or "/").split("/", 1)
            source_action = actions.CodeStarConnectionsSourceAction(
                action_name="Source",
                connection_arn=cfg.source.connection_arn or "",
                owner=owner,
                repo=repo,
                branch=cfg.source.branch,
                output=source_output,
            )

        self.pipeline = codepipeline.Pipeline(
            stack,
            "Pipeline",
            pipeline_name=f"{config.prefix}-images",
            pipeline_type=codepipeline.PipelineType.V2,
            artifact_bucket=artifacts_bucket,
            cross_account_keys=False,
            restart_execution_on_update=False,
            stages=[
                codepipeline.StageProps(stage_name="Source", actions=[source_action]),
                codepipeline.StageProps(
                    stage_name="Build",
                    actions=[
                        actions.CodeBuildAction(
                            action_name="BuildAndPush", project=build_project, input=source_output,
                            outputs=[build_output],
                        )
                    ],
                ),
                codepipeline.StageProps(
                    stage_name="Record",
                    actions=[
                        actions.CodeBuildAction(
                            action_name="RecordImageUris", project=record_project, input=build_output
                        )
                    ],
                ),
            ],
        )
        if cfg.source.kind != "s3":
            allow_connection_prefix(self.pipeline, cfg.source.connection_arn or "")
        failed_rule = failure_rule(stack, config, key=key, pipeline=self.pipeline)
        self.build = ImageBuild(pipeline_failed_rule=failed_rule, projects=(build_project, record_project))

        # After the last grant: the pipeline adds artifact-bucket and key grants to every role it binds.
        roles: list[IConstruct] = []
        for project in (build_project, record_project):
            assert project.role is not None  # a project without an explicit role always creates one
            roles.append(project.role)
        roles.append(self.pipeline.role)
        for stage in ("Source", "Build", "Record"):
            for action in self.pipeline.node.find_child(stage).node.children:
                action_role = action.node.try_find_child("CodePipelineActionRole")
                if action_role is not None:
                    roles.append(action_role)
        # EventBridge publishes to the encrypted failure topic with its own role (granted by the target).
        roles.append(failed_rule.node.find_child("EventsRole"))
        for role in roles:
            acknowledge_grant_policy(role)
            acknowledge_wildcards(role.node.find_child("DefaultPolicy"), GRANT_WILDCARDS_REASON)

        CfnOutput(stack, "PipelineName", value=self.pipeline.pipeline_name)
        if source_bucket is not None:
            CfnOutput(stack, "SourceBucketName", value=source_bucket.bucket_name)


def allow_connection_prefix(pipeline: codepipeline.Pipeline, connection_arn: str) -> None:
    """A connection ARN under the renamed prefix (``arn:...:codeconnections:...``) is used with
    ``codeconnections:UseConnection``: a policy's action prefix must match the resource's (Developer Tools console
    User Guide, "codestar-connections was renamed codeconnections"). CDK's source action grants only
    ``codestar-connections:UseConnection``, which authorizes nothing on such an ARN."""
    if connection_arn.split(":")[2:3] != ["codeconnections"]:
        return
    action_role = pipeline.node.find_child("Source").node.find_child("Source").node.find_child("CodePipelineActionRole")
    assert isinstance(action_role, iam.Role)  # CDK creates the action's role when none is given
    action_role.add_to_principal_policy(
        iam.PolicyStatement(sid="UseConnection", actions=["codeconnections:UseConnection"], resources=[connection_arn])
    )


def build_images_project(
    stack: Stack,
    config: PlatformConfig,
    *,
    key: kms.IKey,
    repositories: dict[str, ecr.Repository],
    log_group: logs.ILogGroup,
    network: WorkloadNetwork,
) -> codebuild.PipelineProject:
    """BuildImages: containers/buildspec.yml, privileged (docker), in the VPC only when it has NAT gateways."""
    in_vpc = config.network.nat_gateways > 0
    security_group = None
    if in_vpc:
        security_group = ec2.SecurityGroup(
            stack,
            "BuildSecurityGroup",
            vpc=network.vpc,
            description="Image builds: HTTPS out to ECR, S3 and package indexes through the NAT gateways",
            allow_all_outbound=False,
        )
        security_group.add_egress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "HTTPS to AWS APIs and PyPI")
    project = codebuild.PipelineProject(
        stack,
        "BuildImages",
        project_name=f"{config.prefix}-build-images",
        description=f"Builds, tags with the commit and pushes every image in containers/ ({BUILDSPEC_PATH})",
        build_spec=codebuild.BuildSpec.from_source_filename(BUILDSPEC_PATH),
        environment=codebuild.BuildEnvironment(
            build_image=codebuild.LinuxBuildImage.STANDARD_7_0,
            compute_type=codebuild.ComputeType.LARGE,
            privileged=True,
        ),
        environment_variables={
            # AWS_REGION is set by CodeBuild itself; the rest are what containers/buildspec.yml reads.
            "AWS_ACCOUNT_ID": codebuild.BuildEnvironmentVariable(value=stack.account),
            "ECR_REPOSITORY_PREFIX": codebuild.BuildEnvironmentVariable(value=config.prefix),
        },
        encryption_key=key,
        logging=codebuild.LoggingOptions(cloud_watch=codebuild.CloudWatchLoggingOptions(log_group=log_group)),
        timeout=Duration.hours(2),
        vpc=network.vpc if in_vpc else None,
        subnet_selection=network.subnets if in_vpc else None,
        security_groups=[security_group] if security_group else None,
    )
    for repository in repositories.values():
        repository.grant_pull_push(project)
    project.add_to_role_policy(
        iam.PolicyStatement(
            sid="PullSageMakerBaseImages",
            actions=["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"],
            resources=[
                f"arn:{stack.partition}:ecr:{stack.region}:*:repository/{name}" for name in BASE_IMAGE_REPOSITORIES
            ],
        )
    )
    acknowledge(project, ["AwsSolutions-CB3"], PRIVILEGED_REASON)
    skip_checkov(project, {"CKV_AWS_316": PRIVILEGED_REASON})
    if in_vpc:
        # CodeBuild writes its own policy for the network interfaces it attaches in the VPC.
        eni_policy = project.node.find_child("PolicyDocument")
        acknowledge(eni_policy, ["HIPAA.Security-IAMNoInlinePolicy"], CODEBUILD_VPC_POLICY_REASON)
        acknowledge_wildcards(eni_policy, CODEBUILD_VPC_POLICY_REASON)
        skip_checkov(eni_policy, {"CKV_AWS_111": CODEBUILD_VPC_POLICY_REASON})
    else:
        acknowledge(project, ["HIPAA.Security-CodeBuildProjectInVPC"], OUTSIDE_VPC_REASON)
    acknowledge(project, ["HIPAA.Security-CodeBuildProjectSourceRepoUrl"], PIPELINE_SOURCE_REASON)
    return project


def record_uris_project(
    stack: Stack, config: PlatformConfig, *, key: kms.IKey, log_group: logs.ILogGroup
) -> codebuild.PipelineProject:
    """RecordImageUris: the build's image-uris.json into one SSM parameter per image, unprivileged."""
    project = codebuild.PipelineProject(
        stack,
        "RecordImageUris",
        project_name=f"{config.prefix}-record-image-uris",
        description="Writes the URI of each pushed image to SSM for the serving and training stacks",
        build_spec=codebuild.BuildSpec.from_object(
            {"version": "0.2", "env": {"shell": "bash"}, "phases": {"build": {"commands": RECORD_COMMANDS}}}
        ),
        environment=codebuild.BuildEnvironment(
            build_image=codebuild.LinuxBuildImage.STANDARD_7_0, compute_type=codebuild.ComputeType.SMALL
        ),
        environment_variables={
            "IMAGES": codebuild.BuildEnvironmentVariable(value=" ".join(IMAGES)),
            "PARAMETER_PREFIX": codebuild.BuildEnvironmentVariable(value=image_uri_parameter_prefix(config.prefix)),
        },
        encryption_key=key,
        logging=codebuild.LoggingOptions(cloud_watch=codebuild.CloudWatchLoggingOptions(log_group=log_group)),
        timeout=Duration.minutes(10),
    )
    project.add_to_role_policy(
        iam.PolicyStatement(
            sid="WriteImageUriParameters",
            actions=["ssm:PutParameter"],
            resources=image_uri_parameter_arns(
                partition=stack.partition, region=stack.region, account=stack.account, prefix=config.prefix
            ),
        )
    )
    acknowledge(project, ["HIPAA.Security-CodeBuildProjectInVPC"], RECORD_OUTSIDE_VPC_REASON)
    acknowledge(project, ["HIPAA.Security-CodeBuildProjectSourceRepoUrl"], PIPELINE_SOURCE_REASON)
    return project


def failure_rule(
    stack: Stack, config: PlatformConfig, *, key: kms.IKey, pipeline: codepipeline.Pipeline
) -> events.Rule:
    """Failed executions of ``pipeline`` -> an SNS topic encrypted with the images key."""
    topic = sns.Topic(
        stack,
        "PipelineFailures",
        topic_name=f"{config.prefix}-image-pipeline-failures",
        display_name="Image pipeline failures",
        master_key=key,
        enforce_ssl=True,
    )
    for email in config.notification_emails:
        topic.add_subscription(subscriptions.EmailSubscription(email))
    return events.Rule(
        stack,
        "PipelineFailed",
        description="An image pipeline execution failed",
        event_pattern=events.EventPattern(
            source=["aws.codepipeline"],
            detail_type=["CodePipeline Pipeline Execution State Change"],
            detail={"pipeline": [pipeline.pipeline_name], "state": ["FAILED"]},
        ),
        # Published with a role of this stack, granted on the topic and its key: without it, CDK would let
        # events.amazonaws.com (any account's rules) use the images key.
        targets=[targets.SnsTopic(topic, authorize_using_role=True)],
    )
