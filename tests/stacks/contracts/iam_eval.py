"""Whether a role's identity policy allows one (action, resource) request: IAM's evaluation logic for identity-based
policies (IAM User Guide, "Policy evaluation logic").

An explicit Deny that matches wins; else an Allow that matches allows; else the request is implicitly denied
(``missing``). A statement matches when its Action (or NotAction) matches the action, its Resource (or NotResource)
the resource, and its Condition holds.

* Actions match case-insensitively, resources case-sensitively, both with IAM's wildcards: ``*`` any run of
  characters (``/`` and ``:`` included), ``?`` one character.
* Conditions are evaluated for the keys the request context supplies (String*, Arn*, Bool, their ...IfExists
  forms; ForAnyValue:/ForAllValues: over a single value). A key the context lacks leaves the condition
  ``unevaluated``: an Allow that depends on it gives ``allowed-if`` (with the conditions listed), a Deny
  ``denied-if``. Nothing is guessed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from tests.stacks.contracts.policies import as_list

Statements = Sequence[tuple[str, dict[str, Any]]]


@cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern), re.DOTALL)


def _glob(pattern: str, value: str, *, case: bool) -> bool:
    if not case:
        pattern, value = pattern.lower(), value.lower()
    return _compiled(pattern).fullmatch(value) is not None


def action_matches(pattern: str, action: str) -> bool:
    return pattern == "*" or _glob(pattern, action, case=False)


def resource_matches(pattern: str, resource: str) -> bool:
    if "${" in pattern:
        raise ValueError(f"policy variable in {pattern}: the evaluator does not substitute them")
    return pattern == "*" or _glob(pattern, resource, case=True)


STRING_OPERATORS: dict[str, Callable[[str, str], bool]] = {
    "StringEquals": lambda p, v: p == v,
    "StringNotEquals": lambda p, v: p != v,
    "StringEqualsIgnoreCase": lambda p, v: p.lower() == v.lower(),
    "StringLike": lambda p, v: _glob(p, v, case=True),
    "StringNotLike": lambda p, v: not _glob(p, v, case=True),
    "ArnEquals": lambda p, v: p == v,
    "ArnLike": lambda p, v: _glob(p, v, case=True),
    "ArnNotEquals": lambda p, v: p != v,
    "ArnNotLike": lambda p, v: not _glob(p, v, case=True),
    "Bool": lambda p, v: str(p).lower() == str(v).lower(),
}
NEGATED = {"StringNotEquals", "StringNotLike", "ArnNotEquals", "ArnNotLike"}


@dataclass(frozen=True)
class ConditionResult:
    holds: bool | None  # None: it depends on a key the request context does not supply
    unevaluated: tuple[str, ...] = ()


def evaluate_conditions(condition: dict[str, Any] | None, context: dict[str, str]) -> ConditionResult:
    unevaluated: list[str] = []
    holds = True
    for raw_operator, pairs in (condition or {}).items():
        operator = raw_operator.split(":", 1)[-1]
        if_exists = operator.endswith("IfExists")
        operator = operator.removesuffix("IfExists")
        test = STRING_OPERATORS.get(operator)
        for key, patterns in pairs.items():
            if test is None:
                unevaluated.append(f"{raw_operator} {key} (operator not evaluated)")
            elif key not in context:
                if not if_exists:
                    unevaluated.append(f"{raw_operator} {key}={patterns}")
            else:
                values = [str(p) for p in as_list(patterns)]
                check = all if operator in NEGATED else any
                holds = holds and check(test(p, context[key]) for p in values)
    if not holds:
        return ConditionResult(False, tuple(unevaluated))
    return ConditionResult(None if unevaluated else True, tuple(unevaluated))


@dataclass(frozen=True)
class Match:
    effect: str
    statement: str  # the statement's label (policy#index sid)
    conditions: ConditionResult


@dataclass(frozen=True)
class Decision:
    action: str
    resource: str
    verdict: str  # allowed | allowed-if | denied | denied-if | missing
    matches: tuple[Match, ...] = field(default=())

    @property
    def unevaluated(self) -> list[str]:
        return [u for m in self.matches for u in m.conditions.unevaluated]


def statement_matches(statement: dict[str, Any], action: str, resource: str) -> bool:
    if "Action" in statement:
        if not any(action_matches(p, action) for p in as_list(statement["Action"])):
            return False
    elif "NotAction" in statement:
        if any(action_matches(p, action) for p in as_list(statement["NotAction"])):
            return False
    else:
        return False
    if "Resource" in statement:
        return any(resource_matches(p, resource) for p in as_list(statement["Resource"]))
    if "NotResource" in statement:
        return not any(resource_matches(p, resource) for p in as_list(statement["NotResource"]))
    return False


def decide(statements: Statements, action: str, resource: str, context: dict[str, str] | None = None) -> Decision:
    """The verdict of ``statements`` (every statement attached to one role) on one request."""
    matches = []
    for label, statement in statements:
        if statement_matches(statement, action, resource):
            result = evaluate_conditions(statement.get("Condition"), context or {})
            if result.holds is not False:
                matches.append(Match(statement.get("Effect", "Allow"), label, result))
    denies = [m for m in matches if m.effect == "Deny"]
    allows = [m for m in matches if m.effect == "Allow"]
    if any(m.conditions.holds for m in denies):
        verdict = "denied"
    elif denies:
        verdict = "denied-if"
    elif any(m.conditions.holds for m in allows):
        verdict = "allowed"
    elif allows:
        verdict = "allowed-if"
    else:
        verdict = "missing"
    return Decision(action, resource, verdict, tuple(matches))


def unused_grants(statements: Statements, used: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
    """Per Allow statement, the actions it grants that no proven (action, resource) pair exercised through it. A
    wildcard action counts as used when any pair went through it."""
    unused: dict[str, list[str]] = {}
    for label, statement in statements:
        if statement.get("Effect", "Allow") != "Allow":
            continue
        for pattern in as_list(statement.get("Action")):
            if not any(action_matches(pattern, a) and statement_matches(statement, a, r) for a, r in used):
                unused.setdefault(label, []).append(pattern)
    return unused
