"""Audit stack: a CloudTrail trail of who read or changed patient data (S3 objects, HealthImaging image sets).

A stack of its own, after the data and HealthImaging stacks: the trail names their buckets and data store, and the
data stack cannot reference the data store without a cycle. With ``audit.organizationTrailArn`` set, an existing
trail does the recording: no trail is created, and the stack holds only the SSM parameter naming that trail, which
`monai-platform doctor` reads to check the trail's selectors (a stack needs one resource).
"""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from stacks.components.audit_trail import AuditTrail, audit_selectors
from stacks.components.keys import rotating_key
from stacks.config import PlatformConfig
from stacks.props import AuditedResources


def audit_parameter_name(prefix: str) -> str:
    """SSM parameter holding the ARN of the trail that audits the stage (its own or the organization's)."""
    return f"/{prefix}/audit/trail-arn"


class AuditStack(Stack):
    """``trail`` (the AuditTrail construct, None with an organization trail) and ``trail_arn`` are public."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        config: PlatformConfig,
        logs_key: kms.IKey,
        access_logs_bucket: s3.IBucket,
        audited: AuditedResources,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, id_, **kwargs)
        audit = config.audit
        self.trail: AuditTrail | None = None
        if audit.organization_trail_arn is None:
            self.trail = AuditTrail(
                self,
                "Audit",
                trail_name=f"{config.prefix}-audit",
                key=rotating_key(
                    self,
                    "TrailKey",
                    alias=f"alias/{config.prefix}/audit",
                    description="Encrypts the audit trail's log files (who accessed which study)",
                ),
                logs_key=logs_key,
                access_logs=access_logs_bucket,
                selectors=audit_selectors(
                    management_events=audit.management_events,
                    object_buckets=audited.patient_buckets,
                    log_buckets=audited.log_buckets,
                    datastore_arns=audited.datastore_arns,
                ),
                log_retention_days=audit.log_retention_days,
                log_file_expiration_days=audit.log_file_expiration_days,
            )
            self.trail_arn = self.trail.trail.trail_arn
            CfnOutput(self, "TrailBucketName", value=self.trail.bucket.bucket_name)
        else:
            self.trail_arn = audit.organization_trail_arn
        ssm.StringParameter(
            self,
            "TrailArnParameter",
            parameter_name=audit_parameter_name(config.prefix),
            string_value=self.trail_arn,
            description="The CloudTrail trail that records access to this stage's patient data",
        )
        CfnOutput(self, "TrailArn", value=self.trail_arn)
