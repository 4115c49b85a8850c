"""One frozen type per section of the configuration, each field's context key and validation beside it.

``field(metadata=setting("maxAzs", Integer(minimum=2, maximum=6)))`` reads ``platform.network.maxAzs``; rules
that span fields live in the section's ``check``. The reader is stacks/config/fields.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any, Self

from model_code.core.threads import ThreadPlan, plan_threads
from stacks.config.fields import (
    ConfigError,
    Flag,
    Integer,
    Nested,
    RetentionDays,
    Rules,
    Section,
    Text,
    Value,
    empty_is_none,
    one_of,
    setting,
)

_SAGEMAKER_INSTANCE = re.compile(r"^ml\.[a-z0-9]+[a-z0-9-]*\.[a-z0-9]+$")
_CIDR = re.compile(r"^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})/(\d{1,2})$")
_CONNECTION_ARN = re.compile(
    r"^arn:aws[a-z-]*:(codestar-connections|codeconnections):[a-z0-9-]+:\d{12}:connection/[\w-]+$"
)
_GIT_REPOSITORY = re.compile(r"^[\w.-]+/[\w.-]+$")
_SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")
_ARTIFACT_PREFIX = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]*/$")
_TRAIL_ARN = re.compile(r"^arn:aws[a-z-]*:cloudtrail:[a-z0-9-]+:\d{12}:trail/[A-Za-z0-9._-]{3,128}$")
_THING_GROUP_ARN = re.compile(r"^arn:aws[a-z-]*:iot:[a-z0-9-]+:\d{12}:thinggroup/[A-Za-z0-9:_-]{1,128}$")

SOURCE_KINDS = ("s3", "codestar")
DEPLOYMENT_STRATEGIES = ("canary", "linear", "rolling")

INSTANCE_TYPE = Text(
    expected="a SageMaker instance type such as 'ml.m5.xlarge' (with the 'ml.' prefix)",
    valid=lambda value: bool(_SAGEMAKER_INSTANCE.match(value)),
)


def _is_cidr(value: str) -> bool:
    match = _CIDR.match(value)
    if match is None:
        return False
    return all(int(octet) <= 255 for octet in match.groups()[:4]) and 16 <= int(match.group(5)) <= 24


@dataclass(frozen=True)
class NetworkConfig(Rules):
    cidr: str = field(metadata=setting("cidr", Text(
        expected="an IPv4 CIDR with a prefix between /16 and /24 (room for the subnets of every AZ)", valid=_is_cidr
    )))
    max_azs: int = field(metadata=setting("maxAzs", Integer(minimum=2, maximum=6)))
    nat_gateways: int = field(metadata=setting("natGateways", Integer(minimum=0, maximum=6)))
    flow_log_retention_days: int = field(metadata=setting("flowLogRetentionDays", RetentionDays()))

    def check(self, section: Section) -> Self:
        section.require_at_most(("natGateways", self.nat_gateways), ("maxAzs", self.max_azs),
                                "one NAT gateway per AZ at most")
        return self


@dataclass(frozen=True)
class DataConfig(Rules):
    noncurrent_version_expiration_days: int = field(
        metadata=setting("noncurrentVersionExpirationDays", Integer(minimum=1))
    )
    infrequent_access_transition_days: int = field(
        metadata=setting("infrequentAccessTransitionDays", Integer(minimum=30))
    )
    inference_output_expiration_days: int = field(metadata=setting("inferenceOutputExpirationDays", Integer(minimum=1)))
    access_log_expiration_days: int = field(metadata=setting("accessLogExpirationDays", Integer(minimum=90)))


def _is_model_data_key(value: str) -> bool:
    return value.endswith(".tar.gz") and not value.startswith("/") and "/" in value


CAPACITY_FIX = "raise the maximum or lower the minimum"


@dataclass(frozen=True)
class ServingConfig(Rules):
    async_instance_type: str = field(metadata=setting("asyncInstanceType", INSTANCE_TYPE))
    # The async endpoint scales to zero; its maximum must allow one instance.
    async_min_instances: int = field(metadata=setting("asyncMinInstances", Integer(minimum=0)))
    async_max_instances: int = field(metadata=setting("asyncMaxInstances", Integer(minimum=1)))
    # Requests one instance works on at once; 0 = one per TorchServe worker (async_thread_plan), so that no worker
    # idles while requests wait in the queue.
    max_concurrent_invocations_per_instance: int = field(
        metadata=setting("maxConcurrentInvocationsPerInstance", Integer(minimum=0))
    )
    multi_model_enabled: bool = field(metadata=setting("multiModelEnabled", Flag()))
    multi_model_instance_type: str = field(metadata=setting("multiModelInstanceType", INSTANCE_TYPE))
    # A real-time endpoint cannot scale to zero.
    multi_model_min_instances: int = field(metadata=setting("multiModelMinInstances", Integer(minimum=1)))
    multi_model_max_instances: int = field(metadata=setting("multiModelMaxInstances", Integer(minimum=1)))
    # Key of the approved model archive (model.tar.gz) in the model-artifacts bucket.
    model_data_key: str = field(metadata=setting("modelDataKey", Text(
        expected="an S3 key 'prefix/.../model.tar.gz' in the model-artifacts bucket (no leading '/'; the endpoint "
        "may read only its prefix)",
        valid=_is_model_data_key,
    )))
    # Target of ApproximateBacklogSizePerInstance: queued requests per instance before scaling out.
    async_backlog_per_instance_target: int = field(
        metadata=setting("asyncBacklogPerInstanceTarget", Integer(minimum=1))
    )
    # Import each SEG the async endpoint writes back into HealthImaging (stacks/inference); off by default.
    import_seg_back: bool = field(metadata=setting("importSegBack", Flag()))
    # The async endpoint's TorchServe workers and each one's intra-op threads; 0 derives it from the instance
    # type so that workers x threads <= its vCPUs (model_code/core/threads.py has the rule and why).
    workers_per_instance: int = field(metadata=setting("workersPerInstance", Integer(minimum=0, maximum=256)))
    threads_per_worker: int = field(metadata=setting("threadsPerWorker", Integer(minimum=0, maximum=256)))

    def check(self, section: Section) -> Self:
        section.require_at_most(("asyncMinInstances", self.async_min_instances),
                                ("asyncMaxInstances", self.async_max_instances), CAPACITY_FIX)
        section.require_at_most(("multiModelMinInstances", self.multi_model_min_instances),
                                ("multiModelMaxInstances", self.multi_model_max_instances), CAPACITY_FIX)
        self._check_threads(section)
        return self

    def _check_threads(self, section: Section) -> None:
        from stacks.components.instance_types import instance_capacity

        capacity = instance_capacity(self.async_instance_type)
        if capacity is None:
            if not (self.workers_per_instance and self.threads_per_worker):
                raise ConfigError(
                    f"context key '{section.key('asyncInstanceType')}' is {self.async_instance_type!r}, whose vCPUs "
                    "stacks/components/instance_types.py does not list: add the type there, or set "
                    f"'{section.key('workersPerInstance')}' and '{section.key('threadsPerWorker')}' (both >= 1)"
                )
            return
        vcpus = capacity[0]
        if self.workers_per_instance and self.threads_per_worker and (
            self.workers_per_instance * self.threads_per_worker > vcpus
        ):
            raise ConfigError(
                f"context keys '{section.key('workersPerInstance')}' x '{section.key('threadsPerWorker')}' "
                f"({self.workers_per_instance} x {self.threads_per_worker}) must be <= the {vcpus} vCPUs of "
                f"{self.async_instance_type}: more threads than cores slow every request down (set either to 0 "
                "to derive it)"
            )

    def async_thread_plan(self) -> ThreadPlan:
        """The async endpoint's workers and threads: the configured ones, the rest derived from the type."""
        from stacks.components.instance_types import instance_capacity

        vcpus, gpus = instance_capacity(self.async_instance_type) or (
            self.workers_per_instance * self.threads_per_worker, 0
        )
        return plan_threads(vcpus, gpus, workers=self.workers_per_instance or None,
                            threads=self.threads_per_worker or None)

    def async_concurrent_invocations(self) -> int:
        """MaxConcurrentInvocationsPerInstance: the configured number, else one request per worker."""
        return self.max_concurrent_invocations_per_instance or self.async_thread_plan().workers


def _is_s3(read: Any) -> bool:
    return bool(read["kind"] == "s3")


def _is_codestar(read: Any) -> bool:
    return bool(read["kind"] == "codestar")


@dataclass(frozen=True)
class ImageSourceConfig(Rules):
    """Where the image pipeline (and the release pipeline) read the platform's source: ``platform.images.source``."""

    kind: str = field(metadata=setting("kind", Text(
        expected="'s3' or 'codestar' (CodeCommit is closed to new customers)", valid=lambda kind: kind in SOURCE_KINDS
    )))
    # kind "s3": the zip archive's key in the source bucket the container-images stack creates.
    bucket_key: str | None = field(metadata=setting("bucketKey", Value(
        expected="an S3 key ending in '.zip' without a leading '/' when source.kind is 's3' (CodePipeline's S3 source "
        "reads a zip archive)",
        valid=lambda key: isinstance(key, str) and key.endswith(".zip") and not key.startswith("/"),
    ), when=_is_s3))
    # kind "codestar": a CodeStar (CodeConnections) connection to a Git host, "owner/name" and a branch.
    connection_arn: str | None = field(metadata=setting("connectionArn", Value(
        expected="a CodeStar connection ARN (arn:<partition>:codeconnections:<region>:<account>:connection/<id>) when "
        "source.kind is 'codestar'",
        valid=lambda arn: isinstance(arn, str) and bool(_CONNECTION_ARN.match(arn)),
        fix=": create the connection in the Developer Tools console and paste its ARN",
    ), when=_is_codestar))
    repository: str | None = field(metadata=setting("repository", Value(
        expected="'owner/name' of the Git repository when source.kind is 'codestar'",
        valid=lambda name: isinstance(name, str) and bool(_GIT_REPOSITORY.match(name)),
    ), when=_is_codestar))
    branch: str = field(metadata=setting("branch", Text()))


@dataclass(frozen=True)
class ImagesConfig(Rules):
    keep_images: int = field(metadata=setting("keepImages", Integer(minimum=1, maximum=1000)))
    log_retention_days: int = field(metadata=setting("logRetentionDays", RetentionDays()))
    source: ImageSourceConfig = field(metadata=setting("source", Nested(ImageSourceConfig)))


def approvable_metrics() -> list[str]:
    """The trainer's validation metrics (higher is better): what auto-approval may compare with a threshold."""
    # Imported here: the trainer's module is the one source of metric names (it imports nothing heavy).
    from model_code.training.metrics import METRIC_DEFINITIONS

    return [d["Name"] for d in METRIC_DEFINITIONS if d["Name"].startswith("validation:")]


@dataclass(frozen=True)
class AutoApproveMetric:
    """``""`` (auto-approval off, read as None) or one of :func:`approvable_metrics`."""

    def read(self, section: Section, name: str) -> str | None:
        metric = section.raw(name)
        approvable = approvable_metrics()
        if not isinstance(metric, str) or (metric and metric not in approvable):
            raise section.invalid(
                name, f"\"\" (every model waits for manual approval) or one of the trainer's validation metrics "
                f"{approvable}", metric
            )
        return metric or None


@dataclass(frozen=True)
class TrainingConfig(Rules):
    instance_type: str = field(metadata=setting("instanceType", INSTANCE_TYPE))
    instance_count: int = field(metadata=setting("instanceCount", Integer(minimum=1, maximum=32)))
    use_spot: bool = field(metadata=setting("useSpot", Flag()))
    # SageMaker caps a training job's MaxRuntimeInSeconds at 28 days.
    max_runtime_hours: int = field(metadata=setting("maxRuntimeHours", Integer(minimum=1, maximum=28 * 24)))
    # A package whose final value of this metric (a "validation:*" name of the trainer's METRIC_DEFINITIONS,
    # higher is better) is >= the threshold is registered Approved; None: every package waits for a reviewer.
    auto_approve_metric: str | None = field(metadata=setting("autoApproveMetric", AutoApproveMetric()))
    auto_approve_threshold: float | None = field(metadata=setting("autoApproveThreshold", Value(
        expected="a number between 0 and 1 (validation metrics are fractions)",
        valid=lambda value: not isinstance(value, bool) and isinstance(value, int | float) and 0 <= value <= 1,
        convert=float,
    )))
    # How an approved package replaces the async endpoint's model (UpdateEndpoint's DeploymentConfig).
    deployment_strategy: str = field(metadata=setting("deploymentStrategy", one_of(DEPLOYMENT_STRATEGIES)))

    def check(self, section: Section) -> Self:
        # Without a metric there is nothing to compare: the threshold is not part of the configuration then.
        if self.auto_approve_metric is None:
            return replace(self, auto_approve_threshold=None)
        return self


@dataclass(frozen=True)
class MonitoringConfig(Rules):
    """Alarm thresholds (stacks/monitoring): what a team tunes to its case volume and instance type."""

    # Requests queued at the async endpoint (ApproximateBacklogSize) before someone is told.
    backlog_size_threshold: int = field(metadata=setting("backlogSizeThreshold", Integer(minimum=1)))
    # Age of the oldest queued request (ApproximateAgeOfOldestRequest), in minutes. Async requests live at most
    # 6 hours in the queue (InvokeEndpointAsync RequestTTLSeconds <= 21600).
    backlog_age_minutes: int = field(metadata=setting("backlogAgeMinutes", Integer(minimum=1, maximum=360)))
    # Average model latency (ModelLatency) per 5 minutes, in seconds. An async invocation runs at most one hour
    # (InvocationTimeoutSeconds <= 3600).
    model_latency_seconds: int = field(metadata=setting("modelLatencySeconds", Integer(minimum=1, maximum=3600)))
    # Failed invocations, 4xx or 5xx responses per 5 minutes.
    error_threshold: int = field(metadata=setting("errorThreshold", Integer(minimum=1)))


@dataclass(frozen=True)
class BackfillConfig(Rules):
    """The backfill workflow (stacks/backfill, docs/backfill.md): how hard it pushes the async endpoint."""

    # Async requests the backfill keeps queued at the endpoint (ApproximateBacklogSize): enough for the endpoint's
    # target tracking to scale out, few enough that nothing waits near the 6-hour request TTL.
    backlog_target: int = field(metadata=setting("backlogTarget", Integer(minimum=1, maximum=10_000)))
    # Distributed Map child workflows at once (Step Functions allows up to 10,000); each one submits a batch.
    max_concurrency: int = field(metadata=setting("maxConcurrency", Integer(minimum=1, maximum=10_000)))
    # Image sets per child workflow (ItemBatcher MaxItemsPerBatch).
    batch_size: int = field(metadata=setting("batchSize", Integer(minimum=1, maximum=100)))
    # The share of batches that may fail before the whole run fails (ToleratedFailurePercentage).
    tolerated_failure_percentage: int = field(metadata=setting("toleratedFailurePercentage",
                                                               Integer(minimum=0, maximum=100)))
    # How long a batch waits before reading the backlog again when the endpoint is at the target.
    backlog_wait_seconds: int = field(metadata=setting("backlogWaitSeconds", Integer(minimum=10, maximum=3600)))


@dataclass(frozen=True)
class EdgeConfig(Rules):
    """The offline edge runner as a Greengrass v2 component (stacks/edge, docs/edge.md)."""

    # false: no Edge stack at all.
    enabled: bool = field(metadata=setting("enabled", Flag()))
    # Semantic version of the component; a new bundle needs a new version (component versions are immutable).
    component_version: str = field(metadata=setting("componentVersion", Value(
        expected="a semantic version MAJOR.MINOR.PATCH such as '1.0.0' (Greengrass component versions)",
        valid=lambda version: bool(_SEMVER.match(version)),
        # `-c platform.edge.componentVersion=1.0` arrives as the number 1.0: judge it as the text the user typed.
        prepare=str,
    )))
    # Key prefix of the bundles in the model-artifacts bucket: <prefix><version>/bundle.zip.
    artifact_prefix: str = field(metadata=setting("artifactPrefix", Text(
        expected="an S3 key prefix ending in '/' without a leading '/', such as 'edge/spleen/' (devices may read "
        "only below it)",
        valid=lambda prefix: bool(_ARTIFACT_PREFIX.match(prefix)) and "//" not in prefix,
    )))
    # Unprivileged ports only: the component runs as the Greengrass user, not root.
    port: int = field(metadata=setting("port", Integer(minimum=1024, maximum=65535)))
    # The runner's onnxruntime threads per request; 0 derives them on the device (workers x threads <= its CPUs).
    threads: int = field(metadata=setting("threads", Integer(minimum=0, maximum=64)))
    queue: int = field(metadata=setting("queue", Integer(minimum=0, maximum=64)))
    max_request_mb: int = field(metadata=setting("maxRequestMb", Integer(minimum=1, maximum=4096)))
    # Deploy the component to this IoT thing group; None: the component is published, not deployed.
    thing_group_arn: str | None = field(metadata=setting("thingGroupArn", Value(
        expected="\"\" (publish the component, deploy nothing) or an IoT thing group ARN "
        "'arn:<partition>:iot:<region>:<account>:thinggroup/<name>'",
        valid=lambda arn: isinstance(arn, str) and (not arn or bool(_THING_GROUP_ARN.match(arn))),
        convert=empty_is_none,
    )))

    def check(self, section: Section) -> Self:
        if self.thing_group_arn is not None and not self.enabled:
            raise ConfigError(
                f"context key '{section.key('thingGroupArn')}' is set but '{section.key('enabled')}' is false: "
                "enable the edge stack or clear the thing group"
            )
        return self


_DOMAIN_NAME = re.compile(r"^(?=.{4,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
# CloudFront reads viewer certificates from ACM in us-east-1 only.
_CLOUDFRONT_CERTIFICATE_ARN = re.compile(r"^arn:aws[a-z-]*:acm:us-east-1:\d{12}:certificate/[0-9a-f-]{36}$")
# A web ACL for CloudFront has the global (CLOUDFRONT) scope, which lives in us-east-1.
_CLOUDFRONT_WEB_ACL_ARN = re.compile(
    r"^arn:aws[a-z-]*:wafv2:us-east-1:\d{12}:global/webacl/[\w-]{1,128}/[0-9a-f-]{36}$"
)
# Cognito's rules for a domain prefix: lowercase letters, digits and hyphens, no leading or trailing hyphen, and
# none of the reserved words.
_SIGN_IN_PREFIX = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_SIGN_IN_RESERVED = ("aws", "amazon", "cognito")
_COUNTRY = re.compile(r"^[A-Z]{2}$")


def _is_sign_in_prefix(value: Any) -> bool:
    return isinstance(value, str) and (
        not value or (bool(_SIGN_IN_PREFIX.match(value)) and not any(w in value for w in _SIGN_IN_RESERVED))
    )


def _optional(pattern: re.Pattern[str]) -> Any:
    return lambda value: isinstance(value, str) and (not value or bool(pattern.match(value)))


@dataclass(frozen=True)
class ViewerConfig(Rules):
    """The OHIF viewer over the data store (stacks/viewer, docs/viewer.md); off by default."""

    # false: no Viewer stack, and results carry no viewer link.
    enabled: bool = field(metadata=setting("enabled", Flag()))
    # The viewer's host name: a DNS name you control, CNAMEd to the distribution (its certificate's name).
    domain_name: str | None = field(metadata=setting("domainName", Value(
        expected="\"\" or the viewer's host name such as 'viewer.imaging.example.org' (lowercase, no scheme or path)",
        valid=_optional(_DOMAIN_NAME),
        convert=empty_is_none,
    )))
    # CloudFront serves TLS 1.2+ only with a certificate of your own: with its default *.cloudfront.net one the
    # minimum protocol stays TLSv1.
    certificate_arn: str | None = field(metadata=setting("certificateArn", Value(
        expected="\"\" or the ARN of an ACM certificate for domainName in us-east-1 "
        "'arn:<partition>:acm:us-east-1:<account>:certificate/<id>' (CloudFront reads certificates there only)",
        valid=_optional(_CLOUDFRONT_CERTIFICATE_ARN),
        convert=empty_is_none,
    )))
    # The Cognito hosted sign-in page's domain prefix, unique in the region; "": <project>-<stage>-viewer.
    sign_in_domain_prefix: str | None = field(metadata=setting("signInDomainPrefix", Value(
        expected="\"\" (use '<project>-<stage>-viewer') or 1-63 lowercase letters, digits and hyphens, not starting "
        "or ending with a hyphen, without 'aws', 'amazon' or 'cognito' (Cognito's rules)",
        valid=_is_sign_in_prefix,
        convert=empty_is_none,
    )))
    # An AWS WAF web ACL (CLOUDFRONT scope) to put in front of the viewer; "": none.
    web_acl_arn: str | None = field(metadata=setting("webAclArn", Value(
        expected="\"\" (no web ACL) or the ARN of a CLOUDFRONT-scope AWS WAF web ACL "
        "'arn:<partition>:wafv2:us-east-1:<account>:global/webacl/<name>/<id>'",
        valid=_optional(_CLOUDFRONT_WEB_ACL_ARN),
        convert=empty_is_none,
    )))
    # Countries (ISO 3166-1 alpha-2) the viewer answers; []: every country.
    allowed_countries: tuple[str, ...] = field(metadata=setting("allowedCountries", Value(
        expected="a list of ISO 3166-1 alpha-2 country codes such as [\"US\", \"CA\"] ([] allows every country)",
        valid=lambda codes: isinstance(codes, list) and all(isinstance(c, str) and _COUNTRY.match(c) for c in codes),
        convert=tuple,
    )))

    def check(self, section: Section) -> Self:
        if self.enabled:
            for name, value in (("domainName", self.domain_name), ("certificateArn", self.certificate_arn)):
                if value is None:
                    raise ConfigError(
                        f"context key '{section.key(name)}' is required when '{section.key('enabled')}' is true: the "
                        "viewer is served on your own host name with your ACM certificate (us-east-1), so CloudFront "
                        "can enforce TLS 1.2"
                    )
        return self

    @property
    def url(self) -> str | None:
        """The viewer's base URL, known at synth (deep links are built from it); None when the viewer is off."""
        return f"https://{self.domain_name}" if self.enabled and self.domain_name else None


@dataclass(frozen=True)
class AuditConfig(Rules):
    """The CloudTrail audit trail of patient-data access (stacks/audit, docs/audit.md)."""

    # None: the platform creates its own trail. An ARN: an organization (or account) trail that already logs the
    # platform's buckets and data store; no trail is created and `monai-platform doctor` checks its selectors.
    organization_trail_arn: str | None = field(metadata=setting("organizationTrailArn", Value(
        expected="\"\" (the platform creates its own trail) or the ARN of an existing trail "
        "'arn:<partition>:cloudtrail:<region>:<account>:trail/<name>'",
        valid=lambda arn: isinstance(arn, str) and (not arn or bool(_TRAIL_ARN.match(arn))),
        convert=empty_is_none,
    )))
    # Management events (who changed a bucket policy, approved a model): the first copy in an account is free, a
    # second trail of them is billed; turn off when another trail of the account records them already.
    management_events: bool = field(metadata=setting("managementEvents", Flag()))
    log_retention_days: int = field(metadata=setting("logRetentionDays", RetentionDays()))
    # Log files in S3: HIPAA asks for six years of documentation (45 CFR 164.316(b)(2)).
    log_file_expiration_days: int = field(metadata=setting("logFileExpirationDays", Integer(minimum=365)))

    def coverage_claim(self, own_trail: str) -> str:
        """How an acknowledgment says who audits access to a bucket, ``own_trail`` naming the trail the platform
        creates; tests/stacks/test_acknowledged_controls.py checks the claim against the synthesized trails (or
        that it names the organization trail, whose selectors `monai-platform doctor` checks)."""
        if self.organization_trail_arn is None:
            return f"CloudTrail data events of {own_trail} cover access to it"
        return (f"CloudTrail data events of the organization trail {self.organization_trail_arn} cover access to it "
                "(monai-platform doctor checks the trail's selectors)")
