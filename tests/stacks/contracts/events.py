"""EventBridge rules against AWS's documented sample events, with a pattern matcher we did not write.

Fixtures (fixtures/events/*.json) are the samples of AWS's pages, copied as published: ``{"url", "copied_from",
"text" (the sample's JSON text, verbatim), "note"}``. A test puts the platform's names into a sample's identifying
fields (``with_fields``) and expects the rule to match, and expects the sample as published (another account's
bucket, pipeline, group or data store) not to.

The matcher is moto's ``EventPattern`` (what moto's PutEvents uses): exact values, prefix, suffix, anything-but,
numeric, exists, cidr, wildcard, equals-ignore-case and $or. It treats an operator it does not know as a match, so
``matches`` refuses a pattern using one (OPERATORS) instead of passing it silently.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from moto.events.models import EventPattern, EventPatternParser

from tests.stacks.contracts.resolve import ResolvedAssembly, iter_resources

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "events"
OPERATORS = {"prefix", "suffix", "anything-but", "numeric", "exists", "cidr", "wildcard", "equals-ignore-case"}


def sample(name: str) -> dict[str, Any]:
    """The sample event of fixture ``name`` (a key repeated in the published JSON keeps its first value: the
    SageMaker sample repeats "source")."""
    def first_wins(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            out.setdefault(key, value)
        return out

    return dict(json.loads(json.loads((FIXTURES / name).read_text())["text"], object_pairs_hook=first_wins))


def with_fields(event: dict[str, Any], **paths: Any) -> dict[str, Any]:
    """A copy of ``event`` with ``detail__bucket__name="x"`` style paths set (``__`` separates the keys)."""
    out = copy.deepcopy(event)
    for path, value in paths.items():
        node = out
        *parents, last = path.split("__")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return out


def _operators(pattern: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(pattern, dict):
        for value in pattern.values():
            found |= _operators(value)
    elif isinstance(pattern, list):
        for item in pattern:
            if isinstance(item, dict):
                found |= set(item) | _operators(list(item.values()))
    return found


def matches(pattern: dict[str, Any], event: dict[str, Any]) -> bool:
    unknown = _operators(pattern) - OPERATORS
    if unknown:
        raise ValueError(f"the pattern uses {sorted(unknown)}, which moto's matcher does not implement (it would "
                         "match any event): extend the contract test before relying on it")
    text = json.dumps(pattern)
    matcher: Any = EventPattern(text, EventPatternParser(text).parse())  # its event type is moto's TypedDict
    return bool(matcher.matches_event(event))


def rules(assembly: ResolvedAssembly) -> dict[str, dict[str, Any]]:
    """Every EventBridge rule's resolved event pattern, by ``<stack>/<logical id>``."""
    return {f"{stack}/{logical}": assembly.resolve(stack, resource["Properties"])["EventPattern"]
            for stack, logical, resource in iter_resources(assembly, "AWS::Events::Rule")}
