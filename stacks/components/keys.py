"""Customer-managed KMS keys: one for patient data, one for CloudWatch Logs."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from stacks.props import PlatformKeys


def rotating_key(scope: Construct, id_: str, *, alias: str, description: str) -> kms.Key:
    """A customer-managed key with yearly rotation, kept when its stack is deleted.

    Deleting a key makes everything it encrypted unreadable, so every platform key is retained.
    """
    return kms.Key(
        scope,
        id_,
        alias=alias,
        description=description,
        enable_key_rotation=True,
        pending_window=Duration.days(30),
        removal_policy=RemovalPolicy.RETAIN,
    )


def allow_service(key: kms.IKey, service: str, actions: Sequence[str], *, sid: str) -> None:
    """Let the AWS service ``service`` use ``key`` on behalf of the key's own account only.

    The aws:SourceAccount condition is the confused-deputy guard: without it, the service would use the key for
    any account's resources (another account's rule, alarm or topic).
    """
    key.add_to_resource_policy(
        iam.PolicyStatement(
            sid=sid,
            principals=[iam.ServicePrincipal(service)],
            actions=list(actions),
            resources=["*"],
            conditions={"StringEquals": {"aws:SourceAccount": Stack.of(key).account}},
        )
    )


class DataAndLogsKeys(Construct):
    """``data_key`` encrypts buckets, datastores, volumes and topics; ``logs_key`` encrypts log groups.

    ``keys`` is what other stacks take (stacks.props.PlatformKeys).
    """

    def __init__(self, scope: Construct, id_: str, *, alias_prefix: str) -> None:
        super().__init__(scope, id_)
        stack = Stack.of(self)
        self.data_key = rotating_key(
            self,
            "DataKey",
            alias=f"alias/{alias_prefix}/data",
            description="Encrypts patient data: DICOM buckets, HealthImaging, SageMaker volumes and outputs",
        )
        self.logs_key = rotating_key(
            self,
            "LogsKey",
            alias=f"alias/{alias_prefix}/logs",
            description="Encrypts CloudWatch Logs log groups (flow logs, functions, training and endpoints)",
        )
        # EventBridge itself (not a target role) encrypts what it redrives into the data-key dead-letter queues of
        # the imaging and approval rules; CloudWatch encrypts the approval stack's rollback alarms on their way to
        # the training notification topic.
        allow_service(
            self.data_key,
            "events.amazonaws.com",
            ["kms:Decrypt", "kms:GenerateDataKey*"],
            sid="AllowEventBridgeDeadLettersOfThisAccount",
        )
        allow_service(
            self.data_key,
            "cloudwatch.amazonaws.com",
            ["kms:Decrypt", "kms:GenerateDataKey*"],
            sid="AllowCloudWatchAlarmsOfThisAccount",
        )
        # CloudWatch Logs uses the key on behalf of log groups of this account and region only.
        self.logs_key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchLogsOfThisAccount",
                principals=[iam.ServicePrincipal(f"logs.{stack.region}.amazonaws.com")],
                actions=["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
                resources=["*"],
                conditions={
                    "ArnLike": {
                        "kms:EncryptionContext:aws:logs:arn": (
                            f"arn:{stack.partition}:logs:{stack.region}:{stack.account}:log-group:*"
                        )
                    }
                },
            )
        )
        self.keys = PlatformKeys(data_key=self.data_key, logs_key=self.logs_key)
