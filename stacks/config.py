"""Platform configuration: frozen dataclasses built once, at the edge, from cdk.json context.

cdk.json embeds the default configuration under ``platform.defaults`` and per-stage overrides under
``platform.stages.<stage>``; ``-c stage=prod`` picks a stage and ``-c platform.<section>.<key>=value``
overrides one key. Every invalid value raises :class:`ConfigError` with the key and what to do.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# Regions where AWS HealthImaging is offered (AWS General Reference, "AWS HealthImaging endpoints and
# quotas", read 2026-11). The only list of them in the project: every region check reads it.
HEALTHIMAGING_REGIONS: tuple[str, ...] = ("us-east-1", "us-west-2", "eu-west-1", "eu-west-2", "ap-southeast-2")

CONTEXT_ROOT = "platform"
STAGE_CONTEXT_KEY = "stage"
DEFAULT_STAGE = "dev"

# Derived names (e.g. "<project>-<stage>-spleen-async" for a SageMaker endpoint, 63 characters at most)
# must fit the tightest AWS limit they meet, so the parts are bounded here.
_PROJECT_NAME = re.compile(r"^[a-z][a-z0-9-]{1,23}[a-z0-9]$")
_STAGE_NAME = re.compile(r"^[a-z][a-z0-9]{0,9}$")
_ACCOUNT = re.compile(r"^\d{12}$")
_SAGEMAKER_INSTANCE = re.compile(r"^ml\.[a-z0-9]+[a-z0-9-]*\.[a-z0-9]+$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_CONNECTION_ARN = re.compile(
    r"^arn:aws[a-z-]*:(codestar-connections|codeconnections):[a-z0-9-]+:\d{12}:connection/[\w-]+$"
)
_GIT_REPOSITORY = re.compile(r"^[\w.-]+/[\w.-]+$")
_CIDR = re.compile(r"^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})/(\d{1,2})$")
# CloudWatch Logs accepts only these retention periods (days).
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
                      3288, 3653)


class ConfigError(ValueError):
    """A configuration value is missing or invalid; the message names the context key and the fix."""


@dataclass(frozen=True)
class NetworkConfig:
    cidr: str
    max_azs: int
    nat_gateways: int
    flow_log_retention_days: int


@dataclass(frozen=True)
class DataConfig:
    noncurrent_version_expiration_days: int
    infrequent_access_transition_days: int
    inference_output_expiration_days: int
    access_log_expiration_days: int


@dataclass(frozen=True)
class ServingConfig:
    async_instance_type: str
    async_min_instances: int
    async_max_instances: int
    max_concurrent_invocations_per_instance: int
    multi_model_enabled: bool
    multi_model_instance_type: str
    multi_model_min_instances: int
    multi_model_max_instances: int
    # Key of the approved model archive (model.tar.gz) in the model-artifacts bucket.
    model_data_key: str
    # Target of ApproximateBacklogSizePerInstance: queued requests per instance before scaling out.
    async_backlog_per_instance_target: int
    # Import each SEG the async endpoint writes back into HealthImaging (stacks/inference); off by default.
    import_seg_back: bool = False


SOURCE_KINDS = ("s3", "codestar")


@dataclass(frozen=True)
class ImageSourceConfig:
    kind: str
    # kind "s3": the zip archive's key in the source bucket the images stack creates.
    bucket_key: str | None
    # kind "codestar": a CodeStar (CodeConnections) connection to a Git host, "owner/name" and a branch.
    # cdk.json holds "" rather than null for unused keys: jsii drops null context values, and a key that is
    # missing from the document cannot be set with -c.
    connection_arn: str | None
    repository: str | None
    branch: str


@dataclass(frozen=True)
class ImagesConfig:
    keep_images: int
    log_retention_days: int
    source: ImageSourceConfig


DEPLOYMENT_STRATEGIES = ("canary", "linear", "rolling")


@dataclass(frozen=True)
class TrainingConfig:
    instance_type: str
    instance_count: int
    use_spot: bool
    max_runtime_hours: int
    # A package whose final value of this metric (a "validation:*" name of the trainer's METRIC_DEFINITIONS,
    # higher is better) is >= the threshold is registered Approved; None: every package waits for a reviewer.
    auto_approve_metric: str | None = None
    auto_approve_threshold: float | None = None
    # How an approved package replaces the async endpoint's model (UpdateEndpoint's DeploymentConfig).
    deployment_strategy: str = "canary"


@dataclass(frozen=True)
class MonitoringConfig:
    """Alarm thresholds (stacks/monitoring): what a team tunes to its case volume and instance type."""

    # Requests queued at the async endpoint (ApproximateBacklogSize) before someone is told.
    backlog_size_threshold: int
    # Age of the oldest queued request (ApproximateAgeOfOldestRequest), in minutes.
    backlog_age_minutes: int
    # Average model latency (ModelLatency) per 5 minutes, in seconds.
    model_latency_seconds: int
    # Failed invocations, 4xx or 5xx responses per 5 minutes.
    error_threshold: int


@dataclass(frozen=True)
class EdgeConfig:
    """The offline edge runner as a Greengrass v2 component (stacks/edge, docs/edge.md)."""

    # false: no Edge stack at all.
    enabled: bool
    # Semantic version of the component; a new bundle needs a new version (component versions are immutable).
    component_version: str
    # Key prefix of the bundles in the model-artifacts bucket: <prefix><version>/bundle.zip.
    artifact_prefix: str
    port: int
    threads: int
    queue: int
    max_request_mb: int
    # Deploy the component to this IoT thing group; None: the component is published, not deployed.
    thing_group_arn: str | None


@dataclass(frozen=True)
class PlatformConfig:
    project_name: str
    stage: str
    account: str | None
    region: str
    network: NetworkConfig
    data: DataConfig
    serving: ServingConfig
    training: TrainingConfig
    images: ImagesConfig
    notification_emails: tuple[str, ...]
    monitoring: MonitoringConfig
    edge: EdgeConfig

    @property
    def prefix(self) -> str:
        """Prefix of every name the platform sets explicitly: ``<project>-<stage>``."""
        return f"{self.project_name}-{self.stage}"


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` laid over ``base``; nested mappings merge, anything else replaces."""
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _parse_cli_value(raw: Any) -> Any:
    # `-c key=value` always arrives as a string; JSON gives numbers, booleans and lists their type.
    if not isinstance(raw, str):
        return raw
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def resolve_document(context: Mapping[str, Any]) -> dict[str, Any]:
    """The effective configuration document: defaults, then the stage's overrides, then ``-c`` keys."""
    root = context.get(CONTEXT_ROOT)
    if not isinstance(root, Mapping) or not isinstance(root.get("defaults"), Mapping):
        raise ConfigError(
            f"context key '{CONTEXT_ROOT}.defaults' is missing: run from the project root so cdk.json's "
            "embedded default configuration is loaded"
        )
    stage = str(context.get(STAGE_CONTEXT_KEY, DEFAULT_STAGE))
    stages = root.get("stages", {})
    if stage not in stages:
        raise ConfigError(
            f"context key '{STAGE_CONTEXT_KEY}' is '{stage}', which cdk.json does not define: "
            f"use one of {sorted(stages)} or add it under '{CONTEXT_ROOT}.stages'"
        )
    document = deep_merge(root["defaults"], stages[stage] or {})
    document["stage"] = stage
    for key, raw in context.items():
        if not key.startswith(f"{CONTEXT_ROOT}.") or key.startswith(f"{CONTEXT_ROOT}.stages"):
            continue
        path = key.split(".")[1:]
        node = document
        for part in path[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                raise ConfigError(f"context key '{key}' names no configuration section: see the README's reference")
            node = child
        if path[-1] not in node:
            raise ConfigError(f"context key '{key}' is not a configuration key: see the README's reference")
        # A key whose default is a string keeps the text as typed: `-c platform.account=123456789012` is an
        # account ID, not the number JSON would make of it.
        current = node[path[-1]]
        node[path[-1]] = raw if isinstance(current, str) and isinstance(raw, str) else _parse_cli_value(raw)
    return document


class _Reader:
    """Typed access to one section of the document, naming the full context key in every error."""

    def __init__(self, document: Mapping[str, Any], section: str) -> None:
        self._section = section
        value = document.get(section) if section else document
        if not isinstance(value, Mapping):
            raise ConfigError(f"context key '{self._key('')}' must be an object of settings")
        self._values = value

    def _key(self, name: str) -> str:
        parts = [CONTEXT_ROOT, self._section, name]
        return ".".join(p for p in parts if p)

    def _get(self, name: str) -> Any:
        if name not in self._values:
            raise ConfigError(f"context key '{self._key(name)}' is missing: add it to cdk.json")
        return self._values[name]

    def integer(self, name: str, *, minimum: int, maximum: int | None = None) -> int:
        value = self._get(name)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"context key '{self._key(name)}' must be an integer, got {value!r}")
        if value < minimum:
            raise ConfigError(f"context key '{self._key(name)}' must be >= {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise ConfigError(f"context key '{self._key(name)}' must be <= {maximum}, got {value}")
        return value

    def boolean(self, name: str) -> bool:
        value = self._get(name)
        if not isinstance(value, bool):
            raise ConfigError(f"context key '{self._key(name)}' must be true or false, got {value!r}")
        return value

    def string(self, name: str) -> str:
        value = self._get(name)
        if not isinstance(value, str) or not value:
            raise ConfigError(f"context key '{self._key(name)}' must be a non-empty string, got {value!r}")
        return value

    def instance_type(self, name: str) -> str:
        value = self.string(name)
        if not _SAGEMAKER_INSTANCE.match(value):
            raise ConfigError(
                f"context key '{self._key(name)}' must be a SageMaker instance type such as 'ml.m5.xlarge' "
                f"(with the 'ml.' prefix), got {value!r}"
            )
        return value

    def retention_days(self, name: str) -> int:
        value = self.integer(name, minimum=1)
        if value not in LOG_RETENTION_DAYS:
            raise ConfigError(
                f"context key '{self._key(name)}' must be a CloudWatch Logs retention period "
                f"{list(LOG_RETENTION_DAYS)}, got {value}"
            )
        return value

    def capacity_range(self, low: str, high: str, *, minimum: int) -> tuple[int, int]:
        low_value = self.integer(low, minimum=minimum)
        high_value = self.integer(high, minimum=max(1, minimum))
        if low_value > high_value:
            raise ConfigError(
                f"context key '{self._key(low)}' ({low_value}) must be <= '{self._key(high)}' ({high_value}): "
                "raise the maximum or lower the minimum"
            )
        return low_value, high_value


def _cidr(value: str, key: str) -> str:
    match = _CIDR.match(value)
    if not match or any(int(octet) > 255 for octet in match.groups()[:4]) or not 16 <= int(match.group(5)) <= 24:
        raise ConfigError(
            f"context key '{key}' must be an IPv4 CIDR with a prefix between /16 and /24 "
            f"(room for the subnets of every AZ), got {value!r}"
        )
    return value


def _model_data_key(value: str) -> str:
    if not value.endswith(".tar.gz") or value.startswith("/") or "/" not in value:
        raise ConfigError(
            f"context key '{CONTEXT_ROOT}.serving.modelDataKey' must be an S3 key 'prefix/.../model.tar.gz' in the "
            f"model-artifacts bucket (no leading '/'; the endpoint may read only its prefix), got {value!r}"
        )
    return value


def _image_source(document: Mapping[str, Any]) -> ImageSourceConfig:
    # The source is nested one level deeper than other sections; a flat alias keeps the reader's key names right.
    images = document.get("images")
    src = _Reader({"images.source": images.get("source") if isinstance(images, Mapping) else None}, "images.source")
    key = f"{CONTEXT_ROOT}.images.source"
    kind = src.string("kind")
    if kind not in SOURCE_KINDS:
        raise ConfigError(
            f"context key '{key}.kind' must be 's3' or 'codestar' (CodeCommit is closed to new customers), "
            f"got {kind!r}"
        )
    branch = src.string("branch")
    if kind == "s3":
        bucket_key = src._get("bucketKey")
        if not isinstance(bucket_key, str) or not bucket_key.endswith(".zip") or bucket_key.startswith("/"):
            raise ConfigError(
                f"context key '{key}.bucketKey' must be an S3 key ending in '.zip' without a leading '/' when "
                f"source.kind is 's3' (CodePipeline's S3 source reads a zip archive), got {bucket_key!r}"
            )
        return ImageSourceConfig(kind=kind, bucket_key=bucket_key, connection_arn=None, repository=None, branch=branch)
    connection_arn = src._get("connectionArn")
    if not isinstance(connection_arn, str) or not _CONNECTION_ARN.match(connection_arn):
        raise ConfigError(
            f"context key '{key}.connectionArn' must be a CodeStar connection ARN "
            f"(arn:<partition>:codeconnections:<region>:<account>:connection/<id>) when source.kind is 'codestar', "
            f"got {connection_arn!r}: create the connection in the Developer Tools console and paste its ARN"
        )
    repository = src._get("repository")
    if not isinstance(repository, str) or not _GIT_REPOSITORY.match(repository):
        raise ConfigError(
            f"context key '{key}.repository' must be 'owner/name' of the Git repository when source.kind is "
            f"'codestar', got {repository!r}"
        )
    return ImageSourceConfig(
        kind=kind, bucket_key=None, connection_arn=connection_arn, repository=repository, branch=branch
    )


def _approval_settings(trn: _Reader) -> dict[str, Any]:
    """training.autoApproveMetric ("" turns auto-approval off), autoApproveThreshold, deploymentStrategy."""
    # Imported here: the trainer's module is the one source of metric names (it imports nothing heavy).
    from model_code.training.metrics import METRIC_DEFINITIONS

    key = f"{CONTEXT_ROOT}.training"
    metric = trn._get("autoApproveMetric")
    approvable = [d["Name"] for d in METRIC_DEFINITIONS if d["Name"].startswith("validation:")]
    if not isinstance(metric, str) or (metric and metric not in approvable):
        raise ConfigError(
            f"context key '{key}.autoApproveMetric' must be \"\" (every model waits for manual approval) or one of "
            f"the trainer's validation metrics {approvable}, got {metric!r}"
        )
    threshold = trn._get("autoApproveThreshold")
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0 <= threshold <= 1:
        raise ConfigError(
            f"context key '{key}.autoApproveThreshold' must be a number between 0 and 1 (validation metrics are "
            f"fractions), got {threshold!r}"
        )
    strategy = trn.string("deploymentStrategy")
    if strategy not in DEPLOYMENT_STRATEGIES:
        raise ConfigError(
            f"context key '{key}.deploymentStrategy' must be one of {list(DEPLOYMENT_STRATEGIES)}, got {strategy!r}"
        )
    return {
        "auto_approve_metric": metric or None,
        "auto_approve_threshold": float(threshold) if metric else None,
        "deployment_strategy": strategy,
    }


def build_config(context: Mapping[str, Any]) -> PlatformConfig:
    """Build and validate the configuration from a CDK context mapping (``app.node.get_all_context()``)."""
    document = resolve_document(context)
    top = _Reader(document, "")

    project_name = top.string("projectName")
    if not _PROJECT_NAME.match(project_name):
        raise ConfigError(
            f"context key '{CONTEXT_ROOT}.projectName' must be 3-25 lowercase letters, digits or hyphens, "
            f"starting with a letter (it prefixes names with AWS length limits), got {project_name!r}"
        )
    stage = str(document["stage"])
    if not _STAGE_NAME.match(stage):
        raise ConfigError(
            f"context key '{STAGE_CONTEXT_KEY}' must be 1-10 lowercase letters or digits starting with a letter, "
            f"got {stage!r}"
        )
    account = document.get("account")
    if not isinstance(account, str) or (account and not _ACCOUNT.match(account)):
        raise ConfigError(
            f"context key '{CONTEXT_ROOT}.account' must be a 12-digit AWS account ID or \"\" "
            f"(\"\" synthesizes environment-agnostic templates), got {account!r}"
        )
    region = top.string("region")
    if region not in HEALTHIMAGING_REGIONS:
        raise ConfigError(
            f"context key '{CONTEXT_ROOT}.region' is {region!r}, where AWS HealthImaging is not available: "
            f"use one of {', '.join(HEALTHIMAGING_REGIONS)}"
        )

    net = _Reader(document, "network")
    network = NetworkConfig(
        cidr=_cidr(net.string("cidr"), f"{CONTEXT_ROOT}.network.cidr"),
        max_azs=net.integer("maxAzs", minimum=2, maximum=6),
        nat_gateways=net.integer("natGateways", minimum=0, maximum=6),
        flow_log_retention_days=net.retention_days("flowLogRetentionDays"),
    )
    if network.nat_gateways > network.max_azs:
        raise ConfigError(
            f"context key '{CONTEXT_ROOT}.network.natGateways' ({network.nat_gateways}) must be <= "
            f"'{CONTEXT_ROOT}.network.maxAzs' ({network.max_azs}): one NAT gateway per AZ at most"
        )

    dat = _Reader(document, "data")
    data = DataConfig(
        noncurrent_version_expiration_days=dat.integer("noncurrentVersionExpirationDays", minimum=1),
        infrequent_access_transition_days=dat.integer("infrequentAccessTransitionDays", minimum=30),
        inference_output_expiration_days=dat.integer("inferenceOutputExpirationDays", minimum=1),
        access_log_expiration_days=dat.integer("accessLogExpirationDays", minimum=90),
    )

    srv = _Reader(document, "serving")
    async_min, async_max = srv.capacity_range("asyncMinInstances", "asyncMaxInstances", minimum=0)
    mme_min, mme_max = srv.capacity_range("multiModelMinInstances", "multiModelMaxInstances", minimum=1)
    serving = ServingConfig(
        async_instance_type=srv.instance_type("asyncInstanceType"),
        async_min_instances=async_min,
        async_max_instances=async_max,
        max_concurrent_invocations_per_instance=srv.integer("maxConcurrentInvocationsPerInstance", minimum=1),
        multi_model_enabled=srv.boolean("multiModelEnabled"),
        multi_model_instance_type=srv.instance_type("multiModelInstanceType"),
        multi_model_min_instances=mme_min,
        multi_model_max_instances=mme_max,
        model_data_key=_model_data_key(srv.string("modelDataKey")),
        async_backlog_per_instance_target=srv.integer("asyncBacklogPerInstanceTarget", minimum=1),
        import_seg_back=srv.boolean("importSegBack"),
    )

    img = _Reader(document, "images")
    images = ImagesConfig(
        keep_images=img.integer("keepImages", minimum=1, maximum=1000),
        log_retention_days=img.retention_days("logRetentionDays"),
        source=_image_source(document),
    )

    trn = _Reader(document, "training")
    training = TrainingConfig(
        instance_type=trn.instance_type("instanceType"),
        instance_count=trn.integer("instanceCount", minimum=1, maximum=32),
        use_spot=trn.boolean("useSpot"),
        # SageMaker caps a training job's MaxRuntimeInSeconds at 28 days.
        max_runtime_hours=trn.integer("maxRuntimeHours", minimum=1, maximum=28 * 24),
        **_approval_settings(trn),
    )

    emails = document.get("notificationEmails", [])
    if not isinstance(emails, list) or not all(isinstance(e, str) and _EMAIL.match(e) for e in emails):
        raise ConfigError(
            f"context key '{CONTEXT_ROOT}.notificationEmails' must be a list of e-mail addresses, got {emails!r}"
        )

    return PlatformConfig(
        project_name=project_name,
        stage=stage,
        account=account or None,
        region=region,
        network=network,
        data=data,
        serving=serving,
        training=training,
        images=images,
        notification_emails=tuple(emails),
        monitoring=_monitoring(document),
        edge=_edge(document),
    )


def _monitoring(document: Mapping[str, Any]) -> MonitoringConfig:
    mon = _Reader(document, "monitoring")
    return MonitoringConfig(
        backlog_size_threshold=mon.integer("backlogSizeThreshold", minimum=1),
        # Async requests live at most 6 hours in the queue (InvokeEndpointAsync RequestTTLSeconds <= 21600).
        backlog_age_minutes=mon.integer("backlogAgeMinutes", minimum=1, maximum=360),
        # An async invocation runs at most one hour (InvocationTimeoutSeconds <= 3600).
        model_latency_seconds=mon.integer("modelLatencySeconds", minimum=1, maximum=3600),
        error_threshold=mon.integer("errorThreshold", minimum=1),
    )


_SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")
_ARTIFACT_PREFIX = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]*/$")
_THING_GROUP_ARN = re.compile(r"^arn:aws[a-z-]*:iot:[a-z0-9-]+:\d{12}:thinggroup/[A-Za-z0-9:_-]{1,128}$")


def _edge(document: Mapping[str, Any]) -> EdgeConfig:
    edg = _Reader(document, "edge")
    # `-c platform.edge.componentVersion=1.0` arrives as the number 1.0: judge it as the text the user typed.
    version = str(edg._get("componentVersion"))
    if not _SEMVER.match(version):
        raise ConfigError(
            f"context key '{CONTEXT_ROOT}.edge.componentVersion' must be a semantic version MAJOR.MINOR.PATCH "
            f"such as '1.0.0' (Greengrass component versions), got {version!r}"
        )
    prefix = edg.string("artifactPrefix")
    if not _ARTIFACT_PREFIX.match(prefix) or "//" in prefix:
        raise ConfigError(
            f"context key '{CONTEXT_ROOT}.edge.artifactPrefix' must be an S3 key prefix ending in '/' without a "
            f"leading '/', such as 'edge/spleen/' (devices may read only below it), got {prefix!r}"
        )
    group = edg._get("thingGroupArn")
    if not isinstance(group, str) or (group and not _THING_GROUP_ARN.match(group)):
        raise ConfigError(
            f"context key '{CONTEXT_ROOT}.edge.thingGroupArn' must be \"\" (publish the component, deploy nothing) or "
            f"an IoT thing group ARN 'arn:<partition>:iot:<region>:<account>:thinggroup/<name>', got {group!r}"
        )
    enabled = edg.boolean("enabled")
    if group and not enabled:
        raise ConfigError(
            f"context key '{CONTEXT_ROOT}.edge.thingGroupArn' is set but '{CONTEXT_ROOT}.edge.enabled' is false: "
            "enable the edge stack or clear the thing group"
        )
    return EdgeConfig(
        enabled=enabled,
        component_version=version,
        artifact_prefix=prefix,
        # Unprivileged ports only: the component runs as the Greengrass user, not root.
        port=edg.integer("port", minimum=1024, maximum=65535),
        threads=edg.integer("threads", minimum=1, maximum=64),
        queue=edg.integer("queue", minimum=0, maximum=64),
        max_request_mb=edg.integer("maxRequestMb", minimum=1, maximum=4096),
        thing_group_arn=group or None,
    )


# --- Release pipeline (`-c pipeline=true`) -------------------------------------------------------------------
# The pipeline reads the section of the default stage's document; each deployed stage's account and region
# come from that stage's own configuration (build_config with stage=<name>), so they are written in one place.
PIPELINE_CONTEXT_KEY = "pipeline"
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")


@dataclass(frozen=True)
class PipelineConfig:
    # Where the pipeline stack itself lives; None: the account of the credentials that deploy it.
    account: str | None
    region: str
    # Stages deployed in order; a manual approval precedes every stage after the first.
    stages: tuple[str, ...]
    log_retention_days: int


def pipeline_enabled(context: Mapping[str, Any]) -> bool:
    """``-c pipeline=true`` synthesizes the release pipeline instead of one stage's stacks."""
    raw = _parse_cli_value(context.get(PIPELINE_CONTEXT_KEY, False))
    if not isinstance(raw, bool):
        raise ConfigError(f"context key '{PIPELINE_CONTEXT_KEY}' must be true or false, got {raw!r}")
    return raw


def build_pipeline_config(context: Mapping[str, Any]) -> PipelineConfig:
    """Validate the ``platform.pipeline`` section and every stage it names (each must build on its own)."""
    document = resolve_document(context)
    section = _Reader(document, "pipeline")
    key = f"{CONTEXT_ROOT}.pipeline"
    account = section._get("account")
    if not isinstance(account, str) or (account and not _ACCOUNT.match(account)):
        raise ConfigError(
            f"context key '{key}.account' must be a 12-digit AWS account ID or \"\" (the account of the deploying "
            f"credentials), got {account!r}"
        )
    region = section.string("region")
    if not _REGION.match(region):
        raise ConfigError(f"context key '{key}.region' must be an AWS region name such as 'us-east-1', got {region!r}")
    stages = section._get("stages")
    defined = sorted(context[CONTEXT_ROOT].get("stages", {}))
    if (
        not isinstance(stages, list)
        or not stages
        or len(set(stages)) != len(stages)
        or not all(isinstance(s, str) and s in defined for s in stages)
    ):
        raise ConfigError(
            f"context key '{key}.stages' must be a non-empty list of distinct stages defined under "
            f"'{CONTEXT_ROOT}.stages' ({defined}), in deployment order, got {stages!r}"
        )
    for stage in stages:
        build_config({**context, STAGE_CONTEXT_KEY: stage})
    return PipelineConfig(
        account=account or None,
        region=region,
        stages=tuple(stages),
        log_retention_days=section.retention_days("logRetentionDays"),
    )
