"""Configuration: the embedded default builds, stages and -c keys override, and every bad value says what to do."""

from __future__ import annotations

from typing import Any

import pytest

from stacks.config import HEALTHIMAGING_REGIONS, ConfigError, build_config
from tests.stacks.assembly import cdk_json_context


def config_with(**overrides: Any) -> Any:
    return build_config({**cdk_json_context(), **overrides})


def test_default_config_builds_from_cdk_json() -> None:
    config = config_with()
    assert config.stage == "dev"
    assert config.region in HEALTHIMAGING_REGIONS
    assert config.network.nat_gateways == 0
    assert config.serving.async_min_instances == 0
    assert config.prefix == "monai-imaging-dev"


def test_stage_overrides_apply_over_defaults() -> None:
    dev, prod = config_with(stage="dev"), config_with(stage="prod")
    assert (dev.network.nat_gateways, prod.network.nat_gateways) == (0, 2)
    assert prod.serving.async_max_instances > dev.serving.async_max_instances
    # Keys a stage does not mention keep the default.
    assert prod.network.cidr == dev.network.cidr


def test_cli_key_overrides_stage_and_parses_json_values() -> None:
    config = config_with(stage="prod", **{"platform.network.natGateways": "1", "platform.serving.multiModelEnabled": "true"})
    assert config.network.nat_gateways == 1
    assert config.serving.multi_model_enabled is True


def test_cli_keys_whose_default_is_text_stay_text() -> None:
    # An account ID or a branch named "2024" looks like a number to JSON; the default's type says it is text.
    from stacks.config import build_pipeline_config

    config = config_with(**{"platform.account": "123456789012", "platform.images.source.branch": "2024"})
    assert config.account == "123456789012"
    assert config.images.source.branch == "2024"
    assert config_with().account is None  # "" is environment-agnostic
    pipeline = build_pipeline_config({**cdk_json_context(), "platform.pipeline.account": "111111111111"})
    assert pipeline.account == "111111111111"


CASES = [
    # (overrides, the exact fragment the message must carry)
    ({"platform.region": "us-east-2"}, "context key 'platform.region' is 'us-east-2', where AWS HealthImaging is not available: use one of us-east-1"),
    ({"platform.serving.asyncInstanceType": "g4dn.xlarge"}, "context key 'platform.serving.asyncInstanceType' must be a SageMaker instance type such as 'ml.m5.xlarge'"),
    ({"platform.training.instanceType": "m5.large"}, "context key 'platform.training.instanceType' must be a SageMaker instance type"),
    ({"platform.serving.asyncMinInstances": "3", "platform.serving.asyncMaxInstances": "2"}, "context key 'platform.serving.asyncMinInstances' (3) must be <= 'platform.serving.asyncMaxInstances' (2)"),
    ({"platform.serving.multiModelMinInstances": "0"}, "context key 'platform.serving.multiModelMinInstances' must be >= 1, got 0"),
    ({"platform.serving.asyncMaxInstances": "0"}, "context key 'platform.serving.asyncMaxInstances' must be >= 1, got 0"),
    ({"platform.projectName": "Monai_Imaging"}, "context key 'platform.projectName' must be 3-25 lowercase letters, digits or hyphens"),
    ({"platform.projectName": "a-project-name-far-too-long-for-aws"}, "context key 'platform.projectName' must be 3-25"),
    ({"stage": "qa"}, "context key 'stage' is 'qa', which cdk.json does not define: use one of ['dev', 'prod']"),
    ({"platform.account": "12345"}, "context key 'platform.account' must be a 12-digit AWS account ID or \"\""),
    ({"platform.network.natGateways": "3"}, "context key 'platform.network.natGateways' (3) must be <= 'platform.network.maxAzs' (2)"),
    ({"platform.network.cidr": "10.0.0.0/8"}, "context key 'platform.network.cidr' must be an IPv4 CIDR with a prefix between /16 and /24"),
    ({"platform.network.flowLogRetentionDays": "100"}, "context key 'platform.network.flowLogRetentionDays' must be a CloudWatch Logs retention period"),
    ({"platform.network.maxAzs": "two"}, "context key 'platform.network.maxAzs' must be an integer, got 'two'"),
    ({"platform.training.useSpot": "1"}, "context key 'platform.training.useSpot' must be true or false, got 1"),
    ({"platform.training.maxRuntimeHours": "1000"}, "context key 'platform.training.maxRuntimeHours' must be <= 672, got 1000"),
    # Training workflow: auto-approval and the approved model's deployment (the training and approval stacks).
    ({"platform.training.autoApproveMetric": "train:loss"}, "context key 'platform.training.autoApproveMetric' must be \"\" (every model waits for manual approval) or one of the trainer's validation metrics ['validation:dice', 'validation:auc', 'validation:accuracy'], got 'train:loss'"),
    ({"platform.training.autoApproveMetric": "validation:dice", "platform.training.autoApproveThreshold": "1.5"}, "context key 'platform.training.autoApproveThreshold' must be a number between 0 and 1 (validation metrics are fractions), got 1.5"),
    ({"platform.training.autoApproveThreshold": "true"}, "context key 'platform.training.autoApproveThreshold' must be a number between 0 and 1"),
    ({"platform.training.deploymentStrategy": "allAtOnce"}, "context key 'platform.training.deploymentStrategy' must be one of ['canary', 'linear', 'rolling'], got 'allAtOnce'"),
    ({"platform.data.accessLogExpirationDays": "30"}, "context key 'platform.data.accessLogExpirationDays' must be >= 90, got 30"),
    ({"platform.notificationEmails": '["not-an-address"]'}, "context key 'platform.notificationEmails' must be a list of e-mail addresses"),
    ({"platform.network.natgateways": "1"}, "context key 'platform.network.natgateways' is not a configuration key"),
    ({"platform.nosuch.key": "1"}, "context key 'platform.nosuch.key' names no configuration section"),
    # Image pipeline source and serving keys (the images and serving stacks).
    ({"platform.images.source.kind": "codecommit"}, "context key 'platform.images.source.kind' must be 's3' or 'codestar' (CodeCommit is closed to new customers), got 'codecommit'"),
    ({"platform.images.source.kind": "codestar"}, "context key 'platform.images.source.connectionArn' must be a CodeStar connection ARN"),
    ({"platform.images.source.kind": "codestar", "platform.images.source.connectionArn": "arn:aws:codeconnections:us-east-1:123456789012:connection/abc", "platform.images.source.repository": "monai-platform"}, "context key 'platform.images.source.repository' must be 'owner/name' of the Git repository when source.kind is 'codestar', got 'monai-platform'"),
    ({"platform.images.source.bucketKey": "source/platform.tar"}, "context key 'platform.images.source.bucketKey' must be an S3 key ending in '.zip' without a leading '/'"),
    ({"platform.images.source.branch": ""}, "context key 'platform.images.source.branch' must be a non-empty string"),
    ({"platform.images.keepImages": "0"}, "context key 'platform.images.keepImages' must be >= 1, got 0"),
    ({"platform.images.logRetentionDays": "10"}, "context key 'platform.images.logRetentionDays' must be a CloudWatch Logs retention period"),
    ({"platform.serving.modelDataKey": "/models/spleen/model.tar.gz"}, "context key 'platform.serving.modelDataKey' must be an S3 key 'prefix/.../model.tar.gz' in the model-artifacts bucket"),
    ({"platform.serving.modelDataKey": "model.tar.gz"}, "context key 'platform.serving.modelDataKey' must be an S3 key 'prefix/.../model.tar.gz'"),
    ({"platform.serving.asyncBacklogPerInstanceTarget": "0"}, "context key 'platform.serving.asyncBacklogPerInstanceTarget' must be >= 1, got 0"),
    # Event-driven inference and monitoring keys (the inference and monitoring stacks).
    ({"platform.serving.importSegBack": "yes"}, "context key 'platform.serving.importSegBack' must be true or false, got 'yes'"),
    ({"platform.monitoring.backlogSizeThreshold": "0"}, "context key 'platform.monitoring.backlogSizeThreshold' must be >= 1, got 0"),
    ({"platform.monitoring.backlogAgeMinutes": "361"}, "context key 'platform.monitoring.backlogAgeMinutes' must be <= 360, got 361"),
    ({"platform.monitoring.modelLatencySeconds": "0"}, "context key 'platform.monitoring.modelLatencySeconds' must be >= 1, got 0"),
    ({"platform.monitoring.modelLatencySeconds": "3601"}, "context key 'platform.monitoring.modelLatencySeconds' must be <= 3600, got 3601"),
    ({"platform.monitoring.errorThreshold": "1.5"}, "context key 'platform.monitoring.errorThreshold' must be an integer, got 1.5"),
    # The backfill workflow (stacks/backfill, in the inference stack).
    ({"platform.backfill.backlogTarget": "0"}, "context key 'platform.backfill.backlogTarget' must be >= 1, got 0"),
    ({"platform.backfill.maxConcurrency": "10001"}, "context key 'platform.backfill.maxConcurrency' must be <= 10000, got 10001"),
    ({"platform.backfill.batchSize": "101"}, "context key 'platform.backfill.batchSize' must be <= 100, got 101"),
    ({"platform.backfill.toleratedFailurePercentage": "-1"}, "context key 'platform.backfill.toleratedFailurePercentage' must be >= 0, got -1"),
    ({"platform.backfill.backlogWaitSeconds": "5"}, "context key 'platform.backfill.backlogWaitSeconds' must be >= 10, got 5"),
    # Edge runner component (the edge stack).
    ({"platform.edge.componentVersion": "1.0"}, "context key 'platform.edge.componentVersion' must be a semantic version MAJOR.MINOR.PATCH such as '1.0.0'"),
    ({"platform.edge.artifactPrefix": "/edge/spleen/"}, "context key 'platform.edge.artifactPrefix' must be an S3 key prefix ending in '/' without a leading '/'"),
    ({"platform.edge.artifactPrefix": "edge/spleen"}, "context key 'platform.edge.artifactPrefix' must be an S3 key prefix ending in '/'"),
    ({"platform.edge.thingGroupArn": "clinic-a"}, "context key 'platform.edge.thingGroupArn' must be \"\" (publish the component, deploy nothing) or an IoT thing group ARN"),
    ({"platform.edge.enabled": "false", "platform.edge.thingGroupArn": "arn:aws:iot:us-east-1:123456789012:thinggroup/a"}, "context key 'platform.edge.thingGroupArn' is set but 'platform.edge.enabled' is false"),
    ({"platform.audit.organizationTrailArn": "org-audit"}, "context key 'platform.audit.organizationTrailArn' must be \"\" (the platform creates its own trail) or the ARN of an existing trail 'arn:<partition>:cloudtrail:<region>:<account>:trail/<name>', got 'org-audit'"),
    ({"platform.audit.managementEvents": "yes"}, "context key 'platform.audit.managementEvents' must be true or false, got 'yes'"),
    ({"platform.audit.logRetentionDays": "100"}, "context key 'platform.audit.logRetentionDays' must be a CloudWatch Logs retention period"),
    ({"platform.audit.logFileExpirationDays": "90"}, "context key 'platform.audit.logFileExpirationDays' must be >= 365, got 90"),
    ({"platform.edge.enabled": "no"}, "context key 'platform.edge.enabled' must be true or false, got 'no'"),
    ({"platform.edge.port": "80"}, "context key 'platform.edge.port' must be >= 1024, got 80"),
    ({"platform.edge.threads": "-1"}, "context key 'platform.edge.threads' must be >= 0, got -1"),
    # Threads of the async endpoint (model_code/core/threads.py): the product stays within the type's vCPUs.
    ({"platform.serving.workersPerInstance": "4", "platform.serving.threadsPerWorker": "2"}, "context keys 'platform.serving.workersPerInstance' x 'platform.serving.threadsPerWorker' (4 x 2) must be <= the 4 vCPUs of ml.g4dn.xlarge"),
    ({"platform.serving.asyncInstanceType": "ml.r5.xlarge"}, "context key 'platform.serving.asyncInstanceType' is 'ml.r5.xlarge', whose vCPUs stacks/components/instance_types.py does not list: add the type there, or set 'platform.serving.workersPerInstance' and 'platform.serving.threadsPerWorker' (both >= 1)"),
    ({"platform.serving.threadsPerWorker": "-1"}, "context key 'platform.serving.threadsPerWorker' must be >= 0, got -1"),
    ({"platform.edge.queue": "65"}, "context key 'platform.edge.queue' must be <= 64, got 65"),
    ({"platform.edge.maxRequestMb": "0"}, "context key 'platform.edge.maxRequestMb' must be >= 1, got 0"),
    # The viewer (the viewer stack): its host name and certificate are required once it is enabled.
    ({"platform.viewer.enabled": "true"}, "context key 'platform.viewer.domainName' is required when 'platform.viewer.enabled' is true"),
    ({"platform.viewer.enabled": "true", "platform.viewer.domainName": "viewer.example.org"}, "context key 'platform.viewer.certificateArn' is required when 'platform.viewer.enabled' is true: the viewer is served on your own host name with your ACM certificate (us-east-1), so CloudFront can enforce TLS 1.2"),
    ({"platform.viewer.domainName": "https://viewer.example.org/"}, "context key 'platform.viewer.domainName' must be \"\" or the viewer's host name such as 'viewer.imaging.example.org' (lowercase, no scheme or path)"),
    ({"platform.viewer.certificateArn": "arn:aws:acm:eu-west-1:123456789012:certificate/0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d"}, "context key 'platform.viewer.certificateArn' must be \"\" or the ARN of an ACM certificate for domainName in us-east-1"),
    ({"platform.viewer.signInDomainPrefix": "my-cognito-login"}, "context key 'platform.viewer.signInDomainPrefix' must be \"\" (use '<project>-<stage>-viewer') or 1-63 lowercase letters"),
    ({"platform.viewer.signInDomainPrefix": "-viewer"}, "context key 'platform.viewer.signInDomainPrefix' must be"),
    ({"platform.viewer.webAclArn": "arn:aws:wafv2:eu-west-1:123456789012:regional/webacl/a/0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d"}, "context key 'platform.viewer.webAclArn' must be \"\" (no web ACL) or the ARN of a CLOUDFRONT-scope AWS WAF web ACL"),
    ({"platform.viewer.allowedCountries": '["usa"]'}, "context key 'platform.viewer.allowedCountries' must be a list of ISO 3166-1 alpha-2 country codes"),
    ({"platform.viewer.enabled": "yes"}, "context key 'platform.viewer.enabled' must be true or false, got 'yes'"),
]


@pytest.mark.parametrize(("overrides", "message"), CASES, ids=[next(iter(c[0])) for c in CASES])
def test_invalid_values_raise_with_key_and_fix(overrides: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        config_with(**overrides)
    assert message in str(raised.value)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        # (serving keys, (workers, threads)) -- from stacks/components/instance_types.py's table
        ({}, (1, 4)),  # ml.g4dn.xlarge: one worker for its GPU, its 4 vCPUs as torch threads
        ({"asyncInstanceType": "ml.m5.large"}, (2, 1)),  # 2 vCPUs: a worker each, one thread
        ({"asyncInstanceType": "ml.m5.xlarge"}, (2, 2)),
        ({"asyncInstanceType": "ml.c5.9xlarge"}, (18, 2)),
        ({"asyncInstanceType": "ml.g5.12xlarge"}, (4, 12)),  # 4 GPUs, 48 vCPUs
        ({"asyncInstanceType": "ml.m5.xlarge", "workersPerInstance": "4"}, (4, 1)),  # the other one derived
        ({"asyncInstanceType": "ml.m5.xlarge", "threadsPerWorker": "4"}, (1, 4)),
        ({"asyncInstanceType": "ml.r5.xlarge", "workersPerInstance": "2", "threadsPerWorker": "2"}, (2, 2)),
    ],
)
def test_async_endpoint_threads(overrides: dict[str, str], expected: tuple[int, int]) -> None:
    plan = config_with(**{f"platform.serving.{key}": value for key, value in overrides.items()}).serving.async_thread_plan()
    assert (plan.workers, plan.threads) == expected


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({}, 1),  # ml.g4dn.xlarge: its one worker
        ({"asyncInstanceType": "ml.m5.xlarge"}, 2),  # two workers: two requests at once
        ({"asyncInstanceType": "ml.m5.xlarge", "workersPerInstance": "4"}, 4),
        ({"asyncInstanceType": "ml.m5.xlarge", "maxConcurrentInvocationsPerInstance": "3"}, 3),  # set: as set
    ],
)
def test_async_concurrent_invocations_follow_the_workers(overrides: dict[str, str], expected: int) -> None:
    serving = config_with(**{f"platform.serving.{key}": value for key, value in overrides.items()}).serving
    assert serving.async_concurrent_invocations() == expected


def test_missing_embedded_config_says_where_it_comes_from() -> None:
    with pytest.raises(ConfigError, match=r"'platform.defaults' is missing: run from the project root"):
        build_config({"stage": "dev"})


def test_missing_key_names_it() -> None:
    context = cdk_json_context()
    del context["platform"]["defaults"]["serving"]["asyncInstanceType"]
    with pytest.raises(ConfigError, match=r"'platform.serving.asyncInstanceType' is missing: add it to cdk.json"):
        build_config(context)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({}, (None, None, "canary")),  # embedded default: every model waits for a reviewer
        ({"platform.training.autoApproveMetric": "validation:dice", "platform.training.autoApproveThreshold": "0.85",
          "platform.training.deploymentStrategy": "rolling"}, ("validation:dice", 0.85, "rolling")),
    ],
)
def test_training_approval_settings(overrides: dict[str, str], expected: tuple[Any, ...]) -> None:
    training = config_with(**overrides).training
    assert (training.auto_approve_metric, training.auto_approve_threshold, training.deployment_strategy) == expected


PIPELINE_CASES = [
    # (overrides, the exact fragment the message must carry) -- the release pipeline's section
    ({"platform.pipeline.account": "12345"}, "context key 'platform.pipeline.account' must be a 12-digit AWS account ID or \"\""),
    ({"platform.pipeline.region": "useast1"}, "context key 'platform.pipeline.region' must be an AWS region name such as 'us-east-1', got 'useast1'"),
    ({"platform.pipeline.stages": '["dev", "qa"]'}, "context key 'platform.pipeline.stages' must be a non-empty list of distinct stages defined under 'platform.stages' (['dev', 'prod'])"),
    ({"platform.pipeline.stages": '["dev", "dev"]'}, "context key 'platform.pipeline.stages' must be a non-empty list of distinct stages"),
    ({"platform.pipeline.stages": "[]"}, "context key 'platform.pipeline.stages' must be a non-empty list"),
    ({"platform.pipeline.logRetentionDays": "10"}, "context key 'platform.pipeline.logRetentionDays' must be a CloudWatch Logs retention period"),
    # Every stage the pipeline deploys must build on its own: a bad key fails before any stack is made.
    ({"platform.region": "us-east-2"}, "context key 'platform.region' is 'us-east-2', where AWS HealthImaging is not available"),
]


@pytest.mark.parametrize(("overrides", "message"), PIPELINE_CASES, ids=[next(iter(c[0])) for c in PIPELINE_CASES])
def test_invalid_pipeline_values_raise_with_key_and_fix(overrides: dict[str, str], message: str) -> None:
    from stacks.config import build_pipeline_config

    with pytest.raises(ConfigError) as raised:
        build_pipeline_config({**cdk_json_context(), **overrides})
    assert message in str(raised.value)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({}, (False, 20, 60, 900, 1)),  # embedded default: SEGs stay in S3 until someone turns import on
        ({"platform.serving.importSegBack": "true", "platform.monitoring.backlogSizeThreshold": "5",
          "platform.monitoring.backlogAgeMinutes": "15", "platform.monitoring.modelLatencySeconds": "120",
          "platform.monitoring.errorThreshold": "3"}, (True, 5, 15, 120, 3)),
    ],
)
def test_inference_and_monitoring_settings(overrides: dict[str, str], expected: tuple[Any, ...]) -> None:
    config = config_with(**overrides)
    mon = config.monitoring
    assert (config.serving.import_seg_back, mon.backlog_size_threshold, mon.backlog_age_minutes,
            mon.model_latency_seconds, mon.error_threshold) == expected


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({}, (False, None, ())),  # embedded default: no viewer, and results carry no viewer link
        ({"platform.viewer.enabled": "true", "platform.viewer.domainName": "viewer.example.org",
          "platform.viewer.certificateArn": "arn:aws:acm:us-east-1:123456789012:certificate/0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d",
          "platform.viewer.allowedCountries": '["US"]'}, (True, "https://viewer.example.org", ("US",))),
        # A host name set while the viewer is off links nowhere: no stack serves it.
        ({"platform.viewer.domainName": "viewer.example.org"}, (False, None, ())),
    ],
)
def test_viewer_settings(overrides: dict[str, str], expected: tuple[Any, ...]) -> None:
    viewer = config_with(**overrides).viewer
    assert (viewer.enabled, viewer.url, viewer.allowed_countries) == expected


def test_audit_settings_default_to_an_own_trail_and_accept_an_organization_trail() -> None:
    own = config_with().audit
    assert (own.organization_trail_arn, own.management_events, own.log_retention_days, own.log_file_expiration_days) \
        == (None, True, 365, 2192)
    assert "the platform's trail" in own.coverage_claim("the platform's trail")
    arn = "arn:aws:cloudtrail:us-east-1:999999999999:trail/org-audit"
    organization = config_with(**{"platform.audit.organizationTrailArn": arn}).audit
    assert organization.organization_trail_arn == arn
    assert arn in organization.coverage_claim("the platform's trail")
