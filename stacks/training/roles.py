"""The training job's execution role: least privilege from the buckets, key, image and VPC it touches."""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from stacks.compliance import acknowledge_grant_policy
from stacks.components.sagemaker_role import allow_logs_and_metrics, allow_vpc_network_interfaces
from stacks.nag_wildcards import acknowledge_wildcards

SAGEMAKER_SERVICE = "sagemaker.amazonaws.com"
# SageMaker writes training metrics and logs under these names.
TRAINING_METRIC_NAMESPACE = "/aws/sagemaker/TrainingJobs"
TRAINING_LOG_GROUP = "/aws/sagemaker/TrainingJobs"

WILDCARDS_REASON = (
    "Wildcards are scoped to the training job: objects of the training-data bucket (read) and of the training/ "
    "prefix of the model-artifacts bucket (checkpoints and model output), KMS actions on the data key only, the "
    "training jobs' log streams, ECR's token call (no resource-level form) and VPC ENI calls (no resource form)."
)


def training_job_role(
    scope: Construct,
    id_: str,
    *,
    job_name_prefix: str,
    training_data_bucket: s3.IBucket,
    artifacts_bucket: s3.IBucket,
    artifacts_prefix: str,
    data_key: kms.IKey,
    repository: ecr.IRepository,
    volume_key: kms.IKey | None,
) -> iam.Role:
    """``volume_key``: the key of the instances' ML storage volumes (the Train state's VolumeKmsKeyId), None on
    instance types with NVMe instance storage, where the job runs without one."""
    stack = Stack.of(scope)
    role = iam.Role(
        scope,
        id_,
        description=f"Execution role of the SageMaker training jobs {job_name_prefix}-*",
        assumed_by=iam.ServicePrincipal(
            SAGEMAKER_SERVICE,
            # Confused-deputy guard: only SageMaker acting for this account can assume the role.
            conditions={"StringEquals": {"aws:SourceAccount": stack.account}},
        ),
    )
    repository.grant_pull(role)
    training_data_bucket.grant_read(role)
    artifacts_bucket.grant_read_write(role, f"{artifacts_prefix}*")
    data_key.grant_encrypt_decrypt(role)
    if volume_key is not None:
        # Encrypted ML volumes: SageMaker creates a grant on the key for the instance's EBS volume
        # ("CreateTrainingJob API: Execution Role Permissions": kms:CreateGrant for a volume KMS key).
        role.add_to_policy(
            iam.PolicyStatement(
                sid="VolumeKeyGrant",
                actions=["kms:CreateGrant"],
                resources=[volume_key.key_arn],
                conditions={"Bool": {"kms:GrantIsForAWSResource": "true"}},
            )
        )
    logs_arn = f"arn:{stack.partition}:logs:{stack.region}:{stack.account}:log-group:{TRAINING_LOG_GROUP}"
    allow_logs_and_metrics(
        role,
        sid_prefix="Training",
        log_resources=[logs_arn, f"{logs_arn}:log-stream:{job_name_prefix}-*"],
        metric_namespaces=TRAINING_METRIC_NAMESPACE,
    )
    # The job's instances attach network interfaces in the workload subnets under this role.
    allow_vpc_network_interfaces(role)
    acknowledge_grant_policy(role)
    acknowledge_wildcards(role.node.find_child("DefaultPolicy"), WILDCARDS_REASON)
    return role
