"""Statements every SageMaker execution role of the platform carries: its logs, its metrics, and the network
interfaces SageMaker attaches in the workload subnets under the role."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Stack
from aws_cdk import aws_iam as iam

LOG_ACTIONS = ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"]


def allow_logs_and_metrics(
    role: iam.Role, *, sid_prefix: str, log_resources: Sequence[str], metric_namespaces: str | Sequence[str]
) -> None:
    """``<sid_prefix>Logs`` on ``log_resources`` and ``<sid_prefix>Metrics`` under ``metric_namespaces``."""
    role.add_to_policy(iam.PolicyStatement(sid=f"{sid_prefix}Logs", actions=LOG_ACTIONS, resources=list(log_resources)))
    namespaces = metric_namespaces if isinstance(metric_namespaces, str) else list(metric_namespaces)
    role.add_to_policy(
        iam.PolicyStatement(
            sid=f"{sid_prefix}Metrics",
            actions=["cloudwatch:PutMetricData"],
            resources=["*"],  # PutMetricData has no resource-level form; the namespace condition scopes it
            conditions={"StringEquals": {"cloudwatch:namespace": namespaces}},
        )
    )


def allow_vpc_network_interfaces(role: iam.Role) -> None:
    """SageMaker attaches the instances' network interfaces in the VPC subnets under the role. Describe calls have
    no resource-level form; the writes are limited to this account's interfaces, subnets and groups."""
    stack = Stack.of(role)
    ec2_arn = f"arn:{stack.partition}:ec2:{stack.region}:{stack.account}"
    role.add_to_policy(
        iam.PolicyStatement(
            sid="DescribeVpc",
            actions=[
                "ec2:DescribeNetworkInterfaces",
                "ec2:DescribeVpcs",
                "ec2:DescribeDhcpOptions",
                "ec2:DescribeSubnets",
                "ec2:DescribeSecurityGroups",
            ],
            resources=["*"],
        )
    )
    role.add_to_policy(
        iam.PolicyStatement(
            sid="VpcNetworkInterfaces",
            actions=[
                "ec2:CreateNetworkInterface",
                "ec2:CreateNetworkInterfacePermission",
                "ec2:DeleteNetworkInterface",
                "ec2:DeleteNetworkInterfacePermission",
            ],
            resources=[f"{ec2_arn}:network-interface/*", f"{ec2_arn}:subnet/*", f"{ec2_arn}:security-group/*"],
        )
    )
