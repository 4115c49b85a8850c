"""SageMaker endpoint metrics (namespace AWS/SageMaker) with the dimensions SageMaker publishes each one under.

CloudWatch treats every combination of dimensions as a separate metric (botocore's GetMetricStatistics
documentation of ``Dimensions``), so an alarm on ``InvocationFailures`` with ``EndpointName`` alone watches a metric
SageMaker never publishes: it stays OK while every request fails. Alarms on SageMaker metrics take their
dimensions from :func:`endpoint_dimensions`; tests/stacks/test_sagemaker_alarms.py holds every synthesized alarm
to the documented tables.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch

from stacks.serving.hosting import VARIANT_NAME

SAGEMAKER_NAMESPACE = "AWS/SageMaker"

# Published per endpoint: the asynchronous queue ("Alarms and logs for tracking metrics from asynchronous
# endpoints", the metrics "published with the EndpointName dimension"; HasBacklogWithoutCapacity: the
# scale-from-zero section of "Autoscale an asynchronous endpoint").
ENDPOINT_METRICS = frozenset({
    "ApproximateBacklogSize", "ApproximateBacklogSizePerInstance", "ApproximateAgeOfOldestRequest",
    "HasBacklogWithoutCapacity",
})
# Published per production variant: the invocation metrics of every endpoint, the asynchronous processing
# metrics ("published with the EndpointName and VariantName dimensions") and the multi-model loading metrics.
VARIANT_METRICS = frozenset({
    "Invocation4XXErrors", "Invocation5XXErrors", "ModelLatency", "OverheadLatency", "Invocations",
    "InvocationFailures", "InvocationsProcesssed", "RequestDownloadFailures", "ResponseUploadFailures",
    "NotificationFailures", "ExpiredRequests", "TimeInBacklog", "TotalProcessingTime",
    "ModelLoadingWaitTime", "ModelLoadingTime", "ModelDownloadingTime", "ModelUnloadingTime", "ModelCacheHit",
})


def endpoint_dimensions(metric_name: str, endpoint_name: str) -> dict[str, str]:
    """The dimensions ``metric_name`` of the endpoint's one variant is published with."""
    if metric_name in ENDPOINT_METRICS:
        return {"EndpointName": endpoint_name}
    if metric_name in VARIANT_METRICS:
        return {"EndpointName": endpoint_name, "VariantName": VARIANT_NAME}
    raise ValueError(
        f"unknown SageMaker metric {metric_name!r}: add it to ENDPOINT_METRICS or VARIANT_METRICS in "
        "stacks/serving/metrics.py with the dimensions its documentation page names"
    )


def endpoint_metric(metric_name: str, *, endpoint_name: str, statistic: str, period: Duration) -> cloudwatch.Metric:
    return cloudwatch.Metric(
        namespace=SAGEMAKER_NAMESPACE,
        metric_name=metric_name,
        dimensions_map=endpoint_dimensions(metric_name, endpoint_name),
        statistic=statistic,
        period=period,
    )
