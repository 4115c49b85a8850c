"""An S3 bucket that can hold patient data: private, TLS-only, versioned, logged, KMS-encrypted, retained."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from stacks.compliance import acknowledge, skip_checkov

REPLICATION_REASON = (
    "Cross-region replication is a per-deployment disaster-recovery decision (it copies patient data to a "
    "second region under its own BAA review); versioning plus RETAIN protect these objects against loss."
)


class SecureBucket(Construct):
    """A bucket with every data-protection default on; ``bucket`` is public for grants."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        encryption_key: kms.IKey,
        access_logs: s3.IBucket,
        lifecycle_rules: Sequence[s3.LifecycleRule] = (),
    ) -> None:
        super().__init__(scope, id_)
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            encryption=s3.BucketEncryption.KMS,
            encryption_key=encryption_key,
            # S3 Bucket Keys cut KMS request costs for high-volume DICOM traffic without weakening encryption.
            bucket_key_enabled=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            enforce_ssl=True,
            minimum_tls_version=1.2,
            versioned=True,
            server_access_logs_bucket=access_logs,
            server_access_logs_prefix=f"{id_.lower()}/",
            lifecycle_rules=list(lifecycle_rules),
            # Patient data outlives any stack: deleting the stack must never delete the objects.
            removal_policy=RemovalPolicy.RETAIN,
        )
        acknowledge(self.bucket, ["HIPAA.Security-S3BucketReplicationEnabled"], REPLICATION_REASON)


def noncurrent_version_rule(days: int) -> s3.LifecycleRule:
    """Old object versions are kept for ``days`` (undo window), then removed; stale uploads are aborted."""
    return s3.LifecycleRule(
        id="expire-noncurrent-versions",
        noncurrent_version_expiration=Duration.days(days),
        abort_incomplete_multipart_upload_after=Duration.days(7),
    )


def infrequent_access_rule(days: int, *, prefix: str | None = None) -> s3.LifecycleRule:
    """Objects untouched for ``days`` move to Standard-IA (studies are read rarely after import)."""
    return s3.LifecycleRule(
        id=f"to-infrequent-access{'-' + prefix.strip('/') if prefix else ''}",
        prefix=prefix,
        transitions=[
            s3.Transition(storage_class=s3.StorageClass.INFREQUENT_ACCESS, transition_after=Duration.days(days))
        ],
    )


def expiration_rule(days: int, *, prefix: str) -> s3.LifecycleRule:
    """Objects under ``prefix`` expire after ``days`` (transient inference payloads)."""
    return s3.LifecycleRule(id=f"expire-{prefix.strip('/')}", prefix=prefix, expiration=Duration.days(days))


def access_logs_bucket(
    scope: Construct, id_: str, *, expiration_days: int, target_reason: str, encryption_reason: str
) -> s3.Bucket:
    """The server-access-log target of other buckets: SSE-S3 (the only encryption log delivery accepts), versioned,
    retained, expired after ``expiration_days``. ``target_reason`` says why it is not logged itself and
    ``encryption_reason`` why it is not KMS-encrypted, for the nag and checkov acknowledgments."""
    bucket = s3.Bucket(
        scope,
        id_,
        encryption=s3.BucketEncryption.S3_MANAGED,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        object_ownership=s3.ObjectOwnership.BUCKET_OWNER_PREFERRED,
        enforce_ssl=True,
        minimum_tls_version=1.2,
        versioned=True,
        lifecycle_rules=[
            s3.LifecycleRule(
                id="expire-access-logs",
                expiration=Duration.days(expiration_days),
                noncurrent_version_expiration=Duration.days(30),
            )
        ],
        # Object keys in access logs can carry identifiers: keep the audit trail with the data.
        removal_policy=RemovalPolicy.RETAIN,
    )
    acknowledge(bucket, ["AwsSolutions-S1", "HIPAA.Security-S3BucketLoggingEnabled"], target_reason)
    acknowledge(bucket, ["HIPAA.Security-S3DefaultEncryptionKMS"], encryption_reason)
    acknowledge(bucket, ["HIPAA.Security-S3BucketReplicationEnabled"], REPLICATION_REASON)
    skip_checkov(
        bucket,
        {
            "CKV_AWS_18": "This bucket is the access-log target; logging it into itself would loop.",
            "CKV_AWS_145": encryption_reason,
        },
    )
    return bucket
