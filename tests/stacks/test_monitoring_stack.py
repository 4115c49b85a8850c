"""Monitoring stack: an alarm per failure signal, all to one encrypted topic, thresholds from config, one dashboard."""

from __future__ import annotations

from typing import Any

import pytest

from stacks.monitoring.stack import MonitoringStack
from tests.stacks.assembly import INFERENCE_OVERRIDES, MME_NAME, MULTI_MODEL_OVERRIDES, Assembly, output_name
from tests.stacks.scaffold import Scaffold, alone

STACK = "Monitoring"


def build(scaffold: Scaffold, *, own_image_build: bool = True) -> None:
    scaffold.add(
        MonitoringStack,
        STACK,
        endpoint_name=scaffold.endpoint.name,
        multi_model_endpoint_name=scaffold.multi_model_endpoint_name,
        import_failed_rule=scaffold.import_failed_rule,
        image_build=scaffold.image_build if own_image_build else None,
        failure_queues=scaffold.failure_queues,
        inference_functions=scaffold.inference_functions,
    )


assembly = alone(build)
import_assembly = alone(build, INFERENCE_OVERRIDES)  # thresholds changed and an e-mail subscriber
mme_assembly = alone(build, MULTI_MODEL_OVERRIDES)
# A stage of the release pipeline: its images are built by the pipeline's own step, which it watches itself.
pipeline_stage_assembly = alone(lambda scaffold: build(scaffold, own_image_build=False))
ENDPOINT = {"Name": "EndpointName", "Value": "monai-imaging-dev-spleen-async"}
VARIANT = {"Name": "VariantName", "Value": "AllTraffic"}


def alarms(assembly: Assembly) -> dict[str, dict[str, Any]]:
    """Alarms by the name the platform gives them, without the "<project>-<stage>-" prefix."""
    found = assembly.resources(STACK, "AWS::CloudWatch::Alarm").values()
    return {a["Properties"]["AlarmName"].removeprefix("monai-imaging-dev-"): a["Properties"] for a in found}


def topic_id(assembly: Assembly) -> str:
    (logical_id,) = assembly.resources(STACK, "AWS::SNS::Topic")
    return logical_id


# (alarm, namespace, metric, statistic, dimensions or the stack output the single dimension reads)
EXPECTED_ALARMS = [
    ("BacklogSize", "AWS/SageMaker", "ApproximateBacklogSize", "Maximum", [ENDPOINT]),
    ("BacklogAge", "AWS/SageMaker", "ApproximateAgeOfOldestRequest", "Maximum", [ENDPOINT]),
    # Published per variant (stacks/serving/metrics.py): EndpointName alone would watch a metric nobody writes.
    ("InvocationFailures", "AWS/SageMaker", "InvocationFailures", "Sum", [ENDPOINT, VARIANT]),
    # The common endpoint metrics are published per variant.
    ("Invocation4XXErrors", "AWS/SageMaker", "Invocation4XXErrors", "Sum", [ENDPOINT, VARIANT]),
    ("Invocation5XXErrors", "AWS/SageMaker", "Invocation5XXErrors", "Sum", [ENDPOINT, VARIANT]),
    ("ModelLatency", "AWS/SageMaker", "ModelLatency", "Average", [ENDPOINT, VARIANT]),
    ("ImportJobFailures", "AWS/Events", "TriggeredRules", "Sum", "ImportJobFailedRule"),
    ("ImagingDeadLettersDepth", "AWS/SQS", "ApproximateNumberOfMessagesVisible", "Maximum", "DeadLetterQueue"),
    ("ApprovalDeadLettersDepth", "AWS/SQS", "ApproximateNumberOfMessagesVisible", "Maximum", "DeadLetterQueue"),
    ("InferenceDeadLettersDepth", "AWS/SQS", "ApproximateNumberOfMessagesVisible", "Maximum", "DeadLetterQueue"),
    ("InferenceFailuresDepth", "AWS/SQS", "ApproximateNumberOfMessagesVisible", "Maximum", "FailureQueue"),
    ("ImagePipelineFailures", "AWS/Events", "TriggeredRules", "Sum", "PipelineFailed"),
    ("BuildImagesFailures", "AWS/CodeBuild", "FailedBuilds", "Sum", "BuildImages"),
    ("RecordImageUrisFailures", "AWS/CodeBuild", "FailedBuilds", "Sum", "RecordImageUris"),
]


def test_there_is_one_alarm_per_failure_signal_and_no_other(assembly: Assembly) -> None:
    assert sorted(alarms(assembly)) == sorted(name for name, *_ in EXPECTED_ALARMS)


@pytest.mark.parametrize(("name", "namespace", "metric", "statistic", "dimensions"), EXPECTED_ALARMS,
                         ids=[row[0] for row in EXPECTED_ALARMS])
def test_each_alarm_watches_its_metric(
    assembly: Assembly, name: str, namespace: str, metric: str, statistic: str, dimensions: Any
) -> None:
    alarm = alarms(assembly)[name]
    assert (alarm["Namespace"], alarm["MetricName"], alarm["Statistic"]) == (namespace, metric, statistic)
    if isinstance(dimensions, list):
        assert alarm["Dimensions"] == dimensions
    else:
        (dimension,) = alarm["Dimensions"]
        assert dimensions in output_name(dimension["Value"])


def test_without_an_image_build_of_its_own_there_are_no_build_alarms(pipeline_stage_assembly: Assembly) -> None:
    builds = {"ImagePipelineFailures", "BuildImagesFailures", "RecordImageUrisFailures"}
    assert set(alarms(pipeline_stage_assembly)) == {name for name, *_ in EXPECTED_ALARMS} - builds
    assert '"AWS/CodeBuild"' not in dashboard_body(pipeline_stage_assembly)


def test_every_alarm_notifies_the_one_topic_and_stays_quiet_without_data(assembly: Assembly) -> None:
    topic = {"Ref": topic_id(assembly)}
    for name, alarm in alarms(assembly).items():
        assert alarm["AlarmActions"] == [topic], name
        assert alarm["OKActions"] == [topic], name
        # The endpoint at zero instances and an empty queue publish nothing: that is health, not an outage.
        assert alarm["TreatMissingData"] == "notBreaching", name
        assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold", name
        assert len(alarm["AlarmDescription"]) > 40, name  # tells the reader what to do


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        # cdk.json defaults: 20 queued, 60 minutes, 900 s (ModelLatency is in microseconds), 1 error
        ("assembly", {"BacklogSize": 20, "BacklogAge": 3600, "ModelLatency": 900_000_000, "InvocationFailures": 1,
                      "Invocation4XXErrors": 1, "Invocation5XXErrors": 1}),
        # monitoring.* overridden (INFERENCE_OVERRIDES): 5 queued, 15 minutes, 120 s, 3 errors
        ("import_assembly", {"BacklogSize": 5, "BacklogAge": 900, "ModelLatency": 120_000_000, "InvocationFailures": 3,
                            "Invocation4XXErrors": 3, "Invocation5XXErrors": 3}),
    ],
)
def test_thresholds_follow_the_configuration(
    request: pytest.FixtureRequest, fixture: str, expected: dict[str, int]
) -> None:
    by_name = alarms(request.getfixturevalue(fixture))
    assert {name: by_name[name]["Threshold"] for name in expected} == expected
    # Must not move: a single failed import, dead letter or build always alarms.
    assert {by_name[n]["Threshold"] for n in ("ImportJobFailures", "InferenceDeadLettersDepth", "BuildImagesFailures")} == {1}


def test_the_topic_is_encrypted_with_a_key_cloudwatch_of_this_account_may_use(assembly: Assembly) -> None:
    (topic,) = assembly.resources(STACK, "AWS::SNS::Topic").values()
    assert topic["Properties"]["TopicName"] == "monai-imaging-dev-alarms"
    assert topic["Properties"]["KmsMasterKeyId"]["Fn::GetAtt"][0].startswith("NotificationKey")
    (key,) = assembly.resources(STACK, "AWS::KMS::Key").values()
    assert key["Properties"]["EnableKeyRotation"] is True
    (cloudwatch,) = [s for s in key["Properties"]["KeyPolicy"]["Statement"]
                     if s["Principal"] == {"Service": "cloudwatch.amazonaws.com"}]
    assert sorted(cloudwatch["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey*"]
    assert cloudwatch["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}


@pytest.mark.parametrize(
    ("fixture", "emails"),
    [
        ("assembly", []),  # notificationEmails empty by default: no subscription to confirm
        ("import_assembly", ["imaging-ops@example.org"]),
    ],
)
def test_notification_emails_subscribe_to_the_topic(
    request: pytest.FixtureRequest, fixture: str, emails: list[str]
) -> None:
    assembly: Assembly = request.getfixturevalue(fixture)
    subscriptions = [s["Properties"] for s in assembly.resources(STACK, "AWS::SNS::Subscription").values()]
    assert [s["Endpoint"] for s in subscriptions] == emails
    for subscription in subscriptions:
        assert (subscription["Protocol"], subscription["TopicArn"]) == ("email", {"Ref": topic_id(assembly)})


def dashboard_body(assembly: Assembly) -> str:
    (dashboard,) = assembly.resources(STACK, "AWS::CloudWatch::Dashboard").values()
    assert dashboard["Properties"]["DashboardName"] == "monai-imaging-dev-operations"
    # The body is a Fn::Join of literal JSON fragments and references: its literal text is what widgets say.
    return "".join(part for part in dashboard["Properties"]["DashboardBody"]["Fn::Join"][1] if isinstance(part, str))


def test_one_dashboard_shows_every_alarmed_metric_and_the_alarm_status(assembly: Assembly) -> None:
    body = dashboard_body(assembly)
    for _, namespace, metric, *_ in EXPECTED_ALARMS:
        assert f'"{namespace}","{metric}"' in body, metric
    assert '"type":"alarm"' in body  # the status widget of all alarms
    # Backlog, age, failures and errors, latency, queues, imports, builds, inference function errors, backfill.
    assert body.count('"type":"metric"') == 9
    assert '"AWS/Lambda","Errors"' in body


def test_the_dashboard_shows_the_backfill_s_progress(assembly: Assembly) -> None:
    body = dashboard_body(assembly)
    assert "Backfill progress (image sets)" in body
    for metric in ("Pending", "Finished", "Submitted", "Failed"):
        # The namespace and metric names the backfill's functions publish (backfill_metrics.py).
        assert f"SEARCH('{{MonaiPlatform/Backfill,ModelName,ModelVersion}} MetricName=\\\"{metric}\\\"'" in body, metric


# --- The multi-model endpoint: alarmed and graphed only when it exists ---

MME_ALARMS = {
    # alarm: (metric, statistic, default threshold from monitoring.*)
    "MultiModelInvocation4XXErrors": ("Invocation4XXErrors", "Sum", 1),
    "MultiModelInvocation5XXErrors": ("Invocation5XXErrors", "Sum", 1),
    "MultiModelModelLatency": ("ModelLatency", "Average", 900_000_000),
}


@pytest.mark.parametrize(
    ("fixture", "present"),
    [
        ("assembly", False),  # must not: no multi-model endpoint by default, so nothing to watch
        ("mme_assembly", True),
    ],
)
def test_multi_model_alarms_exist_only_with_the_multi_model_endpoint(
    request: pytest.FixtureRequest, fixture: str, present: bool
) -> None:
    assembly: Assembly = request.getfixturevalue(fixture)
    by_name = alarms(assembly)
    expected = {name for name, *_ in EXPECTED_ALARMS} | (set(MME_ALARMS) if present else set())
    assert set(by_name) == expected  # the async endpoint's alarms stay either way
    watching_mme = {name for name, alarm in by_name.items()
                    if {"Name": "EndpointName", "Value": MME_NAME} in alarm.get("Dimensions", [])}
    assert watching_mme == (set(MME_ALARMS) if present else set())
    body = dashboard_body(assembly)
    assert ('"AWS/SageMaker","ModelLoadingWaitTime"' in body) is present
    assert (MME_NAME in body) is present
    assert body.count('"type":"metric"') == (11 if present else 9)  # one row of two graphs more


@pytest.mark.parametrize("name", sorted(MME_ALARMS))
def test_multi_model_alarms_watch_its_variant_and_notify_the_topic(mme_assembly: Assembly, name: str) -> None:
    metric, statistic, threshold = MME_ALARMS[name]
    alarm = alarms(mme_assembly)[name]
    assert (alarm["Namespace"], alarm["MetricName"], alarm["Statistic"]) == ("AWS/SageMaker", metric, statistic)
    assert alarm["Dimensions"] == [{"Name": "EndpointName", "Value": MME_NAME}, VARIANT]
    assert alarm["Threshold"] == threshold
    topic = {"Ref": topic_id(mme_assembly)}
    assert (alarm["AlarmActions"], alarm["OKActions"]) == ([topic], [topic])
    assert alarm["TreatMissingData"] == "notBreaching"
