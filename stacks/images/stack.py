"""Image build stack: one ECR repository per container image, and the pipeline that builds, pushes and records them.

Source (S3 archive or a CodeStar connection) -> CodeBuild runs containers/buildspec.yml (docker build, tag with
the commit, push) -> a second, unprivileged CodeBuild step writes each pushed URI to SSM, where the serving and
training stacks read it at deploy time. A failed execution is published to an encrypted SNS topic.

With ``build_images=False`` (a stage of the release pipeline, whose own BuildImages step builds into these
repositories) the stack keeps only the repositories, their key and the cross-account grants.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Duration, RemovalPolicy, Stack
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
from constructs import Construct, IConstruct

from stacks.compliance import acknowledge, acknowledge_grant_policy, skip_checkov
from stacks.components.keys import rotating_key
from stacks.components.log_group import encrypted_log_group
from stacks.components.secure_bucket import SecureBucket, noncurrent_version_rule
from stacks.config import PlatformConfig
from stacks.images.names import (
    IMAGES,
    image_uri_parameter_name,
    image_uri_parameter_prefix,
    image_uri_writer_role_name,
    pushes_cross_account,
    repository_name,
)
from stacks.nag_wildcards import acknowledge_wildcards

BUILDSPEC_PATH = "containers/buildspec.yml"
# The SageMaker DLC base images live in an AWS-owned registry account that differs by region; the buildspec
# resolves it offline. Pulls are limited to these repository names, in this region.
BASE_IMAGE_REPOSITORIES = ("pytorch-inference", "pytorch-training", "sagemaker-tritonserver")

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
PIPELINE_SOURCE_REASON = (
    "The project's source is the CodePipeline artifact (type CODEPIPELINE): it has no repository URL and holds no "
    "Git credentials; the pipeline's source action authenticates through a CodeStar connection or S3."
)
GRANT_WILDCARDS_REASON = (
    "Wildcards come from CDK grants scoped to this stack's own resources: object keys in the artifact and source "
    "buckets, this project's log streams and report groups, KMS actions on the images key only, the ECR token "
    "call (no resource-level form), and base-image pulls by repository name from the regional DLC registry."
)

# Writes image-uris.json (containers/buildspec.yml's artifact) into one SSM parameter per image.
RECORD_COMMANDS = [
    "set -euo pipefail",
    'for image in ${IMAGES}; do '
    'uri="$(python3 -c \'import json, sys; print(json.load(open("image-uris.json"))[sys.argv[1]])\' "${image}")"; '
    'aws ssm put-parameter --name "${PARAMETER_PREFIX}/${image}/uri" --type String --overwrite --value "${uri}"; '
    "done",
]
# What a release pipeline in another account needs on the stage's repositories to push (and re-pull) images.
PIPELINE_PUSH_ACTIONS = [
    "ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:CompleteLayerUpload", "ecr:GetDownloadUrlForLayer",
    "ecr:InitiateLayerUpload", "ecr:PutImage", "ecr:UploadLayerPart",
]


class ImagesStack(Stack):
    """``repositories`` (image name -> repository) is what the serving and training stacks grant pulls on.

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
        vpc: ec2.IVpc,
        workload_subnets: ec2.SubnetSelection,
        pipeline_account: str | None = None,
        build_images: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, id_, **kwargs)
        self.key = rotating_key(
            self,
            "ImagesKey",
            alias=f"alias/{config.prefix}/images",
            description="Encrypts container images, pipeline artifacts, build output and build notifications",
        )

        self.repositories = {
            image: ecr.Repository(
                self,
                f"Repository{''.join(part.title() for part in image.split('-'))}",
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

        # Set only when a release pipeline in another account pushes here (see _allow_pipeline_account).
        self.image_uri_writer: iam.Role | None = None
        if pipeline_account is not None and pushes_cross_account(pipeline_account, config.account):
            self.image_uri_writer = self._allow_pipeline_account(config, pipeline_account)

        # None when build_images is False; the monitoring stack alarms on these only when they exist.
        self.pipeline_failed_rule: events.Rule | None = None
        self.build_project: codebuild.PipelineProject | None = None
        self.record_project: codebuild.PipelineProject | None = None
        if build_images:
            self._build_pipeline(config, access_logs_bucket=access_logs_bucket, logs_key=logs_key, vpc=vpc,
                                 workload_subnets=workload_subnets)

        for image, repository in self.repositories.items():
            CfnOutput(self, f"{repository.node.id}Uri", value=repository.repository_uri, description=image)

    def _build_pipeline(
        self,
        config: PlatformConfig,
        *,
        access_logs_bucket: s3.IBucket,
        logs_key: kms.IKey,
        vpc: ec2.IVpc,
        workload_subnets: ec2.SubnetSelection,
    ) -> None:
        """The stage's own image pipeline: source -> build and push -> record the URIs, failures to a topic."""
        cfg = config.images

        def bucket(id_: str) -> s3.Bucket:
            return SecureBucket(
                self,
                id_,
                encryption_key=self.key,
                access_logs=access_logs_bucket,
                lifecycle_rules=[noncurrent_version_rule(30)],
            ).bucket

        artifacts_bucket = bucket("PipelineArtifacts")
        log_group = encrypted_log_group(self, "BuildLogs", key=logs_key, retention_days=cfg.log_retention_days)
        build_project = self._build_project(config, log_group=log_group, vpc=vpc, workload_subnets=workload_subnets)
        record_project = self._record_project(config, log_group=log_group)

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

        pipeline = codepipeline.Pipeline(
            self,
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
        self.pipeline_failed_rule = self._failure_rule(config, pipeline)
        self.build_project = build_project
        self.record_project = record_project

        # After the last grant: the pipeline adds artifact-bucket and key grants to every role it binds.
        roles: list[IConstruct] = [build_project.role, record_project.role, pipeline.role]  # type: ignore[list-item]
        for stage in ("Source", "Build", "Record"):
            for action in pipeline.node.find_child(stage).node.children:
                action_role = action.node.try_find_child("CodePipelineActionRole")
                if action_role is not None:
                    roles.append(action_role)
        # EventBridge publishes to the encrypted failure topic with its own role (granted by the target).
        roles.append(self.pipeline_failed_rule.node.find_child("EventsRole"))
        for role in roles:
            acknowledge_grant_policy(role)
            acknowledge_wildcards(role.node.find_child("DefaultPolicy"), GRANT_WILDCARDS_REASON)

        CfnOutput(self, "PipelineName", value=pipeline.pipeline_name)
        if source_bucket is not None:
            CfnOutput(self, "SourceBucketName", value=source_bucket.bucket_name)

    def _allow_pipeline_account(self, config: PlatformConfig, pipeline_account: str) -> iam.Role:
        """Let the release pipeline's image step, in ``pipeline_account``, push here and record the URIs.

        Repository policies admit its pushes, the key policy lets ECR encrypt them for it, and a role it may
        assume writes the three SSM parameters (SSM has no resource policies).
        """
        stack = Stack.of(self)
        pipeline = iam.AccountPrincipal(pipeline_account)
        for repository in self.repositories.values():
            repository.add_to_resource_policy(
                iam.PolicyStatement(sid="ReleasePipelinePushPull", principals=[pipeline], actions=PIPELINE_PUSH_ACTIONS)
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
            self,
            "ImageUriWriter",
            role_name=image_uri_writer_role_name(config.prefix),
            description=f"Assumed by the release pipeline (account {pipeline_account}) to record pushed image URIs",
            assumed_by=pipeline,
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="WriteImageUriParameters",
                actions=["ssm:GetParameter", "ssm:PutParameter"],
                resources=[
                    f"arn:{stack.partition}:ssm:{stack.region}:{stack.account}:"
                    f"parameter{image_uri_parameter_name(config.prefix, image)}"
                    for image in IMAGES
                ],
            )
        )
        acknowledge_grant_policy(role)
        return role

    def _build_project(
        self, config: PlatformConfig, *, log_group: logs.ILogGroup, vpc: ec2.IVpc, workload_subnets: ec2.SubnetSelection
    ) -> codebuild.PipelineProject:
        stack = Stack.of(self)
        in_vpc = config.network.nat_gateways > 0
        security_group = None
        if in_vpc:
            security_group = ec2.SecurityGroup(
                self,
                "BuildSecurityGroup",
                vpc=vpc,
                description="Image builds: HTTPS out to ECR, S3 and package indexes through the NAT gateways",
                allow_all_outbound=False,
            )
            security_group.add_egress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "HTTPS to AWS APIs and PyPI")
        project = codebuild.PipelineProject(
            self,
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
            encryption_key=self.key,
            logging=codebuild.LoggingOptions(cloud_watch=codebuild.CloudWatchLoggingOptions(log_group=log_group)),
            timeout=Duration.hours(2),
            vpc=vpc if in_vpc else None,
            subnet_selection=workload_subnets if in_vpc else None,
            security_groups=[security_group] if security_group else None,
        )
        for repository in self.repositories.values():
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

    def _record_project(self, config: PlatformConfig, *, log_group: logs.ILogGroup) -> codebuild.PipelineProject:
        stack = Stack.of(self)
        parameter_prefix = image_uri_parameter_prefix(config.prefix)
        project = codebuild.PipelineProject(
            self,
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
                "PARAMETER_PREFIX": codebuild.BuildEnvironmentVariable(value=parameter_prefix),
            },
            encryption_key=self.key,
            logging=codebuild.LoggingOptions(cloud_watch=codebuild.CloudWatchLoggingOptions(log_group=log_group)),
            timeout=Duration.minutes(10),
        )
        project.add_to_role_policy(
            iam.PolicyStatement(
                sid="WriteImageUriParameters",
                actions=["ssm:PutParameter"],
                resources=[
                    f"arn:{stack.partition}:ssm:{stack.region}:{stack.account}:parameter{parameter_prefix}/{image}/uri"
                    for image in IMAGES
                ],
            )
        )
        acknowledge(
            project,
            ["HIPAA.Security-CodeBuildProjectInVPC"],
            "This step only reads the build's image-uris.json artifact and calls the SSM API; it needs no VPC "
            "resource, and the NAT-less VPC has no SSM endpoint to reach.",
        )
        acknowledge(project, ["HIPAA.Security-CodeBuildProjectSourceRepoUrl"], PIPELINE_SOURCE_REASON)
        return project

    def _failure_rule(self, config: PlatformConfig, pipeline: codepipeline.Pipeline) -> events.Rule:
        """Failed executions of ``pipeline`` -> an SNS topic encrypted with the images key."""
        topic = sns.Topic(
            self,
            "PipelineFailures",
            topic_name=f"{config.prefix}-image-pipeline-failures",
            display_name="Image pipeline failures",
            master_key=self.key,
            enforce_ssl=True,
        )
        for email in config.notification_emails:
            topic.add_subscription(subscriptions.EmailSubscription(email))
        return events.Rule(
            self,
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
