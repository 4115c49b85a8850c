"""Execution roles of the endpoints, least privilege from the resources each touches."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Stack
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from constructs import Construct

from stacks.compliance import acknowledge_grant_policy
from stacks.components.sagemaker_role import allow_logs_and_metrics, allow_vpc_network_interfaces
from stacks.data.stack import INFERENCE_FAILURE_PREFIX, INFERENCE_INPUT_PREFIX, INFERENCE_OUTPUT_PREFIX
from stacks.nag_wildcards import acknowledge_wildcards
from stacks.props import ModelStore

# SageMaker writes its own endpoint metrics; the container may add some under these namespaces only.
METRIC_NAMESPACES = ("AWS/SageMaker", "/aws/sagemaker/Endpoints")

WILDCARDS_REASON = (
    "Wildcards are scoped to this endpoint: objects under the model key prefix and the inference input, output "
    "and failure prefixes, KMS actions on the data key only, its own log group's streams, ECR's token call (no "
    "resource-level form), ENI calls (EC2 has no resource-level describe), and HealthImaging reads in this account."
)
MULTI_MODEL_WILDCARDS_REASON = (
    "Wildcards are scoped to this endpoint: the model archives under its one S3 prefix (any archive copied there "
    "is a model it may load), KMS decrypt on the data key only, its own log group's streams, ECR's token call (no "
    "resource-level form) and ENI calls (EC2 has no resource-level describe)."
)


def _base_role(scope: Construct, id_: str, *, endpoint_name: str, repository: ecr.IRepository) -> iam.Role:
    """What every SageMaker endpoint here needs: its image, its logs and metrics, and ENIs in the VPC."""
    stack = Stack.of(scope)
    role = iam.Role(
        scope,
        id_,
        assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
        description=f"Execution role of the SageMaker endpoint {endpoint_name}",
    )
    repository.grant_pull(role)

    logs_arn = f"arn:{stack.partition}:logs:{stack.region}:{stack.account}"
    log_group = f"{logs_arn}:log-group:/aws/sagemaker/Endpoints/{endpoint_name}"
    allow_logs_and_metrics(
        role,
        sid_prefix="Endpoint",
        log_resources=[log_group, f"{log_group}:log-stream:*"],
        metric_namespaces=METRIC_NAMESPACES,
    )
    allow_vpc_network_interfaces(role)
    return role


def endpoint_role(
    scope: Construct,
    id_: str,
    *,
    endpoint_name: str,
    model_store: ModelStore,
    inference_bucket: s3.IBucket,
    data_key: kms.IKey,
    repository: ecr.IRepository,
    model_data_key: str,
    topics: Sequence[sns.ITopic],
) -> iam.Role:
    """The asynchronous endpoint's role: its model archive, the inference prefixes, topics, HealthImaging."""
    stack = Stack.of(scope)
    role = _base_role(scope, id_, endpoint_name=endpoint_name, repository=repository)
    model_prefix = model_data_key.rsplit("/", 1)[0]
    model_store.bucket.grant_read(role, f"{model_prefix}/*")
    inference_bucket.grant_read(role, f"{INFERENCE_INPUT_PREFIX}*")
    for prefix in (INFERENCE_OUTPUT_PREFIX, INFERENCE_FAILURE_PREFIX):
        inference_bucket.grant_put(role, f"{prefix}*")
    data_key.grant_encrypt_decrypt(role)
    for topic in topics:
        topic.grant_publish(role)
    # The handler reads the study it segments from HealthImaging (requests name a datastore and image set): the
    # loader calls these two (tests/stacks/test_iam_contracts.py proves it from its recorded calls).
    role.add_to_policy(
        iam.PolicyStatement(
            sid="ReadHealthImaging",
            actions=["medical-imaging:GetImageSetMetadata", "medical-imaging:GetImageFrame"],
            resources=[f"arn:{stack.partition}:medical-imaging:{stack.region}:{stack.account}:datastore/*"],
        )
    )
    acknowledge_grant_policy(role)
    acknowledge_wildcards(role.node.find_child("DefaultPolicy"), WILDCARDS_REASON)
    return role


def multi_model_role(
    scope: Construct,
    id_: str,
    *,
    endpoint_name: str,
    bucket: s3.IBucket,
    model_prefix: str,
    repository: ecr.IRepository,
) -> iam.Role:
    """The multi-model endpoint's role: read-only on its archive prefix (decrypting with the bucket's key).

    The Triton model gets the study in the request and answers with the SEG, so unlike the asynchronous
    endpoint it writes nothing, publishes nothing and never reads HealthImaging.
    """
    role = _base_role(scope, id_, endpoint_name=endpoint_name, repository=repository)
    bucket.grant_read(role, f"{model_prefix}*")  # also grants kms:Decrypt on the bucket's key
    acknowledge_grant_policy(role)
    acknowledge_wildcards(role.node.find_child("DefaultPolicy"), MULTI_MODEL_WILDCARDS_REASON)
    return role
