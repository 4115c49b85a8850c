"""Idle cost of each stack, priced by scripts/idle_cost.py."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from scripts.assembly import Template
from scripts.idle_cost import idle_cost


@dataclass(frozen=True)
class StackCost:
    monthly: float  # USD per month while idle


# Both sides are priced by the working tree's scripts/idle_cost.py: the base's copy is never imported.
COST_NOTE = "Priced by scripts/idle_cost.py (stacks/pricing.py list prices; usage-based services at $0 idle)."


def idle_costs(templates: Mapping[str, Template]) -> dict[str, StackCost]:
    """Stack -> idle cost."""
    priced = idle_cost(templates)
    return {
        stack: StackCost(monthly=sum(item.monthly for item in priced.items if item.stack == stack))
        for stack in templates
    }
