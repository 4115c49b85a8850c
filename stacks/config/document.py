"""The effective configuration document: cdk.json's defaults, then the stage's overrides, then ``-c`` keys.

Only merging happens here; every value is judged by the section types (stacks/config/sections.py).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

from stacks.config.fields import CONTEXT_ROOT, ConfigError

STAGE_CONTEXT_KEY = "stage"
DEFAULT_STAGE = "dev"


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` laid over ``base``; nested mappings merge, anything else replaces."""
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def parse_cli_value(raw: Any) -> Any:
    """`-c key=value` always arrives as a string; JSON gives numbers, booleans and lists their type."""
    if not isinstance(raw, str):
        return raw
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def defined_stages(context: Mapping[str, Any]) -> tuple[str, ...]:
    """The stage names cdk.json defines under ``platform.stages``, sorted."""
    root = context.get(CONTEXT_ROOT)
    return tuple(sorted(root.get("stages", {}))) if isinstance(root, Mapping) else ()


def resolve_document(context: Mapping[str, Any]) -> dict[str, Any]:
    """The effective configuration document: defaults, then the stage's overrides, then ``-c`` keys."""
    root = context.get(CONTEXT_ROOT)
    if not isinstance(root, Mapping) or not isinstance(root.get("defaults"), Mapping):
        raise ConfigError(
            f"context key '{CONTEXT_ROOT}.defaults' is missing: run from the project root so cdk.json's "
            "embedded default configuration is loaded"
        )
    stage = str(context.get(STAGE_CONTEXT_KEY, DEFAULT_STAGE))
    stages = root.get("stages", {})
    if stage not in stages:
        raise ConfigError(
            f"context key '{STAGE_CONTEXT_KEY}' is '{stage}', which cdk.json does not define: "
            f"use one of {sorted(stages)} or add it under '{CONTEXT_ROOT}.stages'"
        )
    document = deep_merge(root["defaults"], stages[stage] or {})
    document["stage"] = stage
    for key, raw in context.items():
        if not key.startswith(f"{CONTEXT_ROOT}.") or key.startswith(f"{CONTEXT_ROOT}.stages"):
            continue
        path = key.split(".")[1:]
        node = document
        for part in path[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                raise ConfigError(f"context key '{key}' names no configuration section: see the README's reference")
            node = child
        if path[-1] not in node:
            raise ConfigError(f"context key '{key}' is not a configuration key: see the README's reference")
        # A key whose default is a string keeps the text as typed: `-c platform.account=123456789012` is an
        # account ID, not the number JSON would make of it.
        current = node[path[-1]]
        node[path[-1]] = raw if isinstance(current, str) and isinstance(raw, str) else parse_cli_value(raw)
    return document
