"""Rehearsal: an approved model that cannot serve is rolled back by the approval stack's own alarms and config.

Two ways a new model fails, and what stops each (SageMaker Developer Guide pages named beside the data):

- it cannot load: the serving containers answer /ping with an error (issue 20's truthful health), so no instance
  of the new fleet passes the health check and SageMaker does not complete UpdateEndpoint ("Use your own inference
  code with hosting services", health checks): the endpoint stays on the old configuration, InService, with a
  FailureReason. That needs a new fleet with an instance: the deploy function gives a variant scaled to zero one.
- it loads but fails every request: SageMaker publishes InvocationFailures and Invocation5XXErrors for each, the
  rollback alarms fire while the canary bakes, and SageMaker shifts all traffic back ("Auto-Rollback Configuration
  and Monitoring").

The alarms and the function's environment come from the synthesized platform (the ``assembly`` fixture), the
SageMaker calls go through botocore's Stubber (validated against the service model), and the alarms are
evaluated against the datapoints SageMaker would publish (tests/stacks/cloudwatch_alarms.py).
"""

from __future__ import annotations

from typing import Any

import pytest
from botocore.stub import ANY

from stacks.approval.runtime import deploy_approved as runtime
from tests.stacks.approval_runtime.conftest import ARTIFACTS, Aws
from tests.stacks.approval_runtime.test_deploy_approved import (
    CURRENT_CONFIG,
    ENDPOINT,
    VARIANT,
    event,
    expect_current_config_and_model,
    expect_package,
    upload_trained,
)
from tests.stacks.assembly import Assembly
from tests.stacks.cloudwatch_alarms import Datapoint, datapoint, evaluate

SAGEMAKER = "AWS/SageMaker"
ENDPOINT_ONLY = frozenset({"EndpointName"})
PER_VARIANT = frozenset({"EndpointName", "VariantName"})
ASYNC_MONITOR = "https://docs.aws.amazon.com/sagemaker/latest/dg/async-inference-monitor.html"
INVOCATION_METRICS = "https://docs.aws.amazon.com/sagemaker/latest/dg/monitoring-cloudwatch.html"
ASYNC_AUTOSCALE = "https://docs.aws.amazon.com/sagemaker/latest/dg/async-inference-autoscale.html"
# The dimension sets SageMaker publishes each metric with, copied from the pages (the source beside each row).
DOCUMENTED_DIMENSIONS: dict[str, tuple[frozenset[str], str]] = {
    # "The following metrics are published with the EndpointName dimension"
    "ApproximateBacklogSize": (ENDPOINT_ONLY, ASYNC_MONITOR),
    "ApproximateBacklogSizePerInstance": (ENDPOINT_ONLY, ASYNC_MONITOR),
    "ApproximateAgeOfOldestRequest": (ENDPOINT_ONLY, ASYNC_MONITOR),
    # "The following metrics are published with the EndpointName and VariantName dimensions"
    "InvocationFailures": (PER_VARIANT, ASYNC_MONITOR),
    "InvocationsProcesssed": (PER_VARIANT, ASYNC_MONITOR),
    "RequestDownloadFailures": (PER_VARIANT, ASYNC_MONITOR),
    "ResponseUploadFailures": (PER_VARIANT, ASYNC_MONITOR),
    "NotificationFailures": (PER_VARIANT, ASYNC_MONITOR),
    # "Dimensions for Endpoint Invocation Metrics: EndpointName, VariantName" (async: "Common Endpoint Metrics")
    "Invocation4XXErrors": (PER_VARIANT, INVOCATION_METRICS),
    "Invocation5XXErrors": (PER_VARIANT, INVOCATION_METRICS),
    "ModelLatency": (PER_VARIANT, INVOCATION_METRICS),
    # The scale-from-zero policy's alarm in "Autoscale an asynchronous endpoint" names the endpoint only.
    "HasBacklogWithoutCapacity": (ENDPOINT_ONLY, ASYNC_AUTOSCALE),
}


def sagemaker_alarms(assembly: Assembly) -> dict[str, dict[str, Any]]:
    """Every alarm of the platform on a SageMaker metric, by alarm name (or logical ID when unnamed)."""
    found = {}
    for stack, logical_id, resource in assembly.all_resources():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::CloudWatch::Alarm" and props.get("Namespace") == SAGEMAKER:
            found[str(props.get("AlarmName", f"{stack}/{logical_id}"))] = props
    return found


def published_problem(alarm: dict[str, Any]) -> str | None:
    """Why the alarm watches a metric SageMaker never publishes, or None when it watches a published one."""
    metric = alarm["MetricName"]
    if metric not in DOCUMENTED_DIMENSIONS:
        return f"{metric} is not in DOCUMENTED_DIMENSIONS: add it with its page"
    expected, page = DOCUMENTED_DIMENSIONS[metric]
    given = frozenset(d["Name"] for d in alarm.get("Dimensions", []))
    return None if given == expected else f"{metric} is published with {sorted(expected)} ({page}), not {sorted(given)}"


@pytest.mark.parametrize("fixture", ["assembly", "mme_assembly"])
def test_every_sagemaker_alarm_watches_a_metric_sagemaker_publishes(
    request: pytest.FixtureRequest, fixture: str
) -> None:
    alarms = sagemaker_alarms(request.getfixturevalue(fixture))
    assert len(alarms) >= 8  # the rollback pair, monitoring's endpoint alarms, the wake-from-zero alarm
    problems = {name: problem for name, alarm in alarms.items() if (problem := published_problem(alarm))}
    assert problems == {}
    # Must not: the rollback alarm as it was (InvocationFailures on EndpointName alone) is refused.
    before = {"MetricName": "InvocationFailures", "Dimensions": [{"Name": "EndpointName", "Value": ENDPOINT}]}
    assert "published with ['EndpointName', 'VariantName']" in str(published_problem(before))


def published_for(outcomes: list[int], *, endpoint: str = ENDPOINT, start: float = 0.0) -> list[Datapoint]:
    """What SageMaker publishes for asynchronous requests processed one every 10 s, each ending in ``outcomes``'
    HTTP status (ASYNC_MONITOR's tables): the error metrics send 1 for a response of their class and 0 otherwise;
    InvocationFailures counts failed invocations; all of them per variant."""
    variant = {"EndpointName": endpoint, "VariantName": "AllTraffic"}
    points = []
    for index, status in enumerate(outcomes):
        at = start + 10.0 * index
        points += [
            datapoint(SAGEMAKER, "InvocationsProcesssed", variant, 1, at),
            datapoint(SAGEMAKER, "Invocation4XXErrors", variant, float(400 <= status < 500), at),
            datapoint(SAGEMAKER, "Invocation5XXErrors", variant, float(status >= 500), at),
        ]
        if status >= 400:
            points.append(datapoint(SAGEMAKER, "InvocationFailures", variant, 1, at))
    return points


def rollback_alarms(assembly: Assembly) -> dict[str, dict[str, Any]]:
    return {name: alarm for name, alarm in sagemaker_alarms(assembly).items() if "-deploy-" in name}


@pytest.mark.parametrize(
    ("outcomes", "expected"),
    [
        # Loads, then fails every request with the error JSON of issue 20 (500): both alarms fire.
        ([500] * 6, {"ALARM"}),
        # One failure among healthy answers is enough: the threshold is one failure a minute.
        ([200, 200, 500, 200, 200, 200], {"ALARM"}),
        # A healthy model: no rollback.
        ([200] * 6, {"OK"}),
        # Cannot load: /ping fails, no request is ever processed, nothing is published: the alarms stay OK, and
        # the failed health check is what keeps the old fleet (the deploy test below gives it an instance).
        ([], {"OK"}),
    ],
)
def test_the_rollback_alarms_fire_for_a_model_that_fails_requests(
    assembly: Assembly, outcomes: list[int], expected: set[str]
) -> None:
    alarms = rollback_alarms(assembly)
    assert sorted(alarms) == [f"{ENDPOINT}-deploy-invocationfailures", f"{ENDPOINT}-deploy-modelerrors"]
    points = published_for(outcomes)
    # Evaluated at the end of the minute after the requests: within the canary's first bake interval.
    states = {name: evaluate(alarm, points, now=120.0) for name, alarm in alarms.items()}
    assert set(states.values()) == expected, states
    assert runtime.WAIT_SECONDS > 120  # the canary is still baking when they fire


def test_the_old_rollback_alarm_would_have_stayed_ok_while_every_request_failed(assembly: Assembly) -> None:
    # Must-not twin of the dimension fix: the same failures, the alarm as it was before (EndpointName only).
    [current] = [a for name, a in rollback_alarms(assembly).items() if name.endswith("invocationfailures")]
    before = {**current, "Dimensions": [{"Name": "EndpointName", "Value": ENDPOINT}]}
    failing = published_for([500] * 6)
    assert evaluate(before, failing, now=120.0) == "OK"
    assert evaluate(current, failing, now=120.0) == "ALARM"


def synthesized_settings(assembly: Assembly) -> runtime.Settings:
    """The deploy function's settings from its synthesized environment (cross-stack values as test names)."""
    [function] = [
        r for _, logical_id, r in assembly.all_resources()
        if r["Type"] == "AWS::Lambda::Function" and logical_id.startswith("DeployApproved")
    ]
    environment = function["Properties"]["Environment"]["Variables"]
    resolved = {name: value if isinstance(value, str) else ARTIFACTS for name, value in environment.items()}
    assert resolved["ARTIFACTS_BUCKET"] == ARTIFACTS  # the one cross-stack value: the model-artifacts bucket
    return runtime.Settings.from_environment(resolved)


def expect_endpoint(aws: Aws, *, instances: int) -> None:
    aws.stubber.add_response(
        "describe_endpoint",
        {"EndpointName": ENDPOINT, "EndpointArn": f"arn:aws:sagemaker:us-east-1:123456789012:endpoint/{ENDPOINT}",
         "EndpointConfigName": CURRENT_CONFIG, "EndpointStatus": "InService",
         "ProductionVariants": [{"VariantName": "AllTraffic", "CurrentInstanceCount": instances,
                                 "DesiredInstanceCount": instances, "CurrentWeight": 1.0, "DesiredWeight": 1.0}],
         "CreationTime": "2026-11-20T00:00:00Z", "LastModifiedTime": "2026-11-20T00:00:00Z"},
        {"EndpointName": ENDPOINT},
    )


def expect_canary(aws: Aws, settings: runtime.Settings, *, instances: int) -> None:
    name = f"{ENDPOINT}-v3"
    aws.stubber.add_response("create_model", {"ModelArn": f"arn:aws:sagemaker:::model/{name}"}, {
        "ModelName": name, "PrimaryContainer": ANY, "ExecutionRoleArn": ANY,
        "EnableNetworkIsolation": False, "VpcConfig": ANY})
    aws.stubber.add_response(
        "create_endpoint_config",
        {"EndpointConfigArn": f"arn:aws:sagemaker:::endpoint-config/{name}"},
        # The new fleet's count is the config's (at least one), which the update uses when autoscaling holds zero.
        {"EndpointConfigName": name, "ProductionVariants": [{**VARIANT, "ModelName": name}],
         "AsyncInferenceConfig": ANY},
    )
    aws.stubber.add_response(
        "update_endpoint",
        {"EndpointArn": f"arn:aws:sagemaker:us-east-1:123456789012:endpoint/{ENDPOINT}"},
        {
            "EndpointName": ENDPOINT,
            "EndpointConfigName": name,
            # Zero instances: the config's count, so the new model must pass /ping before traffic moves.
            "RetainAllVariantProperties": instances > 0,
            "DeploymentConfig": {
                "BlueGreenUpdatePolicy": {
                    "TrafficRoutingConfiguration": {
                        "Type": "CANARY", "WaitIntervalInSeconds": runtime.WAIT_SECONDS,
                        "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": runtime.STEP_PERCENT},
                    },
                    "TerminationWaitInSeconds": runtime.TERMINATION_WAIT_SECONDS,
                    "MaximumExecutionTimeoutInSeconds": runtime.MAX_EXECUTION_SECONDS,
                },
                # Exactly the alarms the approval stack synthesizes, by name.
                "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": a} for a in settings.rollback_alarms]},
            },
        },
    )


@pytest.mark.parametrize("instances", [0, 1], ids=["scaled-to-zero", "one-instance"])
def test_the_deploy_function_starts_a_canary_guarded_by_the_synthesized_alarms(
    aws: Aws, assembly: Assembly, instances: int
) -> None:
    settings = synthesized_settings(assembly)
    assert set(settings.rollback_alarms) == set(rollback_alarms(assembly))  # the function names the stack's alarms
    assert settings.deployment_strategy == "canary"
    upload_trained(aws)
    expect_package(aws)
    expect_endpoint(aws, instances=instances)
    expect_current_config_and_model(aws)
    expect_canary(aws, settings, instances=instances)
    result = runtime.handle(event(), sagemaker=aws.sagemaker, s3=aws.s3, settings=settings)
    assert result["status"] == "UPDATING"
    assert result["scaledToZero"] == (["AllTraffic"] if instances == 0 else [])
