"""Granted actions no proven request uses, each with the reason it is granted anyway."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class UnusedReason:
    role: str
    action: str
    reason: str


REASONS: tuple[UnusedReason, ...] = ()


def reason_for(role: str, statement: str, action: str, world: Any) -> UnusedReason | None:
    return None
