"""Each stack's tests build it from its props alone: a small scaffold stack makes every prop, no sibling stack.

The scaffold creates what the props name (a VPC with the workload subnet group, the two keys, the buckets, the
image repositories, an endpoint role and topics, a data store, queues, rules, build projects, functions) from
the same components and construct IDs the platform uses, so a cross-stack reference still reads "KeysDataKey" or
"DicomInboxBucket", but none of the sibling stacks' logic. Only the stack under test and the scaffold are
synthesized; cdk-nag runs over the whole platform and its variants instead (tests/stacks/test_compliance.py):
the scaffold's stand-ins are not built to pass it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import aws_cdk as cdk
import pytest
from aws_cdk import aws_codebuild as codebuild
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_events as events
from aws_cdk import aws_healthimaging as healthimaging
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs

from stacks.components.keys import DataAndLogsKeys
from stacks.components.secure_bucket import SecureBucket, access_logs_bucket
from stacks.config import PlatformConfig, build_config
from stacks.container_images.names import IMAGES
from stacks.container_images.repositories import repository_id
from stacks.network.stack import WORKLOAD_SUBNET_GROUP
from stacks.platform import stack_props
from stacks.props import (
    AsyncEndpoint,
    DicomStore,
    ImageBuild,
    ModelRegistry,
    ModelStore,
    PlatformKeys,
    WorkloadNetwork,
)
from tests.stacks.assembly import Assembly, cdk_json_context

SCAFFOLD = "Scaffold"
S = TypeVar("S", bound=cdk.Stack)
REASON = "A stand-in of the scaffold stack that tests build one platform stack against; it is never deployed."


class Scaffold:
    """The props of every platform stack, each made in the one ``Scaffold`` stack of ``app``."""

    def __init__(self, app: cdk.App, config: PlatformConfig) -> None:
        self.app, self.config = app, config
        stack = self.stack = cdk.Stack(app, SCAFFOLD, **stack_props(config, SCAFFOLD))
        key_pair = DataAndLogsKeys(stack, "Keys", alias_prefix=config.prefix)
        self.keys: PlatformKeys = key_pair.keys
        nat = config.network.nat_gateways > 0
        subnets = [ec2.SubnetConfiguration(
            name=WORKLOAD_SUBNET_GROUP,
            subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS if nat else ec2.SubnetType.PRIVATE_ISOLATED,
            cidr_mask=20,
        )]
        if nat:
            subnets.insert(0, ec2.SubnetConfiguration(name="Public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24))
        vpc = ec2.Vpc(stack, "Vpc", ip_addresses=ec2.IpAddresses.cidr(config.network.cidr), max_azs=2,
                      nat_gateways=config.network.nat_gateways, subnet_configuration=subnets,
                      restrict_default_security_group=False)
        self.network = WorkloadNetwork(vpc=vpc, subnet_group_name=WORKLOAD_SUBNET_GROUP)

        self.access_logs_bucket = access_logs_bucket(
            stack, "AccessLogs", expiration_days=365, target_reason=REASON, encryption_reason=REASON
        )
        self.buckets: dict[str, s3.IBucket] = {
            name: SecureBucket(stack, name, encryption_key=self.keys.data_key, access_logs=self.access_logs_bucket).bucket
            for name in ("DicomInbox", "ImportOutput", "TrainingData", "ModelArtifacts", "Inference")
        }
        self.model_store = ModelStore(bucket=self.buckets["ModelArtifacts"], key=self.keys.data_key)
        self.repositories = {image: ecr.Repository(stack, repository_id(image)) for image in IMAGES}

        self.endpoint = AsyncEndpoint(
            name=f"{config.prefix}-spleen-async",
            role=iam.Role(stack, "EndpointRole", assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com")),
            success_topic=sns.Topic(stack, "InferenceSucceeded"),
            error_topic=sns.Topic(stack, "InferenceFailed"),
        )
        self.multi_model_endpoint_name = f"{config.prefix}-triton-mme" if config.serving.multi_model_enabled else None
        self.registry = ModelRegistry(
            model_package_group_name=f"{config.prefix}-spleen",
            notification_topic=sns.Topic(stack, "TrainingNotifications"),
        )
        datastore = healthimaging.CfnDatastore(stack, "Datastore", datastore_name=f"{config.prefix}-dicom")
        self.dicom_store = DicomStore(
            datastore_id=datastore.attr_datastore_id,
            datastore_arn=datastore.attr_datastore_arn,
            import_role=iam.Role(stack, "ImportRole", assumed_by=iam.ServicePrincipal("medical-imaging.amazonaws.com")),
            image_set_created_pattern=events.EventPattern(
                source=["aws.medical-imaging"], detail_type=["Image Set Created"],
                detail={"datastoreId": [datastore.attr_datastore_id]},
            ),
        )

        def rule(id_: str) -> events.Rule:
            return events.Rule(stack, id_, event_pattern=events.EventPattern(source=["aws.scaffold"]))

        self.import_failed_rule = rule("ImportJobFailedRule")
        self.image_build = ImageBuild(
            pipeline_failed_rule=rule("PipelineFailed"),
            projects=tuple(codebuild.PipelineProject(stack, name) for name in ("BuildImages", "RecordImageUris")),
        )
        # Named like the platform's failure queues in build_platform: the dead-letter queues and the failure queue.
        self.failure_queues: dict[str, sqs.IQueue] = {
            name: sqs.Queue(stack, queue_id) for name, queue_id in (
                ("ImagingDeadLetters", "ImagingDeadLetterQueue"),
                ("ApprovalDeadLetters", "ApprovalDeadLetterQueue"),
                ("InferenceDeadLetters", "InferenceDeadLetterQueue"),
                ("InferenceFailures", "InferenceFailureQueue"),
            )
        }
        self.inference_functions: tuple[lambda_.IFunction, ...] = tuple(
            lambda_.Function(stack, name, runtime=lambda_.Runtime.PYTHON_3_13, handler="index.handler",
                             code=lambda_.Code.from_inline("def handler(event, context):\n    return None\n"))
            for name in ("RequestInference", *(["ImportSeg"] if config.serving.import_seg_back else []))
        )


    def add(self, stack_type: type[S], construct_id: str, **props: Any) -> S:
        """The stack under test, in the scaffold's app, with the configuration, ``props`` and the platform's
        stack settings (environment, name) for ``construct_id``."""
        # Every platform stack takes ``config``; cdk.Stack itself does not, hence the one mapping.
        arguments: dict[str, Any] = {"config": self.config, **props, **stack_props(self.config, construct_id)}
        return stack_type(self.app, construct_id, **arguments)


def synthesize_alone(
    outdir: Path, build: Callable[[Scaffold], Any], overrides: Mapping[str, Any] | None = None
) -> Assembly:
    """``build(scaffold)`` adds the stack under test to an app holding only the scaffold; the synthesized assembly.

    ``overrides`` are context keys like ``-c key=value`` over cdk.json's context.
    """
    app = cdk.App(context={**cdk_json_context(), **(overrides or {})}, outdir=str(outdir))
    build(Scaffold(app, build_config(app.node.get_all_context())))
    app.synth()
    return Assembly.read(outdir)


def alone(build: Callable[[Scaffold], Any], overrides: Mapping[str, Any] | None = None) -> Any:
    """A module-scoped fixture: the assembly of ``build``'s stack and the scaffold, synthesized once per module.

    Named like the platform fixtures of tests/stacks/conftest.py (``assembly``, ``variant_assembly``...), it takes
    their place in the module that defines it.
    """

    @pytest.fixture(scope="module")
    def fixture(tmp_path_factory: pytest.TempPathFactory) -> Assembly:
        return synthesize_alone(tmp_path_factory.mktemp("cdk-out-alone"), build, overrides)

    return fixture
