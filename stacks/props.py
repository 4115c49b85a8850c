"""What one stack hands another: narrow, typed, frozen props, built once in stacks/platform.py.

A stack takes these and the configuration, never another stack: it sees only what it uses, its tests build it
from props a small scaffold makes (tests/stacks/scaffold.py), and nothing reaches into a sibling's internals.
Each prop holds the very constructs the producing stack created, so CDK still renders the same cross-stack
references.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import aws_codebuild as codebuild
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns


@dataclass(frozen=True)
class PlatformKeys:
    """The data stack's customer-managed keys."""

    # Patient data: buckets, the HealthImaging data store, SageMaker volumes and outputs, topics, queues.
    data_key: kms.IKey
    # CloudWatch Logs log groups.
    logs_key: kms.IKey


@dataclass(frozen=True)
class WorkloadNetwork:
    """Where functions, training jobs and endpoints run: the VPC's workload subnets (no route to the internet
    without NAT). Each workload brings its own security group: their rules differ (torchrun between training
    instances, nothing in for the rest)."""

    vpc: ec2.IVpc
    subnet_group_name: str

    @property
    def subnets(self) -> ec2.SubnetSelection:
        return ec2.SubnetSelection(subnet_group_name=self.subnet_group_name)

    @property
    def subnet_ids(self) -> list[str]:
        """For the L1 resources (SageMaker models, training jobs) that take subnet IDs."""
        return self.vpc.select_subnets(subnet_group_name=self.subnet_group_name).subnet_ids


@dataclass(frozen=True)
class ModelStore:
    """The model-artifacts bucket (trained models, serving archives, edge bundles) and the key of its objects."""

    bucket: s3.IBucket
    key: kms.IKey


@dataclass(frozen=True)
class DicomStore:
    """The HealthImaging data store, the role its imports run with, and the event of a new image set in it."""

    datastore_id: str
    datastore_arn: str
    import_role: iam.IRole
    image_set_created_pattern: events.EventPattern


@dataclass(frozen=True)
class AsyncEndpoint:
    """The asynchronous SageMaker endpoint: its (synth-time) name, execution role and result topics."""

    name: str
    role: iam.IRole
    success_topic: sns.ITopic
    error_topic: sns.ITopic


@dataclass(frozen=True)
class ModelRegistry:
    """The model package group the training workflow registers into, and the topic it notifies."""

    model_package_group_name: str
    notification_topic: sns.ITopic


@dataclass(frozen=True)
class ImageBuild:
    """A stage's own image pipeline: the rule matching its failed executions and its CodeBuild projects."""

    pipeline_failed_rule: events.IRule
    projects: tuple[codebuild.IProject, ...]


@dataclass(frozen=True)
class AuditedResources:
    """What the audit trail records data events for: who read or wrote which object, image set or data store."""

    # Every object call is recorded.
    patient_buckets: tuple[s3.IBucket, ...]
    # Server-access-log targets: every object call but the log deliveries themselves (PutObject).
    log_buckets: tuple[s3.IBucket, ...]
    datastore_arns: tuple[str, ...]
