"""The release pipeline (CDK Pipelines, self-mutating): source -> synth + test -> images -> dev -> approval -> prod.

Synthesized only with ``-c pipeline=true``; the default ``cdk synth`` keeps producing one stage's stacks. The
synth step runs ``make test`` and ``make synth`` on a CodeBuild standard image (Python 3.11, Node 20), so the
pipeline deploys exactly what the suite checked. Every stage is :class:`PlatformStage` in the account and region
of that stage's configuration; container images are built (containers/buildspec.yml) right after each stage's
Images stack and before its Serving stack, which reads the image URI from SSM. That step is the stage's only
image build: the stages' Images stacks have no pipeline of their own (``PlatformStage``, ``build_images=False``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from aws_cdk import Aws, CfnParameter, Duration, Environment, RemovalPolicy, Stack, Stage, pipelines
from aws_cdk import aws_codebuild as codebuild
from aws_cdk import aws_codepipeline_actions as actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from stacks.components.audit_trail import AuditTrail, audit_selectors
from stacks.components.log_group import encrypted_log_group
from stacks.components.secure_bucket import SecureBucket, access_logs_bucket, noncurrent_version_rule
from stacks.config import (
    STAGE_CONTEXT_KEY,
    AuditConfig,
    ImageSourceConfig,
    PipelineConfig,
    PlatformConfig,
    build_config,
    build_pipeline_config,
)
from stacks.container_images.build_pipeline import BUILDSPEC_PATH, RECORD_COMMANDS
from stacks.container_images.names import (
    BASE_IMAGE_REPOSITORIES,
    ECR_PUSH_ACTIONS,
    IMAGES,
    image_uri_parameter_arns,
    image_uri_parameter_prefix,
    image_uri_writer_role_name,
    pushes_cross_account,
    repository_arns,
)
from stacks.pipeline.generated import acknowledge_generated_resources
from stacks.pipeline.stage import PlatformStage

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# The synth step: the suite first (fail fast, nothing deploys), then the pipeline's own cloud assembly.
# `make synth` passes $(CDK) through, so the pipeline switch rides on the CLI command.
SYNTH_COMMANDS = [
    "make test",
    'make synth CDK="npx --no-install cdk -c pipeline=true"',
]
# CodeBuild's standard 7.0 image carries both runtimes; the project needs Python 3.11 and Node 20.
RUNTIME_VERSIONS = {"python": "3.11", "nodejs": "20"}
ACCESS_LOG_ENCRYPTION_REASON = (
    "S3 server access logging delivers only to buckets encrypted with SSE-S3; the logs hold request metadata "
    "about pipeline artifacts (source code and templates), never patient data."
)


def assume_writer_commands(role_arn: str, region: str) -> list[str]:
    """Switch the step's later AWS CLI calls to the stage account's image-URI writer role (after the pushes).

    A named profile with CodeBuild's container credentials as its source: the CLI assumes (and refreshes) the
    role itself. Commands of one phase share a shell in buildspec 0.2, so the export reaches RECORD_COMMANDS.
    """
    return [
        f"aws configure set profile.image-uri-writer.role_arn {role_arn}",
        "aws configure set profile.image-uri-writer.credential_source EcsContainer",
        f"aws configure set profile.image-uri-writer.region {region}",
        "export AWS_PROFILE=image-uri-writer",
    ]


def image_build_spec(writer_role_arn: str | None = None, region: str | None = None) -> dict[str, Any]:
    """containers/buildspec.yml, plus the container-images stack's SSM record commands once the images are pushed.

    The file stays the one description of an image build; its artifacts section is dropped because this step
    hands nothing on. With ``writer_role_arn`` (a stage in another account) the record commands run under that
    role, in ``region``.
    """
    document = yaml.safe_load((PROJECT_ROOT / BUILDSPEC_PATH).read_text(encoding="utf-8"))
    if not isinstance(document, dict) or "post_build" not in document.get("phases", {}):
        raise ValueError(f"{BUILDSPEC_PATH} has no phases.post_build (push and image-uris.json): fix the file")
    document.pop("artifacts", None)
    assume = assume_writer_commands(writer_role_arn, region or "") if writer_role_arn else []
    document["phases"]["post_build"]["commands"] = [
        *document["phases"]["post_build"]["commands"], *assume, *RECORD_COMMANDS
    ]
    return document


def image_uri_readers(stage: Stage, config: PlatformConfig) -> list[Stack]:
    """The stage's stacks with an SSM parameter under the stage's image-URI prefix (resolved at deploy time)."""
    prefix = f"{image_uri_parameter_prefix(config.prefix)}/"
    readers = []
    for stack in (child for child in stage.node.children if isinstance(child, Stack)):
        parameters = (c for c in stack.node.find_all() if isinstance(c, CfnParameter))
        if any(isinstance(p.default, str) and p.default.startswith(prefix) for p in parameters):
            readers.append(stack)
    return readers


def _source(source: ImageSourceConfig, bucket: s3.IBucket | None) -> pipelines.CodePipelineSource:
    # The container-images stack's source configuration is the one description of where the platform's code lives.
    if source.kind == "s3":
        if bucket is None:
            raise ValueError("an S3 source needs the pipeline's source bucket")
        return pipelines.CodePipelineSource.s3(
            bucket,
            source.bucket_key or "",
            # EVENTS would need a CloudTrail trail with data events on this bucket; polling needs nothing.
            trigger=actions.S3Trigger.POLL,
        )
    # build_config has checked both for kind "codestar".
    return pipelines.CodePipelineSource.connection(
        source.repository or "",
        source.branch,
        connection_arn=source.connection_arn or "",
        # A full clone: `make test` reviews real commits (tests/scripts/test_review.py) and images get the SHA.
        code_build_clone_output=True,
    )


class PipelineStack(Stack):
    """``pipeline`` (the CDK Pipelines construct) and ``stages`` (stage name -> PlatformStage) are public."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        pipeline_config: PipelineConfig,
        stage_configs: dict[str, PlatformConfig],
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, id_, **kwargs)
        first = stage_configs[pipeline_config.stages[0]]
        prefix = f"{first.project_name}-release"
        self.key = kms.Key(
            self,
            "PipelineKey",
            alias=f"alias/{prefix}/pipeline",
            description="Encrypts release-pipeline artifacts, build output and logs",
            enable_key_rotation=True,
            pending_window=Duration.days(30),
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.key.grant_encrypt_decrypt(iam.ServicePrincipal(f"logs.{self.region}.amazonaws.com"))
        self.access_logs_bucket = self._access_logs_bucket(first.audit)
        self.artifact_bucket = SecureBucket(
            self,
            "Artifacts",
            encryption_key=self.key,
            access_logs=self.access_logs_bucket,
            lifecycle_rules=[noncurrent_version_rule(30)],
        ).bucket
        self.source_bucket = (
            SecureBucket(self, "Source", encryption_key=self.key, access_logs=self.access_logs_bucket).bucket
            if first.images.source.kind == "s3"
            else None
        )
        self.audit_trail = self._audit_trail(first, pipeline_config)
        self.log_group = encrypted_log_group(
            self, "BuildLogs", key=self.key, retention_days=pipeline_config.log_retention_days
        )
        logging = codebuild.LoggingOptions(cloud_watch=codebuild.CloudWatchLoggingOptions(log_group=self.log_group))

        self.source = _source(first.images.source, self.source_bucket)
        synth = pipelines.CodeBuildStep(
            "Synth",
            input=self.source,
            partial_build_spec=codebuild.BuildSpec.from_object(
                {"phases": {"install": {"runtime-versions": RUNTIME_VERSIONS}}}
            ),
            commands=SYNTH_COMMANDS,
            primary_output_directory="cdk.out",
            # The whole suite runs here; it is sized for 2 cores in 15 minutes, LARGE (8 vCPU) leaves headroom.
            build_environment=codebuild.BuildEnvironment(
                build_image=codebuild.LinuxBuildImage.STANDARD_7_0, compute_type=codebuild.ComputeType.LARGE
            ),
            timeout=Duration.hours(1),
        )
        self.pipeline = pipelines.CodePipeline(
            self,
            "Pipeline",
            pipeline_name=prefix,
            synth=synth,
            artifact_bucket=self.artifact_bucket,
            cross_account_keys=True,
            enable_key_rotation=True,
            code_build_defaults=pipelines.CodeBuildOptions(
                build_environment=codebuild.BuildEnvironment(
                    build_image=codebuild.LinuxBuildImage.STANDARD_7_0, compute_type=codebuild.ComputeType.SMALL
                ),
                logging=logging,
            ),
        )

        self.stages: dict[str, PlatformStage] = {}
        for index, name in enumerate(pipeline_config.stages):
            config = stage_configs[name]
            stage = PlatformStage(self, name.title(), config=config, pipeline_account=pipeline_config.account)
            self.stages[name] = stage
            images = stage.platform.container_images
            for consumer in image_uri_readers(stage, config):
                # CDK Pipelines runs Images' post steps before Images' dependents: this orders the image build
                # before every stack that resolves an image URI from SSM at deploy time.
                consumer.add_stack_dependency(images, "reads the image URIs that the BuildImages step writes to SSM")
            self.pipeline.add_stage(
                stage,
                # Every stage after the first waits for a person: dev -> approval -> prod.
                pre=[pipelines.ManualApprovalStep(f"Promote-{name}")] if index > 0 else None,
                stack_steps=[
                    pipelines.StackSteps(stack=images, post=[self._image_build(config, pipeline_config.account)])
                ],
            )
        self.pipeline.build_pipeline()
        acknowledge_generated_resources(self)

    def _image_build(self, config: PlatformConfig, pipeline_account: str | None) -> pipelines.CodeBuildStep:
        """containers/buildspec.yml into the stage's repositories, then the image URIs into the stage's SSM.

        For a stage in another account, the stage's Images stack admits this account on its repositories and
        key, and the URIs are written through its image-URI writer role (SSM has no resource policies).
        """
        account = config.account or self.account
        region = config.region
        partition = self.partition
        parameter_prefix = image_uri_parameter_prefix(config.prefix)
        writer_role_arn = (
            # The pseudo parameter, not the region's partition: no ARN literal lands in the buildspec.
            f"arn:{Aws.PARTITION}:iam::{account}:role/{image_uri_writer_role_name(config.prefix)}"
            if pushes_cross_account(pipeline_account, config.account)
            else None
        )
        record = (
            iam.PolicyStatement(sid="AssumeImageUriWriter", actions=["sts:AssumeRole"], resources=[writer_role_arn])
            if writer_role_arn
            else iam.PolicyStatement(
                sid="RecordImageUris",
                actions=["ssm:PutParameter"],
                resources=image_uri_parameter_arns(partition=partition, region=region, account=account,
                                                   prefix=config.prefix),
            )
        )
        return pipelines.CodeBuildStep(
            f"BuildImages-{config.stage}",
            input=self.source,
            partial_build_spec=codebuild.BuildSpec.from_object(image_build_spec(writer_role_arn, region)),
            commands=[],
            build_environment=codebuild.BuildEnvironment(
                build_image=codebuild.LinuxBuildImage.STANDARD_7_0,
                compute_type=codebuild.ComputeType.LARGE,
                privileged=True,
            ),
            env={
                "AWS_ACCOUNT_ID": account,
                "ECR_REPOSITORY_PREFIX": config.prefix,
                "PARAMETER_PREFIX": parameter_prefix,
                "IMAGES": " ".join(IMAGES),
            },
            role_policy_statements=[
                iam.PolicyStatement(
                    sid="PushStageImages",
                    actions=ECR_PUSH_ACTIONS,
                    resources=repository_arns(
                        partition=partition, region=region, account=account, prefix=config.prefix
                    ),
                ),
                iam.PolicyStatement(
                    sid="PullSageMakerBaseImages",
                    actions=["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"],
                    resources=[
                        f"arn:{partition}:ecr:{region}:*:repository/{name}" for name in BASE_IMAGE_REPOSITORIES
                    ],
                ),
                # GetAuthorizationToken has no resource-level form.
                iam.PolicyStatement(sid="RegistryLogin", actions=["ecr:GetAuthorizationToken"], resources=["*"]),
                record,
            ],
            timeout=Duration.hours(2),
        )

    def _access_logs_bucket(self, audit: AuditConfig) -> s3.Bucket:
        return access_logs_bucket(
            self,
            "AccessLogs",
            expiration_days=365,
            target_reason="This is the server-access-log target of the pipeline's buckets; logging it into itself "
            f"would loop, and {audit.coverage_claim('the release pipeline audit trail (the Pipeline stack)')}.",
            encryption_reason=ACCESS_LOG_ENCRYPTION_REASON,
        )

    def _audit_trail(self, first: PlatformConfig, pipeline_config: PipelineConfig) -> AuditTrail | None:
        """Who read or deleted the pipeline's access logs: data events only (the pipeline holds source code and
        build output, no patient data; the stage's own trail records the account's management events). None when
        the stages are audited by an organization trail."""
        audit = first.audit
        if audit.organization_trail_arn is not None:
            return None
        return AuditTrail(
            self,
            "Audit",
            trail_name=f"{first.project_name}-release-audit",
            key=self.key,
            logs_key=self.key,
            access_logs=self.access_logs_bucket,
            selectors=audit_selectors(
                management_events=False, object_buckets=(), log_buckets=(self.access_logs_bucket,), datastore_arns=()
            ),
            log_retention_days=pipeline_config.log_retention_days,
            log_file_expiration_days=audit.log_file_expiration_days,
        )


def build_release_pipeline(scope: Construct, context: Mapping[str, Any]) -> PipelineStack:
    """The pipeline stack (``-c pipeline=true``) with every stage's configuration validated up front."""
    pipeline_config = build_pipeline_config(context)
    stage_configs = {name: build_config({**context, STAGE_CONTEXT_KEY: name}) for name in pipeline_config.stages}
    first = stage_configs[pipeline_config.stages[0]]
    return PipelineStack(
        scope,
        "Pipeline",
        pipeline_config=pipeline_config,
        stage_configs=stage_configs,
        env=Environment(account=pipeline_config.account, region=pipeline_config.region),
        stack_name=f"{first.project_name}-release-pipeline",
        description="MONAI Imaging Platform: self-mutating release pipeline (source, test, images, stages)",
        termination_protection=True,
    )
