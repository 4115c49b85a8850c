"""The ML storage volume key of an endpoint config: the data key wherever SageMaker accepts one.

Both endpoints (asynchronous and multi-model) go through here, so the instance-storage exception is decided,
acknowledged and explained in one place.
"""

from __future__ import annotations

from aws_cdk import aws_kms as kms
from aws_cdk import aws_sagemaker as sagemaker

from stacks.compliance import acknowledge, skip_checkov
from stacks.components.instance_types import has_instance_storage

INSTANCE_STORAGE_REASON = (
    "The configured instance type has local NVMe instance storage, where SageMaker rejects a volume KmsKeyId; "
    "AWS encrypts that storage at rest with hardware keys, and S3 output and SNS topics still use the data key."
)


def volume_key_arn(instance_type: str, key: kms.IKey) -> str | None:
    """``key``'s ARN for the endpoint config's ``KmsKeyId``, or None where the instance type refuses one."""
    return None if has_instance_storage(instance_type) else key.key_arn


def acknowledge_instance_storage(endpoint_config: sagemaker.CfnEndpointConfig, instance_type: str) -> None:
    """Acknowledge the missing volume key (nag and checkov) only when the instance type made it impossible."""
    if has_instance_storage(instance_type):
        acknowledge(
            endpoint_config, ["HIPAA.Security-SageMakerEndpointConfigurationKMSKeyConfigured"], INSTANCE_STORAGE_REASON
        )
        skip_checkov(endpoint_config, {"CKV_AWS_98": INSTANCE_STORAGE_REASON})
