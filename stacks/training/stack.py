"""Training stack: a Step Functions workflow that trains the spleen model and registers it for approval.

Execution input (every key optional)::

    {"dataPrefix": "spleen/", "hyperparameters": {"epochs": "100", "batch-size": "2"}}

``dataPrefix`` is a prefix of the training-data bucket (the ``training`` channel); hyperparameters are trainer
flags without their leading ``--`` (model_code/training/config.py) and must be strings, as
SageMaker requires. The workflow: name the job -> ``createTrainingJob.sync`` (spot with checkpoints, 1..N
instances launched by torchrun, VPC, network isolation, KMS) -> read the job's final metrics -> register a
model package (Approved when the configured metric reaches its threshold, else PendingManualApproval) ->
notify. Any failure publishes the error to the notification topic and fails the execution.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Duration, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sagemaker as sagemaker
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_ssm as ssm
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from model_code.training.metrics import METRIC_DEFINITIONS
from stacks.compliance import acknowledge_grant_policy
from stacks.components.log_group import encrypted_log_group
from stacks.components.security_group import https_egress_security_group
from stacks.config import PlatformConfig
from stacks.container_images.names import PYTORCH_INFERENCE, TRAINING, image_uri_parameter_name
from stacks.nag_wildcards import acknowledge_wildcards
from stacks.props import ModelRegistry, ModelStore, PlatformKeys, WorkloadNetwork
from stacks.training.job import (
    job_name_expression,
    metric_key,
    platform_hyperparameters,
    stopping_condition,
    training_job_state,
    uses_volume_key,
)
from stacks.training.roles import SAGEMAKER_SERVICE, training_job_role

# The package's model.tar.gz: a MONAI bundle in the Model Zoo's layout (configs/ + models/ at its top).
MODEL_FORMAT = "monai-bundle"
# Everything a training job writes lives under this prefix of the model-artifacts bucket.
ARTIFACTS_PREFIX = "training/"
OUTPUT_PREFIX = f"{ARTIFACTS_PREFIX}output/"
CHECKPOINT_PREFIX = f"{ARTIFACTS_PREFIX}checkpoints/"
DEFAULT_DATA_PREFIX = "spleen/"
STATE_MACHINE_LOG_RETENTION_DAYS = 365
APPROVED = "Approved"
PENDING = "PendingManualApproval"

STATE_MACHINE_WILDCARDS_REASON = (
    "Wildcards are scoped to this workflow: training jobs named with the platform prefix, model packages of the "
    "one group, and calls without a resource form: X-Ray, log delivery, and sagemaker:ListTags, which the "
    "createTrainingJob.sync integration reads the job's tags with (Step Functions' IAM page grants it on *)."
)


class TrainingStack(Stack):
    """``registry`` (the model package group and the notification topic) is what the approval stack takes;
    ``state_machine`` is public."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        config: PlatformConfig,
        keys: PlatformKeys,
        network: WorkloadNetwork,
        training_data_bucket: s3.IBucket,
        model_store: ModelStore,
        training_image_repository: ecr.IRepository,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, id_, **kwargs)
        trn = config.training
        data_key = keys.data_key
        self.job_name_prefix = f"{config.prefix}-train"
        self.model_package_group_name = f"{config.prefix}-spleen"
        artifacts = model_store.bucket

        self.notification_topic = sns.Topic(
            self,
            "TrainingNotifications",
            display_name="Training workflow: failures and models awaiting approval",
            master_key=data_key,
            enforce_ssl=True,
        )
        for email in config.notification_emails:
            self.notification_topic.add_subscription(subscriptions.EmailSubscription(email))

        self.model_package_group = sagemaker.CfnModelPackageGroup(
            self,
            "ModelPackageGroup",
            model_package_group_name=self.model_package_group_name,
            model_package_group_description="Spleen CT segmentation models trained by the training workflow",
        )

        self.security_group = https_egress_security_group(
            self,
            "TrainingSecurityGroup",
            vpc=network.vpc,
            description="Training jobs - HTTPS to AWS endpoints, and torchrun traffic between the instances of a job",
        )
        # torchrun's rendezvous and NCCL pick ports at run time: the job's instances talk to each other freely.
        self.security_group.add_ingress_rule(self.security_group, ec2.Port.all_tcp(), "torchrun between instances")
        self.security_group.add_egress_rule(self.security_group, ec2.Port.all_tcp(), "torchrun between instances")

        self.training_role = training_job_role(
            self,
            "TrainingJobRole",
            job_name_prefix=self.job_name_prefix,
            training_data_bucket=training_data_bucket,
            artifacts_bucket=artifacts,
            artifacts_prefix=ARTIFACTS_PREFIX,
            data_key=data_key,
            repository=training_image_repository,
            volume_key=data_key if uses_volume_key(config) else None,
        )

        # Resolved by CloudFormation at deploy time from what the image pipeline wrote: synth needs no lookup.
        training_image = ssm.StringParameter.value_for_string_parameter(
            self, image_uri_parameter_name(config.prefix, TRAINING)
        )
        serving_image = ssm.StringParameter.value_for_string_parameter(
            self, image_uri_parameter_name(config.prefix, PYTORCH_INFERENCE)
        )
        subnet_ids = network.subnet_ids

        prepare = self._prepare(
            config, data_bucket=training_data_bucket.bucket_name, artifacts_bucket=artifacts.bucket_name
        )
        train = sfn.CustomState(
            self,
            "Train",
            state_json=training_job_state(
                config,
                role_arn=self.training_role.role_arn,
                image=training_image,
                output_uri=artifacts.s3_url_for_object(OUTPUT_PREFIX),
                data_key_arn=data_key.key_arn,
                subnet_ids=subnet_ids,
                security_group_id=self.security_group.security_group_id,
                partition=self.partition,
            ),
        )
        metrics = self._read_metrics()
        register = tasks.CallAwsService(
            self,
            "RegisterModelPackage",
            service="sagemaker",
            action="createModelPackage",
            iam_resources=[
                self.format_arn(
                    service="sagemaker", resource="model-package", resource_name=f"{self.model_package_group_name}/*"
                )
            ],
            parameters={
                "ModelPackageGroupName": self.model_package_group_name,
                "ModelPackageDescription.$": "States.Format('Trained by SageMaker job {}', $.training.TrainingJobName)",
                "ModelApprovalStatus.$": "$.approvalStatus",
                "InferenceSpecification": {
                    "Containers": [
                        {"Image": serving_image, "ModelDataUrl.$": "$.training.ModelArtifacts.S3ModelArtifacts"}
                    ],
                    "SupportedContentTypes": ["application/json"],
                    "SupportedResponseMIMETypes": ["application/json"],
                },
                # The job's final metrics travel with the package (a reviewer approves on them), and what the
                # archive is: the MONAI bundle the trainer writes (model_code/training/export.py).
                "CustomerMetadataProperties": {
                    "trainingJobName.$": "$.training.TrainingJobName",
                    "modelFormat": MODEL_FORMAT,
                    **{
                        f"{d['Name']}.$": f"States.JsonToString($.metrics.{metric_key(d['Name'])})"
                        for d in METRIC_DEFINITIONS
                    },
                },
            },
            result_selector={"arn.$": "$.ModelPackageArn"},
            result_path="$.modelPackage",
        )
        registered = self._notify(
            "NotifyRegistered",
            "Spleen model registered",
            modelPackageArn="$.modelPackage.arn",
            approvalStatus="$.approvalStatus",
            trainingJobName="$.training.TrainingJobName",
        )
        failed = self._notify(
            "NotifyFailure",
            "Training workflow failed",
            execution="$$.Execution.Id",
            error="$.error.Error",
            cause="$.error.Cause",
        ).next(sfn.Fail(self, "Failed", error="TrainingWorkflowFailed", cause="See the notification topic"))
        for state in (train, register):
            state.add_catch(failed, errors=[sfn.Errors.ALL], result_path="$.error")

        approval = self._approval(config, then=register)
        definition = prepare.next(train).next(metrics).next(approval)
        register.next(registered).next(sfn.Succeed(self, "Registered"))

        self.log_group = encrypted_log_group(
            self, "StateMachineLogs", key=keys.logs_key, retention_days=STATE_MACHINE_LOG_RETENTION_DAYS
        )
        max_wait = stopping_condition(config)["MaxWaitTimeInSeconds" if trn.use_spot else "MaxRuntimeInSeconds"]
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            state_machine_name=f"{config.prefix}-training",
            definition_body=sfn.DefinitionBody.from_chainable(definition),
            # The job's own stopping condition ends it first; the margin covers registration and notices.
            timeout=Duration.seconds(max_wait + 3600),
            tracing_enabled=True,
            logs=sfn.LogOptions(
                destination=self.log_group,
                level=sfn.LogLevel.ALL,
                # Execution data carries bucket keys and hyperparameters only, but keep the logs to events.
                include_execution_data=False,
            ),
        )
        self._grant_training(self.state_machine)
        # The notification topic is encrypted with the data key: the Notify states publish with the state
        # machine's role, which needs the key as any publisher does (SNS "Key management"); CDK's SnsPublish task
        # grants sns:Publish only (aws/aws-cdk#32303).
        data_key.grant(self.state_machine, "kms:GenerateDataKey", "kms:Decrypt")
        role = self.state_machine.role
        acknowledge_grant_policy(role)
        acknowledge_wildcards(role.node.find_child("DefaultPolicy"), STATE_MACHINE_WILDCARDS_REASON)

        self.registry = ModelRegistry(
            model_package_group_name=self.model_package_group_name, notification_topic=self.notification_topic
        )

        CfnOutput(self, "StateMachineArn", value=self.state_machine.state_machine_arn)
        CfnOutput(self, "ModelPackageGroupName", value=self.model_package_group_name)
        CfnOutput(self, "NotificationTopicArn", value=self.notification_topic.topic_arn)

    # -- the states -------------------------------------------------------------------------------------------

    def _prepare(self, config: PlatformConfig, *, data_bucket: str, artifacts_bucket: str) -> sfn.Chain:
        """Defaults under the input, then the job's name, data URI, checkpoint URI and full hyperparameters."""
        platform = sfn.Pass(
            self,
            "PlatformSettings",
            result=sfn.Result.from_object(
                {
                    "defaults": {"dataPrefix": DEFAULT_DATA_PREFIX, "hyperparameters": {}},
                    "hyperparameters": platform_hyperparameters(config),
                }
            ),
            result_path="$.platform",
        )
        merge = sfn.Pass(
            self,
            "MergeInput",
            parameters={
                # Keys of the execution input replace the defaults (a shallow merge).
                "run.$": "States.JsonMerge($.platform.defaults, $$.Execution.Input, false)",
                "platformHyperparameters.$": "$.platform.hyperparameters",
                "ids.$": "States.StringSplit(States.UUID(), '-')",
            },
        )
        job = sfn.Pass(
            self,
            "NameJob",
            parameters={
                "name.$": job_name_expression(self.job_name_prefix),
                # The platform's distribution settings win over the input's.
                "hyperparameters.$": "States.JsonMerge($.run.hyperparameters, $.platformHyperparameters, false)",
                "dataUri.$": f"States.Format('s3://{data_bucket}/{{}}', $.run.dataPrefix)",
            },
            result_path="$.job",
        )
        # One checkpoint prefix per job: SageMaker resumes an interrupted spot job from it.
        checkpoint = sfn.Pass(
            self,
            "CheckpointUri",
            parameters={"uri.$": f"States.Format('s3://{artifacts_bucket}/{CHECKPOINT_PREFIX}{{}}/', $.job.name)"},
            result_path="$.checkpoint",
        )
        return platform.next(merge).next(job).next(checkpoint)

    def _read_metrics(self) -> sfn.Chain:
        """``$.metrics.<name>``: the list of final values (one or none) of each metric the trainer defines."""
        read = sfn.Pass(
            self,
            "ReadMetrics",
            parameters={
                f"{metric_key(d['Name'])}.$": f"$.training.FinalMetricDataList[?(@.MetricName == '{d['Name']}')].Value"
                for d in METRIC_DEFINITIONS
            },
            result_path="$.metrics",
        )
        none = sfn.Pass(
            self,
            "NoMetrics",
            result=sfn.Result.from_object({metric_key(d["Name"]): [] for d in METRIC_DEFINITIONS}),
            result_path="$.metrics",
        )
        # A job that printed no metric line has no FinalMetricDataList at all.
        join = sfn.Pass(self, "MetricsRead")
        choice = (
            sfn.Choice(self, "HasMetrics")
            .when(sfn.Condition.is_present("$.training.FinalMetricDataList[0]"), read.next(join))
            .otherwise(none.next(join))
        )
        return sfn.Chain.custom(choice, [join], join)

    def _approval(self, config: PlatformConfig, *, then: sfn.IChainable) -> sfn.IChainable:
        pending = sfn.Pass(
            self, "PendingApproval", result=sfn.Result.from_string(PENDING), result_path="$.approvalStatus"
        )
        pending.next(then)
        metric, threshold = config.training.auto_approve_metric, config.training.auto_approve_threshold
        if metric is None or threshold is None:
            return pending
        approved = sfn.Pass(
            self, "AutoApproved", result=sfn.Result.from_string(APPROVED), result_path="$.approvalStatus"
        )
        approved.next(then)
        value = f"$.metrics.{metric_key(metric)}[0]"
        return (
            sfn.Choice(self, "MeetsApprovalThreshold")
            .when(
                sfn.Condition.and_(
                    sfn.Condition.is_present(value),
                    sfn.Condition.is_numeric(value),
                    sfn.Condition.number_greater_than_equals(value, threshold),
                ),
                approved,
            )
            .otherwise(pending)
        )

    # -- IAM for the raw training state -----------------------------------------------------------------------

    def _grant_training(self, state_machine: sfn.StateMachine) -> None:
        """What the optimized ``createTrainingJob.sync`` integration calls (Step Functions' IAM page for it)."""
        stack = Stack.of(self)
        state_machine.add_to_role_policy(
            iam.PolicyStatement(
                sid="RunTrainingJobs",
                actions=["sagemaker:CreateTrainingJob", "sagemaker:DescribeTrainingJob", "sagemaker:StopTrainingJob"],
                resources=[
                    self.format_arn(
                        service="sagemaker", resource="training-job", resource_name=f"{self.job_name_prefix}-*"
                    )
                ],
            )
        )
        # The .sync integration reads the job's tags; ListTags has no resource-level restriction on the jobs it
        # lists tags of (Step Functions "IAM policies for Amazon SageMaker AI" grants it on *).
        state_machine.add_to_role_policy(
            iam.PolicyStatement(sid="ReadTrainingJobTags", actions=["sagemaker:ListTags"], resources=["*"])
        )
        state_machine.add_to_role_policy(
            iam.PolicyStatement(
                sid="TrainingJobEvents",
                actions=["events:PutTargets", "events:PutRule", "events:DescribeRule"],
                resources=[
                    f"arn:{stack.partition}:events:{stack.region}:{stack.account}:rule/"
                    "StepFunctionsGetEventsForSageMakerTrainingJobsRule"
                ],
            )
        )
        state_machine.add_to_role_policy(
            iam.PolicyStatement(
                sid="PassTrainingRole",
                actions=["iam:PassRole"],
                resources=[self.training_role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": SAGEMAKER_SERVICE}},
            )
        )

    def _notify(self, id_: str, subject: str, **fields: str) -> tasks.SnsPublish:
        """Publish ``fields`` (message key -> JSON path of the state) to the notification topic; the state's
        output passes through unchanged."""
        return tasks.SnsPublish(
            self,
            id_,
            topic=self.notification_topic,
            subject=subject,
            message=sfn.TaskInput.from_object({key: sfn.JsonPath.string_at(path) for key, path in fields.items()}),
            result_path=sfn.JsonPath.DISCARD,
        )
