"""KMS-encrypted, retained CloudWatch log groups with a retention period taken from configuration."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from constructs import Construct

from stacks.config import LOG_RETENTION_DAYS

# RetentionDays lists the periods CloudWatch Logs accepts, in the same order as LOG_RETENTION_DAYS.
_RETENTION = dict(zip(LOG_RETENTION_DAYS, list(logs.RetentionDays)[: len(LOG_RETENTION_DAYS)], strict=True))


def retention(days: int) -> logs.RetentionDays:
    """The RetentionDays member for a validated number of days."""
    return _RETENTION[days]


def encrypted_log_group(scope: Construct, id_: str, *, key: kms.IKey, retention_days: int) -> logs.LogGroup:
    """A log group encrypted with ``key``; logs can carry identifiers, so they are retained with the data."""
    return logs.LogGroup(
        scope,
        id_,
        encryption_key=key,
        retention=retention(retention_days),
        removal_policy=RemovalPolicy.RETAIN,
    )
