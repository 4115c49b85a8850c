"""The platform's Lambda functions: a plain asset folder in the workload subnets behind one security group, a
KMS-encrypted dead-letter queue, reserved concurrency, an encrypted log group, and the nag acknowledgments that
always come with them.

Each stack keeps its own runtime folder (one Lambda asset each, with the shared modules copied in:
stacks.components.function_code) and its own construct IDs; this module only holds what every platform function
is built from (the security group: stacks.components.security_group).
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Duration, Size
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from stacks.compliance import acknowledge, acknowledge_grant_policy, skip_checkov
from stacks.components.function_code import function_code
from stacks.components.log_group import encrypted_log_group
from stacks.nag_wildcards import acknowledge_wildcards

# EventBridge retries a failed delivery to a function this often before it goes to the dead-letter queue.
EVENT_RETRY_ATTEMPTS = 4
# Function logs carry object keys and identifiers: kept as long as the audit trail of the buckets.
FUNCTION_LOG_RETENTION_DAYS = 365
DEAD_LETTER_RETENTION = Duration.days(14)
# The managed policies CDK attaches to a function in a VPC.
LAMBDA_MANAGED_POLICIES = ("AWSLambdaBasicExecutionRole", "AWSLambdaVPCAccessExecutionRole")

IAM4_REASON = (
    "AWSLambdaVPCAccessExecutionRole is the AWS-maintained minimum for a function in a VPC (ENI management "
    "and log delivery); its ec2 network-interface actions cannot be scoped to resources that do not exist yet."
)
L1_REASON = (
    "The platform pins its Lambda handlers to Python 3.13, a supported runtime that receives security patches; "
    "moving to a newer runtime is one deliberate change for every platform function, not a per-function drift."
)


def encrypted_queue(scope: Construct, id_: str, *, key: kms.IKey, no_dead_letter_reason: str) -> sqs.Queue:
    """A KMS-encrypted, TLS-only queue kept 14 days that has no dead-letter queue of its own (``no_dead_letter_reason``
    says why: it is one, or nothing consumes it)."""
    queue = sqs.Queue(
        scope,
        id_,
        encryption=sqs.QueueEncryption.KMS,
        encryption_master_key=key,
        enforce_ssl=True,
        retention_period=DEAD_LETTER_RETENTION,
    )
    acknowledge(queue, ["AwsSolutions-SQS3"], no_dead_letter_reason)
    return queue


def platform_function(
    scope: Construct,
    id_: str,
    *,
    runtime_dir: str,
    handler: str,
    description: str,
    environment: Mapping[str, str],
    environment_key: kms.IKey,
    logs_key: kms.IKey,
    timeout: Duration,
    memory_size: int,
    reserved_concurrency: int,
    vpc: ec2.IVpc,
    subnets: ec2.SubnetSelection,
    security_group: ec2.ISecurityGroup,
    dead_letter_queue: sqs.IQueue | None,
    ephemeral_storage_size: Size | None = None,
    synchronous_reason: str | None = None,
) -> lambda_.Function:
    """A Python function built from ``runtime_dir`` and the shared modules, in ``subnets``, failing into
    ``dead_letter_queue``. A function only ever invoked synchronously has none (a dead-letter queue receives
    failed asynchronous invocations only): pass None and say who invokes it in ``synchronous_reason``.

    The log group is ``<id_>Logs``. Call ``acknowledge_function_role`` once the stack has added its own statements
    to the function's role.
    """
    function = lambda_.Function(
        scope,
        id_,
        description=description,
        runtime=lambda_.Runtime.PYTHON_3_13,
        handler=handler,
        # A plain folder: the handlers need only boto3, which the runtime ships. No bundling at synth.
        code=function_code(runtime_dir),
        environment=dict(environment),
        environment_encryption=environment_key,
        timeout=timeout,
        memory_size=memory_size,
        ephemeral_storage_size=ephemeral_storage_size,
        reserved_concurrent_executions=reserved_concurrency,
        vpc=vpc,
        vpc_subnets=subnets,
        security_groups=[security_group],
        dead_letter_queue=dead_letter_queue,
        log_group=encrypted_log_group(scope, f"{id_}Logs", key=logs_key, retention_days=FUNCTION_LOG_RETENTION_DAYS),
    )
    if dead_letter_queue is not None:
        dead_letter_queue.grant_send_messages(function)
    else:
        if not synchronous_reason:
            raise ValueError(f"{function.node.path} has no dead-letter queue: say who invokes it synchronously")
        acknowledge(function, ["HIPAA.Security-LambdaDLQ"], synchronous_reason)
        skip_checkov(function, {"CKV_AWS_116": synchronous_reason})
    return function


def function_target(function: lambda_.IFunction, *, dead_letter_queue: sqs.IQueue) -> targets.LambdaFunction:
    """An EventBridge rule's target: ``function``, retried, then the event kept in ``dead_letter_queue``."""
    return targets.LambdaFunction(function, dead_letter_queue=dead_letter_queue, retry_attempts=EVENT_RETRY_ATTEMPTS)


def acknowledge_function_role(function: lambda_.Function, wildcards_reason: str) -> None:
    """The nag acknowledgments every platform function needs: the managed VPC policies, CDK's grant policy,
    its scoped wildcards (``wildcards_reason`` says how they are scoped) and the pinned runtime."""
    role = function.role
    assert role is not None  # a Function without an explicit role always creates one
    acknowledge(
        role,
        [f"AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/{name}]"
         for name in LAMBDA_MANAGED_POLICIES],
        IAM4_REASON,
    )
    acknowledge_grant_policy(role)
    acknowledge_wildcards(role.node.find_child("DefaultPolicy"), wildcards_reason)
    acknowledge(function, ["AwsSolutions-L1"], L1_REASON)
