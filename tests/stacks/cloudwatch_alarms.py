"""A synthesized CloudWatch alarm evaluated against datapoints, the way CloudWatch evaluates a metric alarm.

moto stores metric data but never evaluates an alarm, and its GetMetricStatistics matches dimensions as a subset
(real CloudWatch treats every combination of dimensions as its own metric: botocore's documentation of
GetMetricStatistics ``Dimensions``), so it would hide the defect this module exists to find. What is modelled,
from the CloudWatch User Guide ("Using Amazon CloudWatch alarms", section "Evaluating an alarm"):

- the metric's identity is namespace + name + the exact set of dimensions;
- datapoints are aggregated per ``Period`` with ``Statistic``;
- of the last ``EvaluationPeriods`` periods, the alarm is ALARM when at least ``DatapointsToAlarm`` breach;
- a period without data counts as ``TreatMissingData`` says (notBreaching: good, breaching: bad, missing/ignore:
  skipped), and with no data at all the state is OK for notBreaching, INSUFFICIENT_DATA otherwise.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    "GreaterThanOrEqualToThreshold": operator.ge,
    "GreaterThanThreshold": operator.gt,
    "LessThanThreshold": operator.lt,
    "LessThanOrEqualToThreshold": operator.le,
}
STATISTICS: dict[str, Callable[[list[float]], float]] = {
    "Sum": sum,
    "Maximum": max,
    "Minimum": min,
    "Average": lambda values: sum(values) / len(values),
    "SampleCount": lambda values: float(len(values)),
}


@dataclass(frozen=True)
class Datapoint:
    """One value SageMaker (or any service) publishes: ``at`` in seconds from the start of the scenario."""

    namespace: str
    name: str
    dimensions: frozenset[tuple[str, str]]
    value: float
    at: float


def datapoint(namespace: str, name: str, dimensions: Mapping[str, str], value: float, at: float) -> Datapoint:
    return Datapoint(namespace, name, frozenset(dimensions.items()), value, at)


def watched_metric(alarm: Mapping[str, Any]) -> tuple[str, str, frozenset[tuple[str, str]]]:
    """(namespace, metric, dimensions) of a single-metric alarm's properties; dimension values must be strings."""
    dimensions = alarm.get("Dimensions", [])
    for dimension in dimensions:
        if not isinstance(dimension["Value"], str):
            raise ValueError(f"dimension {dimension['Name']} of {alarm.get('AlarmName')} is not resolved: "
                             f"{dimension['Value']!r}")
    return alarm["Namespace"], alarm["MetricName"], frozenset((d["Name"], d["Value"]) for d in dimensions)


def evaluate(alarm: Mapping[str, Any], points: Iterable[Datapoint], *, now: float) -> str:
    """The state (OK, ALARM, INSUFFICIENT_DATA) of the alarm with CloudFormation properties ``alarm`` at ``now``."""
    identity = watched_metric(alarm)
    period = float(alarm["Period"])
    periods = int(alarm["EvaluationPeriods"])
    needed = int(alarm.get("DatapointsToAlarm", periods))
    statistic = STATISTICS[alarm["Statistic"]]
    breaches = COMPARISONS[alarm["ComparisonOperator"]]
    threshold = float(alarm["Threshold"])
    missing = alarm.get("TreatMissingData", "missing")

    by_period: dict[int, list[float]] = {}
    for point in points:
        if (point.namespace, point.name, point.dimensions) == identity and point.at < now:
            by_period.setdefault(int(point.at // period), []).append(point.value)
    last = int(now // period) - 1  # the newest complete period
    window = range(last - periods + 1, last + 1)
    if not any(index in by_period for index in window):
        return "OK" if missing == "notBreaching" else "ALARM" if missing == "breaching" else "INSUFFICIENT_DATA"
    bad = 0
    for index in window:
        if index in by_period:
            bad += breaches(statistic(by_period[index]), threshold)
        elif missing == "breaching":
            bad += 1
    return "ALARM" if bad >= needed else "OK"
