"""A CloudTrail trail for who read or changed patient data: S3 object and HealthImaging data events.

CDK 2.275's L2 ``Trail`` writes only basic event selectors (S3 objects and Lambda functions). HealthImaging data
events exist only as advanced selectors (resources.type ``AWS::MedicalImaging::Datastore`` and
``AWS::MedicalImaging::Imageset``, CloudTrail User Guide, "Logging data events"), and a trail takes one kind or
the other, so every selector, management events included, is written as an advanced selector on the L1 resource
and the L2's empty ``EventSelectors`` is removed.

Log files are KMS-encrypted with a key whose policy lets only this trail use it, validated (digest files), kept
in a retained, versioned, access-logged bucket and streamed to an encrypted CloudWatch Logs group
(HIPAA.Security-CloudTrailCloudWatchLogsEnabled).
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration, IResolvable, Stack
from aws_cdk import aws_cloudtrail as cloudtrail
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from stacks.compliance import acknowledge
from stacks.components.log_group import encrypted_log_group
from stacks.components.secure_bucket import SecureBucket, noncurrent_version_rule

OBJECT = "AWS::S3::Object"
DATASTORE = "AWS::MedicalImaging::Datastore"
IMAGE_SET = "AWS::MedicalImaging::Imageset"
# Server access logging writes its records with PutObject: logging those writes on a log bucket would log every
# delivery (and each delivery of this trail's own files adds an access-log record: a loop). Everything else on a
# log bucket (reads, deletes, ACL and tagging calls) is recorded.
LOG_DELIVERY_EVENT = "PutObject"

LOGS_ROLE_REASON = (
    "The trail's log delivery role, made by CDK's Trail construct: one inline policy allowing CreateLogStream and "
    "PutLogEvents on this trail's log group only, attached to no other principal."
)


def _field(name: str, **operator: Sequence[str]) -> cloudtrail.CfnTrail.AdvancedFieldSelectorProperty:
    return cloudtrail.CfnTrail.AdvancedFieldSelectorProperty(field=name, **operator)  # type: ignore[arg-type]


def audit_selectors(
    *,
    management_events: bool,
    object_buckets: Sequence[s3.IBucket],
    log_buckets: Sequence[s3.IBucket],
    datastore_arns: Sequence[str],
) -> list[cloudtrail.CfnTrail.AdvancedEventSelectorProperty]:
    """The advanced event selectors: every selector matches when all its fields match; an event is logged when
    any selector matches it."""
    selector = cloudtrail.CfnTrail.AdvancedEventSelectorProperty
    data = _field("eventCategory", equal_to=["Data"])

    def objects_of(buckets: Sequence[s3.IBucket]) -> list[cloudtrail.CfnTrail.AdvancedFieldSelectorProperty]:
        # An object ARN is <bucket ARN>/<key>; the slash keeps bucket "x" from matching "x-other".
        return [data, _field("resources.type", equal_to=[OBJECT]),
                _field("resources.ARN", starts_with=[f"{b.bucket_arn}/" for b in buckets])]

    selectors = []
    if management_events:
        # With advanced selectors, management events are logged only when a selector asks for them.
        selectors.append(selector(name="Management events",
                                  field_selectors=[_field("eventCategory", equal_to=["Management"])]))
    if object_buckets:
        selectors.append(selector(name="Object reads and writes in the patient-data buckets",
                                  field_selectors=objects_of(object_buckets)))
    if log_buckets:
        selectors.append(selector(
            name="Access-log buckets: every object call but the log deliveries",
            field_selectors=[*objects_of(log_buckets), _field("eventName", not_equals=[LOG_DELIVERY_EVENT])],
        ))
    if datastore_arns:
        selectors.append(selector(name="HealthImaging data store calls (imports, searches)", field_selectors=[
            data, _field("resources.type", equal_to=[DATASTORE]),
            _field("resources.ARN", equal_to=list(datastore_arns)),
        ]))
        selectors.append(selector(name="HealthImaging image set calls (who read which study)", field_selectors=[
            data, _field("resources.type", equal_to=[IMAGE_SET]),
            _field("resources.ARN", starts_with=[f"{arn}/imageset/" for arn in datastore_arns]),
        ]))
    if not selectors:
        raise ValueError("an audit trail needs management events or at least one bucket or data store to log")
    return selectors


def allow_trail(key: kms.Key, trail_name: str) -> None:
    """Let CloudTrail encrypt log files with ``key`` for the trail ``trail_name`` of this account only
    (CloudTrail User Guide, "Configure AWS KMS key policies for CloudTrail")."""
    stack = Stack.of(key)
    trail_arn = f"arn:{stack.partition}:cloudtrail:{stack.region}:{stack.account}:trail/{trail_name}"
    principal = iam.ServicePrincipal("cloudtrail.amazonaws.com")
    key.add_to_resource_policy(iam.PolicyStatement(
        sid="AllowCloudTrailToEncryptLogFiles",
        principals=[principal],
        actions=["kms:GenerateDataKey*"],
        resources=["*"],
        conditions={
            "StringEquals": {"aws:SourceArn": trail_arn},
            "StringLike": {
                "kms:EncryptionContext:aws:cloudtrail:arn":
                    f"arn:{stack.partition}:cloudtrail:*:{stack.account}:trail/*"
            },
        },
    ))
    key.add_to_resource_policy(iam.PolicyStatement(
        sid="AllowCloudTrailToDescribeKey",
        principals=[principal],
        actions=["kms:DescribeKey"],
        resources=["*"],
        conditions={"StringEquals": {"aws:SourceArn": trail_arn}},
    ))


class AuditTrail(Construct):
    """``trail`` (L2), ``bucket`` (log files) and ``log_group`` are public."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        trail_name: str,
        key: kms.Key,
        logs_key: kms.IKey,
        access_logs: s3.IBucket,
        selectors: list[cloudtrail.CfnTrail.AdvancedEventSelectorProperty],
        log_retention_days: int,
        log_file_expiration_days: int,
    ) -> None:
        super().__init__(scope, id_)
        allow_trail(key, trail_name)
        self.bucket = SecureBucket(
            self,
            "LogFiles",
            encryption_key=key,
            access_logs=access_logs,
            lifecycle_rules=[
                noncurrent_version_rule(90),
                s3.LifecycleRule(id="expire-log-files", expiration=Duration.days(log_file_expiration_days)),
            ],
        ).bucket
        self.log_group = encrypted_log_group(self, "Logs", key=logs_key, retention_days=log_retention_days)
        self.trail = cloudtrail.Trail(
            self,
            "Trail",
            trail_name=trail_name,
            bucket=self.bucket,
            encryption_key=key,
            enable_file_validation=True,
            # Every region: management events of global services (IAM, STS) and any region's calls are recorded
            # once. CloudTrail refuses a multi-region trail without global service events; which events a trail
            # records is the selectors' choice (none of them without the management selector).
            is_multi_region_trail=True,
            include_global_service_events=True,
            send_to_cloud_watch_logs=True,
            cloud_watch_log_group=self.log_group,
        )
        acknowledge(self.trail.node.find_child("LogsRole").node.find_child("DefaultPolicy"),
                    ["HIPAA.Security-IAMNoInlinePolicy"], LOGS_ROLE_REASON)
        cfn = self.trail.node.default_child
        assert isinstance(cfn, cloudtrail.CfnTrail)  # an L2 Trail's default child is its CfnTrail
        # A trail takes basic or advanced selectors, never both keys: the L2 renders "EventSelectors": [].
        cfn.add_property_deletion_override("EventSelectors")
        advanced: list[IResolvable | cloudtrail.CfnTrail.AdvancedEventSelectorProperty] = [*selectors]
        cfn.advanced_event_selectors = advanced
