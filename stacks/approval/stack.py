"""Approval stack: an approved model package is deployed to the async endpoint behind guarded traffic shifting.

"SageMaker Model Package State Change" (Approved, our package group) on the default bus -> ``DeployApproved``
function (runtime/deploy_approved.py): new model + endpoint config, UpdateEndpoint with a canary, linear or
rolling DeploymentConfig that rolls back on this stack's alarms, and the Triton archive under the multi-model
prefix. The alarms watch the async endpoint's failures while SageMaker bakes each traffic step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aws_cdk import CfnOutput, Duration, Size, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from model_code.triton_model.package import DEFAULT_MODEL_NAME, MODEL_PY, render_config
from stacks.approval.runtime import deploy_approved as runtime
from stacks.compliance import acknowledge
from stacks.components.platform_function import (
    acknowledge_function_role,
    encrypted_queue,
    function_target,
    platform_function,
)
from stacks.components.security_group import https_egress_security_group
from stacks.config import PlatformConfig
from stacks.props import AsyncEndpoint, ModelRegistry, ModelStore, PlatformKeys, WorkloadNetwork
from stacks.serving.metrics import endpoint_metric
from stacks.serving.multi_model import MULTI_MODEL_PREFIX
from stacks.serving.volume import volume_key_arn
from stacks.training.roles import SAGEMAKER_SERVICE
from stacks.training.stack import OUTPUT_PREFIX

RUNTIME_DIR = str(Path(__file__).resolve().parent / "runtime")
SAGEMAKER_SOURCE = "aws.sagemaker"
MODEL_PACKAGE_STATE_CHANGE = "SageMaker Model Package State Change"
# One deployment at a time: two approvals racing would each start an UpdateEndpoint on the same endpoint.
FUNCTION_RESERVED_CONCURRENCY = 1
# (alarm id, metric): any failure while a traffic step bakes rolls it back. Both are published per variant
# (stacks/serving/metrics.py), so they count the canary's failures and the old fleet's alike: a model that fails
# every request trips them as soon as a request reaches it. A model that cannot load never gets that far: its
# instances fail /ping, and SageMaker does not complete the update (docs/training-workflow.md, "Rollback").
ROLLBACK_METRICS: tuple[tuple[str, str], ...] = (
    ("InvocationFailures", "InvocationFailures"),
    ("ModelErrors", "Invocation5XXErrors"),
)

IAM5_REASON = (
    "Wildcards are scoped: training output and serving prefixes of the model-artifacts bucket, KMS data-key "
    "actions, this endpoint's model and config names with the -v<version> suffix, model packages of the one group, "
    "and Describe calls on the models and configs CloudFormation named (their generated names are not known here)."
)


def rollback_alarm_name(endpoint_name: str, alarm_id: str) -> str:
    """Known at synth (no token), so the function's environment names the alarms without a reference."""
    return f"{endpoint_name}-deploy-{alarm_id.lower()}"


class ApprovalStack(Stack):
    """``function``, ``rule``, ``rollback_alarms`` and ``dead_letter_queue`` are public."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        config: PlatformConfig,
        keys: PlatformKeys,
        network: WorkloadNetwork,
        model_store: ModelStore,
        endpoint: AsyncEndpoint,
        registry: ModelRegistry,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, id_, **kwargs)
        data_key = keys.data_key
        artifacts = model_store.bucket
        endpoint_name = endpoint.name

        self.rollback_alarms = [
            cloudwatch.Alarm(
                self,
                f"Rollback{alarm_id}",
                alarm_name=rollback_alarm_name(endpoint_name, alarm_id),
                alarm_description=f"{metric} on {endpoint_name}: rolls back a model deployment in progress",
                metric=endpoint_metric(
                    metric, endpoint_name=endpoint_name, statistic="Sum", period=Duration.minutes(1)
                ),
                threshold=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                evaluation_periods=2,
                datapoints_to_alarm=1,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
            for alarm_id, metric in ROLLBACK_METRICS
        ]
        # A rollback is news for whoever approved the model: the alarms also go to the workflow's topic (the data
        # key's policy lets CloudWatch of this account encrypt for it, stacks/components/keys.py).
        for alarm in self.rollback_alarms:
            alarm.add_alarm_action(cloudwatch_actions.SnsAction(registry.notification_topic))
        stack = Stack.of(self)
        alarm_arns = [
            f"arn:{stack.partition}:cloudwatch:{stack.region}:{stack.account}:alarm:"
            f"{rollback_alarm_name(endpoint_name, alarm_id)}"
            for alarm_id, _ in ROLLBACK_METRICS
        ]
        # SageMaker reads the rollback alarms with the endpoint's execution role ("Auto-Rollback Configuration
        # and Monitoring"); the statement lives here, with the alarms, attached to the serving stack's role.
        self.endpoint_alarms_policy = iam.Policy(
            self,
            "EndpointReadsRollbackAlarms",
            roles=[endpoint.role],
            statements=[
                iam.PolicyStatement(sid="DescribeRollbackAlarms", actions=["cloudwatch:DescribeAlarms"],
                                    resources=alarm_arns)
            ],
        )
        acknowledge(
            self.endpoint_alarms_policy,
            ["HIPAA.Security-IAMNoInlinePolicy"],
            "This policy grants one read action on the two rollback alarms of this stack to the one endpoint role "
            "that SageMaker uses to watch them; it is never shared, so an inline policy is the least privilege.",
        )

        self.dead_letter_queue = encrypted_queue(
            self,
            "DeadLetterQueue",
            key=data_key,
            no_dead_letter_reason="This queue is itself the dead-letter queue of the deploy function and its rule; "
            "a queue behind it would only move the same undeliverable approval events again.",
        )
        self.security_group = https_egress_security_group(
            self,
            "FunctionSecurityGroup",
            vpc=network.vpc,
            description="Approval deploy function - HTTPS out to the VPC endpoints of AWS services only",
        )

        self.function = platform_function(
            self,
            "DeployApproved",
            runtime_dir=RUNTIME_DIR,
            handler="deploy_approved.handler",
            description="Deploys an approved spleen model package to the async endpoint and the Triton prefix",
            environment={
                runtime.ENV_ENDPOINT_NAME: endpoint_name,
                runtime.ENV_MODEL_PACKAGE_GROUP: registry.model_package_group_name,
                runtime.ENV_ARTIFACTS_BUCKET: artifacts.bucket_name,
                runtime.ENV_SERVING_MODEL_KEY: config.serving.model_data_key,
                runtime.ENV_MULTI_MODEL_PREFIX: MULTI_MODEL_PREFIX,
                runtime.ENV_TRITON_MODEL_NAME: DEFAULT_MODEL_NAME,
                # Rendered by the one Triton template (model_code/triton_model/package.py) at synth.
                runtime.ENV_TRITON_CONFIG: render_config(runtime.TRITON_NAME_PLACEHOLDER),
                runtime.ENV_TRITON_MODEL_PY: MODEL_PY,
                runtime.ENV_DEPLOYMENT_STRATEGY: config.training.deployment_strategy,
                runtime.ENV_ROLLBACK_ALARMS: ",".join(
                    rollback_alarm_name(endpoint_name, alarm_id) for alarm_id, _ in ROLLBACK_METRICS
                ),
            },
            environment_key=data_key,
            logs_key=keys.logs_key,
            timeout=Duration.minutes(5),
            memory_size=1024,
            # The model archive and its Triton repackaging are written under /tmp.
            ephemeral_storage_size=Size.gibibytes(2),
            reserved_concurrency=FUNCTION_RESERVED_CONCURRENCY,
            vpc=network.vpc,
            subnets=network.subnets,
            security_group=self.security_group,
            dead_letter_queue=self.dead_letter_queue,
        )
        self._grant(
            endpoint_name=endpoint_name,
            model_package_group=registry.model_package_group_name,
            endpoint_role_arn=endpoint.role.role_arn,
            # The async endpoint's role reads this prefix (the folder of serving.modelDataKey).
            serving_prefix=config.serving.model_data_key.rsplit("/", 1)[0] + "/",
            alarm_arns=alarm_arns,
            model_store=model_store,
            data_key=data_key,
            # The async endpoint's config names the data key as its volume key wherever the instance type takes one.
            volume_key=data_key if volume_key_arn(config.serving.async_instance_type, data_key) else None,
        )

        self.rule = events.Rule(
            self,
            "PackageApprovedRule",
            description="An approved spleen model package deploys to the async endpoint",
            event_pattern=events.EventPattern(
                source=[SAGEMAKER_SOURCE],
                detail_type=[MODEL_PACKAGE_STATE_CHANGE],
                detail={
                    "ModelPackageGroupName": [registry.model_package_group_name],
                    "ModelApprovalStatus": [runtime.APPROVED],
                },
            ),
            targets=[function_target(self.function, dead_letter_queue=self.dead_letter_queue)],
        )

        CfnOutput(self, "DeployFunctionName", value=self.function.function_name)
        CfnOutput(self, "RollbackAlarmNames", value=",".join(
            rollback_alarm_name(endpoint_name, alarm_id) for alarm_id, _ in ROLLBACK_METRICS
        ))
        CfnOutput(self, "DeadLetterQueueUrl", value=self.dead_letter_queue.queue_url)

    def _sagemaker_arn(self, resource_type: str, name: str) -> str:
        return Stack.of(self).format_arn(service="sagemaker", resource=resource_type, resource_name=name)

    def _grant(
        self,
        *,
        endpoint_name: str,
        model_package_group: str,
        endpoint_role_arn: str,
        serving_prefix: str,
        alarm_arns: list[str],
        model_store: ModelStore,
        data_key: kms.IKey,
        volume_key: kms.IKey | None,
    ) -> None:
        function = self.function
        artifacts = model_store.bucket
        # Reads what training wrote; writes only where the endpoints read (versions and the serving key).
        artifacts.grant_read(function, f"{OUTPUT_PREFIX}*")
        artifacts.grant_put(function, f"{serving_prefix}*")
        artifacts.grant_put(function, f"{MULTI_MODEL_PREFIX}*")
        data_key.grant_encrypt_decrypt(function)
        function.add_to_role_policy(
            iam.PolicyStatement(
                sid="ReadApprovedPackages",
                actions=["sagemaker:DescribeModelPackage"],
                resources=[self._sagemaker_arn("model-package", f"{model_package_group}/*")],
            )
        )
        function.add_to_role_policy(
            iam.PolicyStatement(
                sid="DescribeTheEndpoint",
                actions=["sagemaker:DescribeEndpoint"],
                resources=[self._sagemaker_arn("endpoint", endpoint_name)],
            )
        )
        # UpdateEndpoint is authorized against the endpoint and the config it deploys (Service Authorization
        # Reference: endpoint* and endpoint-config*): the versioned configs this function creates.
        function.add_to_role_policy(
            iam.PolicyStatement(
                sid="UpdateTheEndpoint",
                actions=["sagemaker:UpdateEndpoint"],
                resources=[
                    self._sagemaker_arn("endpoint", endpoint_name),
                    self._sagemaker_arn("endpoint-config", f"{endpoint_name}-v*"),
                ],
            )
        )
        if volume_key is not None:
            # The new config keeps the endpoint's volume KmsKeyId; SageMaker creates a grant on it for the new
            # fleet's volumes with the caller's permission (SageMaker API permissions reference: kms:CreateGrant
            # for an endpoint whose config names a KmsKeyId).
            function.add_to_role_policy(
                iam.PolicyStatement(
                    sid="GrantVolumeKey",
                    actions=["kms:CreateGrant"],
                    resources=[volume_key.key_arn],
                    conditions={"Bool": {"kms:GrantIsForAWSResource": "true"}},
                )
            )
        function.add_to_role_policy(
            iam.PolicyStatement(
                sid="CreateVersionedModels",
                actions=["sagemaker:CreateModel", "sagemaker:CreateEndpointConfig"],
                resources=[
                    self._sagemaker_arn("model", f"{endpoint_name}-v*"),
                    self._sagemaker_arn("endpoint-config", f"{endpoint_name}-v*"),
                ],
            )
        )
        function.add_to_role_policy(
            iam.PolicyStatement(
                sid="ReadCurrentModels",
                actions=["sagemaker:DescribeModel", "sagemaker:DescribeEndpointConfig"],
                resources=[self._sagemaker_arn("model", "*"), self._sagemaker_arn("endpoint-config", "*")],
            )
        )
        function.add_to_role_policy(
            iam.PolicyStatement(sid="ReadRollbackAlarms", actions=["cloudwatch:DescribeAlarms"], resources=alarm_arns)
        )
        function.add_to_role_policy(
            iam.PolicyStatement(
                sid="PassEndpointRole",
                actions=["iam:PassRole"],
                resources=[endpoint_role_arn],
                conditions={"StringEquals": {"iam:PassedToService": SAGEMAKER_SERVICE}},
            )
        )
        acknowledge_function_role(function, IAM5_REASON)
