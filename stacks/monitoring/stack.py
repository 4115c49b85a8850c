"""Monitoring stack: one alarm per failure signal of the platform, one notification topic, one dashboard.

Every alarm notifies ``notification_topic`` (KMS-encrypted, e-mail subscriptions from ``notificationEmails``).
Missing data is "not breaching" throughout: the async endpoint scales to zero and then emits nothing, and a
quiet queue or rule publishes no datapoints; silence is health here, not an outage.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aws_cdk import CfnOutput, Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from stacks.backfill.runtime.backfill_metrics import NAMESPACE as BACKFILL_NAMESPACE
from stacks.components.keys import allow_service, rotating_key
from stacks.config import PlatformConfig
from stacks.props import ImageBuild
from stacks.serving.metrics import endpoint_metric

EVENTS_NAMESPACE = "AWS/Events"
PERIOD = Duration.minutes(5)
# ModelLatency is reported in microseconds; ApproximateAgeOfOldestRequest in seconds.
MICROSECONDS_PER_SECOND = 1_000_000
# Alarm IDs of the multi-model endpoint's variant alarms start with this (MultiModelInvocation5XXErrors, ...).
MULTI_MODEL_ID_PREFIX = "MultiModel"


@dataclass(frozen=True)
class AlarmSpec:
    """One alarm: what is measured, when it fires, and what the reader of the e-mail should do."""

    id_: str
    metric: cloudwatch.IMetric
    threshold: float
    description: str


def sagemaker_metric(name: str, statistic: str, endpoint_name: str) -> cloudwatch.Metric:
    # Each SageMaker metric with the dimensions it is published under (per endpoint or per variant).
    return endpoint_metric(name, endpoint_name=endpoint_name, statistic=statistic, period=PERIOD)


def variant_specs(
    config: PlatformConfig, *, endpoint_name: str, rejected_because: str, id_prefix: str = ""
) -> list[AlarmSpec]:
    """The alarms every SageMaker endpoint variant needs: 4xx, 5xx (per variant, like all common endpoint
    metrics) and average model latency, with monitoring.* thresholds; ``id_prefix`` tells endpoints apart."""
    mon = config.monitoring
    return [
        AlarmSpec(
            f"{id_prefix}Invocation4XXErrors",
            sagemaker_metric("Invocation4XXErrors", "Sum", endpoint_name),
            mon.error_threshold,
            f"The model at {endpoint_name} rejected requests (4xx): {rejected_because}; read the endpoint's log",
        ),
        AlarmSpec(
            f"{id_prefix}Invocation5XXErrors",
            sagemaker_metric("Invocation5XXErrors", "Sum", endpoint_name),
            mon.error_threshold,
            f"The model at {endpoint_name} failed requests (5xx): read the endpoint's CloudWatch log",
        ),
        AlarmSpec(
            f"{id_prefix}ModelLatency",
            sagemaker_metric("ModelLatency", "Average", endpoint_name),
            mon.model_latency_seconds * MICROSECONDS_PER_SECOND,
            f"Segmentations take over {mon.model_latency_seconds} s on average at {endpoint_name}: check the "
            "instance type (GPU) and the size of incoming series",
        ),
    ]


class MonitoringStack(Stack):
    """``notification_topic``, ``alarms`` (by construct ID) and ``dashboard`` are public.

    What it watches: the async endpoint ``endpoint_name`` and the multi-model one (``multi_model_endpoint_name``,
    None when disabled), the rule matching failed imports, the stage's own image build (None in the release
    pipeline, which watches its BuildImages step), the inference functions, and ``failure_queues``: every queue
    whose messages are failures (dead-letter queues, the inference failure queue). A stack that adds one passes it
    here in build_platform, and it gets an alarm and a graph line.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        config: PlatformConfig,
        endpoint_name: str,
        multi_model_endpoint_name: str | None,
        import_failed_rule: events.IRule,
        image_build: ImageBuild | None,
        failure_queues: Mapping[str, sqs.IQueue],
        inference_functions: Sequence[lambda_.IFunction],
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, id_, **kwargs)
        self._prefix = config.prefix
        key = rotating_key(
            self,
            "NotificationKey",
            alias=f"alias/{config.prefix}/monitoring",
            description="Encrypts the platform's alarm notifications (they name endpoints, queues and rules)",
        )
        # CloudWatch encrypts with the key when an alarm of this account publishes to the topic.
        allow_service(
            key, "cloudwatch.amazonaws.com", ["kms:Decrypt", "kms:GenerateDataKey*"],
            sid="AllowCloudWatchAlarmsOfThisAccount",
        )
        self.notification_topic = sns.Topic(
            self,
            "Notifications",
            topic_name=f"{config.prefix}-alarms",
            display_name=f"{config.prefix} platform alarms",
            master_key=key,
            enforce_ssl=True,
        )
        for email in config.notification_emails:
            self.notification_topic.add_subscription(subscriptions.EmailSubscription(email))

        endpoint_specs = self._endpoint_specs(config, endpoint_name)
        # The real-time Triton endpoint exists only with serving.multiModelEnabled; it has no queue to alarm on.
        multi_model_specs = [] if multi_model_endpoint_name is None else variant_specs(
            config,
            endpoint_name=multi_model_endpoint_name,
            rejected_because="a request names an archive that is not under the model prefix, or a malformed study",
            id_prefix=MULTI_MODEL_ID_PREFIX,
        )
        import_spec = AlarmSpec(
            "ImportJobFailures",
            self._rule_metric(import_failed_rule),
            1,
            "A HealthImaging import job of the platform's data store failed: read the job's failure.ndjson in the "
            "import-output bucket (the import alarm topic has the event)",
        )
        if not failure_queues:
            raise ValueError("failure_queues is empty: pass every dead-letter queue of the platform")
        queue_specs = [
            AlarmSpec(
                f"{name}Depth",
                queue.metric_approximate_number_of_messages_visible(period=PERIOD, statistic="Maximum"),
                1,
                f"Messages are waiting in {name} (an event or inference that failed after its retries): read them, "
                "fix the cause, then redrive or delete them",
            )
            for name, queue in failure_queues.items()
        ]
        # The container-images stack's own build exists only outside the release pipeline, which watches its
        # BuildImages step.
        build_specs = [] if image_build is None else [
            AlarmSpec(
                "ImagePipelineFailures",
                self._rule_metric(image_build.pipeline_failed_rule),
                1,
                "An execution of the image pipeline failed: open it in CodePipeline and read the failed action",
            ),
            *(
                AlarmSpec(
                    f"{project.node.id}Failures",
                    project.metric_failed_builds(period=PERIOD, statistic="Sum"),
                    1,
                    f"A {project.node.id} build failed: read its log in the build log group",
                )
                for project in image_build.projects
            ),
        ]
        self.alarms = {
            spec.id_: self._alarm(spec)
            for spec in (*endpoint_specs, *multi_model_specs, import_spec, *queue_specs, *build_specs)
        }
        self.dashboard = self._dashboard(
            endpoint_specs=endpoint_specs, multi_model_specs=multi_model_specs,
            multi_model_endpoint_name=multi_model_endpoint_name,
            import_spec=import_spec, queue_specs=queue_specs, build_specs=build_specs,
            functions=list(inference_functions),
        )
        CfnOutput(self, "NotificationTopicArn", value=self.notification_topic.topic_arn)
        CfnOutput(self, "DashboardName", value=self.dashboard.dashboard_name)

    def _endpoint_specs(self, config: PlatformConfig, endpoint_name: str) -> list[AlarmSpec]:
        mon = config.monitoring
        return [
            AlarmSpec(
                "BacklogSize",
                sagemaker_metric("ApproximateBacklogSize", "Maximum", endpoint_name),
                mon.backlog_size_threshold,
                f"{mon.backlog_size_threshold} or more requests are queued at {endpoint_name}: raise "
                "serving.asyncMaxInstances or check that instances start (HasBacklogWithoutCapacity)",
            ),
            AlarmSpec(
                "BacklogAge",
                sagemaker_metric("ApproximateAgeOfOldestRequest", "Maximum", endpoint_name),
                mon.backlog_age_minutes * 60,
                f"A request has waited {mon.backlog_age_minutes} minutes at {endpoint_name}: the endpoint is not "
                "draining its queue; check its instance count and logs",
            ),
            AlarmSpec(
                "InvocationFailures",
                # Published per variant, like the invocation metrics: EndpointName alone would watch nothing.
                sagemaker_metric("InvocationFailures", "Sum", endpoint_name),
                mon.error_threshold,
                f"Async inferences failed at {endpoint_name}: the failure notifications are in the inference "
                "failure queue and the error files under failures/ in the inference bucket",
            ),
            *variant_specs(
                config,
                endpoint_name=endpoint_name,
                rejected_because="a request names a missing image set or an unsupported series",
            ),
        ]

    @staticmethod
    def _rule_metric(rule: events.IRule) -> cloudwatch.Metric:
        # TriggeredRules counts the events a rule matched; these rules match failures only.
        return cloudwatch.Metric(
            namespace=EVENTS_NAMESPACE,
            metric_name="TriggeredRules",
            dimensions_map={"RuleName": rule.rule_name},
            statistic="Sum",
            period=PERIOD,
        )

    def _alarm(self, spec: AlarmSpec) -> cloudwatch.Alarm:
        alarm = cloudwatch.Alarm(
            self,
            spec.id_,
            alarm_name=f"{self._prefix}-{spec.id_}",
            alarm_description=spec.description,
            metric=spec.metric,
            threshold=spec.threshold,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            evaluation_periods=1,
            datapoints_to_alarm=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        action = cloudwatch_actions.SnsAction(self.notification_topic)
        alarm.add_alarm_action(action)
        # Recovery is news too: whoever got the alarm learns that it cleared.
        alarm.add_ok_action(action)
        return alarm

    def _dashboard(
        self,
        *,
        endpoint_specs: list[AlarmSpec],
        multi_model_specs: list[AlarmSpec],
        multi_model_endpoint_name: str | None,
        import_spec: AlarmSpec,
        queue_specs: list[AlarmSpec],
        build_specs: list[AlarmSpec],
        functions: list[lambda_.IFunction],
    ) -> cloudwatch.Dashboard:
        def graph(
            title: str, specs: list[AlarmSpec], *, unalarmed: tuple[cloudwatch.IMetric, ...] = ()
        ) -> cloudwatch.GraphWidget:
            # One alarmed metric per graph: draw its alarm threshold too (several would need several lines).
            annotations = [cloudwatch.HorizontalAnnotation(value=specs[0].threshold, label="alarm")]
            return cloudwatch.GraphWidget(
                title=title,
                left=[*(spec.metric for spec in specs), *unalarmed],
                width=12,
                height=6,
                left_annotations=annotations if len(specs) == 1 else None,
            )

        by_id = {spec.id_: spec for spec in endpoint_specs}
        dashboard = cloudwatch.Dashboard(self, "Dashboard", dashboard_name=f"{self._prefix}-operations")
        dashboard.add_widgets(
            cloudwatch.AlarmStatusWidget(title="Platform alarms", alarms=list(self.alarms.values()), width=24)
        )
        dashboard.add_widgets(
            graph("Async backlog (requests)", [by_id["BacklogSize"]]),
            graph("Oldest queued request (s)", [by_id["BacklogAge"]]),
        )
        dashboard.add_widgets(
            graph("Invocation failures and errors", [by_id[i] for i in ("InvocationFailures", "Invocation4XXErrors",
                                                                         "Invocation5XXErrors")]),
            graph("Model latency (µs)", [by_id["ModelLatency"]]),
        )
        if multi_model_endpoint_name is not None:
            mme = {spec.id_.removeprefix(MULTI_MODEL_ID_PREFIX): spec for spec in multi_model_specs}
            # How long requests wait for SageMaker to load their archive: graphed, not alarmed, since the first
            # request for each archive (and each after an eviction) always waits; read it beside the latency.
            loading_wait = sagemaker_metric("ModelLoadingWaitTime", "Average", multi_model_endpoint_name)
            dashboard.add_widgets(
                graph("Multi-model endpoint errors", [mme["Invocation4XXErrors"], mme["Invocation5XXErrors"]]),
                graph("Multi-model latency and model loading wait (µs)", [mme["ModelLatency"]],
                      unalarmed=(loading_wait,)),
            )
        dashboard.add_widgets(
            graph("Dead-letter and failure queues (messages)", queue_specs),
            graph("Import job failures", [import_spec]),
        )
        dashboard.add_widgets(backfill_progress())
        dashboard.add_widgets(
            *([graph("Image pipeline and build failures", build_specs)] if build_specs else []),
            cloudwatch.GraphWidget(
                title="Inference function errors",
                left=[f.metric_errors(period=PERIOD) for f in functions],
                width=12,
                height=6,
            ),
        )
        return dashboard


def backfill_progress() -> cloudwatch.GraphWidget:
    """The backfill's progress (stacks/backfill/runtime/backfill_metrics.py): one line per metric and model version,
    found with a SEARCH expression, since the versions a backfill will run are not known at synth. Pending and
    Finished are what a run's listing found still to do and already done; Submitted and Failed add up per batch."""
    lines = []
    for metric, statistic in (("Pending", "Maximum"), ("Finished", "Maximum"), ("Submitted", "Sum"), ("Failed", "Sum")):
        lines.append(cloudwatch.MathExpression(
            expression=f"SEARCH('{{{BACKFILL_NAMESPACE},ModelName,ModelVersion}} MetricName=\"{metric}\"', "
                       f"'{statistic}', 300)",
            label=metric, period=Duration.minutes(5), using_metrics={},
        ))  # fmt: skip
    return cloudwatch.GraphWidget(title="Backfill progress (image sets)", left=lines, width=24, height=6)
