"""Idle cost of each stack, from scripts/idle_cost.py when it is there, else a count of billed resources."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from scripts.review.assembly import Template

# Resource types billed while idle (hourly or monthly whether or not anything runs); the fallback counts them.
IDLE_BILLED_TYPES = (
    "AWS::EC2::NatGateway",
    "AWS::EC2::EIP",
    "AWS::EC2::VPCEndpoint",
    "AWS::KMS::Key",
    "AWS::SageMaker::Endpoint",
    "AWS::CloudWatch::Alarm",
    "AWS::SecretsManager::Secret",
    "AWS::CodePipeline::Pipeline",
)


@dataclass(frozen=True)
class StackCost:
    """``monthly`` in USD when priced; ``billed_resources`` always (the fallback's only figure)."""

    monthly: float | None
    billed_resources: int


def _count(template: Template) -> int:
    return sum(1 for r in template.get("Resources", {}).values() if r.get("Type") in IDLE_BILLED_TYPES)


def idle_costs(templates: Mapping[str, Template]) -> tuple[dict[str, StackCost], str]:
    """Stack -> idle cost, and a line saying how it was computed."""
    try:
        from scripts.idle_cost import idle_cost
    except ImportError:
        priced = None
    else:
        priced = idle_cost(templates)
    costs: dict[str, StackCost] = {}
    for stack, template in templates.items():
        monthly = None
        if priced is not None:
            monthly = sum(item.monthly for item in priced.items if item.stack == stack)
        costs[stack] = StackCost(monthly=monthly, billed_resources=_count(template))
    if priced is None:
        return costs, (
            "scripts/idle_cost.py is not importable here: the delta is a count of resources billed while idle "
            f"({', '.join(t.split('::', 1)[1] for t in IDLE_BILLED_TYPES)}), not dollars."
        )
    return costs, "Priced by scripts/idle_cost.py (stacks/pricing.py list prices; usage-based services at $0 idle)."
