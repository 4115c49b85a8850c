"""Render the review as Markdown: a summary table, the data-loss risks first, then each stack's detail."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from scripts.review.assembly import SynthResult
from scripts.review.cost import COST_NOTE, StackCost, idle_costs
from scripts.review.diff import PropertyChange, ResourceChange, StackDiff, StatementChange, diff_stack
from scripts.review.schemas import is_known_type

MAX_VALUE = 80  # characters of a property value shown before it is cut
MAX_STATEMENT = 400  # an IAM statement is the point of its line: show (nearly) all of it
# Properties holding policy documents: their statements are listed one by one under "IAM statements".
POLICY_PROPERTIES = frozenset({"PolicyDocument", "KeyPolicy", "AssumeRolePolicyDocument", "RepositoryPolicyText",
                               "Policies"})


def _value(value: Any, limit: int = MAX_VALUE) -> str:
    text = "(absent)" if value is None else json.dumps(value, sort_keys=True) if not isinstance(value, str) else value
    text = text.replace("|", "\\|").replace("`", "'")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _deletion(change: ResourceChange) -> str:
    return "old one retained (orphaned)" if change.deletion_policy in ("Retain", "RetainExceptOnCreate") \
        else "old one DELETED with its data"


def data_risks(diffs: Iterable[StackDiff]) -> list[str]:
    """One line per data-bearing resource that is replaced or removed: what happens to the data."""
    lines = []
    for diff in diffs:
        for change in diff.replaced:
            if change.data_bearing:
                lines.append(f"- **{diff.stack}** `{change.logical_id}` ({change.type_}) is **REPLACED**: "
                             f"{change.replacement}; {_deletion(change)}")
        for change in diff.removed:
            if change.data_bearing:
                lines.append(f"- **{diff.stack}** `{change.logical_id}` ({change.type_}) is **REMOVED**: "
                             f"{_deletion(change)}")
    return lines


def _changed_rows(change: ResourceChange) -> list[str]:
    if change.replacement:
        verdict = f"**replacement** ({change.replacement})"
    elif not is_known_type(change.type_):
        verdict = "in place? (no schema for this type)"
    else:
        verdict = "in place"
    flag = " ⚠ data" if change.data_bearing and change.replacement else ""
    first = f"| `{change.logical_id}` | {change.type_}{flag} | {verdict} |"
    details = [_property_line(p) for p in change.changes] or ["(unchanged text; see reason)"]
    return [first + " " + "<br>".join(details) + " |"]


def _property_line(change: PropertyChange) -> str:
    mark = " **(create-only)**" if change.replaces else ""
    if change.path and change.path[0] in POLICY_PROPERTIES:
        return f"`{'.'.join(change.path)}`{mark}: statements changed (see IAM statements)"
    return f"`{'.'.join(change.path)}`{mark}: {_value(change.old)} → {_value(change.new)}"


def _statements(title: str, changes: list[StatementChange]) -> list[str]:
    if not changes:
        return []
    lines = [f"**{title}**", ""]
    lines.extend(f"- {'+' if c.added else '−'} `{c.owner}`: {_value(c.statement, MAX_STATEMENT)}" for c in changes)
    return [*lines, ""]


def _nag_lines(stack: str, base: SynthResult, head: SynthResult) -> list[str]:
    rules = sorted({rule for (s, rule) in base.acknowledged | head.acknowledged if s == stack})
    lines = []
    for rule in rules:
        before, after = base.acknowledged[(stack, rule)], head.acknowledged[(stack, rule)]
        if before != after:
            lines.append(f"- {rule}: {before} → {after} acknowledged ({after - before:+d})")
    unacknowledged = sorted((rule, n) for (s, rule), n in head.violations.items() if s == stack)
    lines.extend(f"- **{rule}: {n} UNACKNOWLEDGED** (synth fails until fixed or acknowledged)"
                 for rule, n in unacknowledged)
    return ["**cdk-nag**", "", *lines, ""] if lines else []


def _money(cost: StackCost | None) -> str:
    return "—" if cost is None else f"${cost.monthly:,.2f}"


def _cost_delta(old: StackCost | None, new: StackCost | None) -> str:
    # A stack that is new or removed costs nothing on the side that lacks it.
    before = old.monthly if old is not None else 0.0
    after = new.monthly if new is not None else 0.0
    return f"{after - before:+,.2f} $/month"


def render(base: SynthResult, head: SynthResult, *, base_label: str, head_label: str) -> str:
    stacks = sorted(set(base.templates) | set(head.templates))
    diffs = [diff_stack(s, base.templates.get(s), head.templates.get(s)) for s in stacks]
    base_cost, head_cost = idle_costs(base.templates), idle_costs(head.templates)
    out = [f"## Infrastructure review: `{base_label}` → `{head_label}`", ""]
    for label, side in (("base", base), ("head", head)):
        if side.error:
            out += [f"> **Synth of {label} failed**: {side.error}", ""]
    risks = data_risks(diffs)
    out += ["### Data-bearing resources replaced or removed", ""]
    out += [*(risks or ["None."]), ""]
    out += ["### Summary", "",
            "| stack | added | removed | changed | replaced | IAM ± | SG ± | nag ack Δ | idle cost (base → head) |",
            "|---|---|---|---|---|---|---|---|---|"]
    for diff in diffs:
        nag_delta = sum(head.acknowledged[k] for k in head.acknowledged if k[0] == diff.stack) - sum(
            base.acknowledged[k] for k in base.acknowledged if k[0] == diff.stack
        )
        old_cost, new_cost = base_cost.get(diff.stack), head_cost.get(diff.stack)
        presence = "" if diff.stack in base.templates and diff.stack in head.templates else (
            " (new stack)" if diff.stack in head.templates else " (stack removed)")
        out.append(
            f"| {diff.stack}{presence} | {len(diff.added)} | {len(diff.removed)} | {len(diff.changed)} | "
            f"{len(diff.replaced)} | {len(diff.iam)} | {len(diff.security_groups)} | {nag_delta:+d} | "
            f"{_money(old_cost)} → {_money(new_cost)} ({_cost_delta(old_cost, new_cost)}) |"
        )
    out += ["", f"Idle cost: {COST_NOTE}", ""]
    for diff in diffs:
        nag = _nag_lines(diff.stack, base, head)
        if diff.empty and not nag:
            continue
        out += [f"### {diff.stack}", ""]
        if diff.added:
            out += ["**Added**", ""]
            out += [f"- `{c.logical_id}` ({c.type_})" for c in diff.added] + [""]
        if diff.removed:
            out += ["**Removed**", ""]
            out += [f"- `{c.logical_id}` ({c.type_})" + (f": {_deletion(c)}" if c.data_bearing else "")
                    for c in diff.removed] + [""]
        if diff.changed:
            out += ["**Changed**", "", "| resource | type | update | properties |", "|---|---|---|---|"]
            for change in diff.changed:
                out += _changed_rows(change)
            out += [""]
        out += _statements("IAM statements", diff.iam)
        out += _statements("Security group rules", diff.security_groups)
        out += nag
    if all(d.empty for d in diffs):
        out += ["No resource, IAM or security-group change.", ""]
    return "\n".join(out)
