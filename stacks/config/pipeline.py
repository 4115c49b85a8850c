"""The release pipeline's configuration (``-c pipeline=true``): the ``platform.pipeline`` section.

The pipeline reads the section of the default stage's document; each deployed stage's account and region come
from that stage's own configuration (build_config with stage=<name>), so they are written in one place.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from stacks.config.document import STAGE_CONTEXT_KEY, defined_stages, parse_cli_value, resolve_document
from stacks.config.fields import (
    CONTEXT_ROOT,
    ConfigError,
    RetentionDays,
    Rules,
    Section,
    Text,
    read_section,
    setting,
)
from stacks.config.platform import account_id, build_config

PIPELINE_CONTEXT_KEY = "pipeline"
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")


@dataclass(frozen=True)
class DeployedStages:
    """The stages the pipeline deploys, in order: each defined under ``platform.stages``, none twice."""

    def read(self, section: Section, name: str) -> tuple[str, ...]:
        stages = section.raw(name)
        defined = section.defined_stages
        if (
            not isinstance(stages, list)
            or not stages
            or len(set(stages)) != len(stages)
            or not all(isinstance(s, str) and s in defined for s in stages)
        ):
            raise section.invalid(
                name, f"a non-empty list of distinct stages defined under '{CONTEXT_ROOT}.stages' "
                f"({list(defined)}), in deployment order", stages
            )
        return tuple(stages)


@dataclass(frozen=True)
class PipelineConfig(Rules):
    # Where the pipeline stack itself lives; None: the account of the credentials that deploy it.
    account: str | None = field(metadata=setting("account", account_id("the account of the deploying credentials")))
    region: str = field(metadata=setting("region", Text(
        expected="an AWS region name such as 'us-east-1'", valid=lambda region: bool(_REGION.match(region))
    )))
    # Stages deployed in order; a manual approval precedes every stage after the first.
    stages: tuple[str, ...] = field(metadata=setting("stages", DeployedStages()))
    log_retention_days: int = field(metadata=setting("logRetentionDays", RetentionDays()))


def pipeline_enabled(context: Mapping[str, Any]) -> bool:
    """``-c pipeline=true`` synthesizes the release pipeline instead of one stage's stacks."""
    raw = parse_cli_value(context.get(PIPELINE_CONTEXT_KEY, False))
    if not isinstance(raw, bool):
        raise ConfigError(f"context key '{PIPELINE_CONTEXT_KEY}' must be true or false, got {raw!r}")
    return raw


def build_pipeline_config(context: Mapping[str, Any]) -> PipelineConfig:
    """Validate the ``platform.pipeline`` section and every stage it names (each must build on its own)."""
    document = Section(resolve_document(context), "", defined_stages=defined_stages(context))
    config = read_section(PipelineConfig, document.child(PIPELINE_CONTEXT_KEY))
    for stage in config.stages:
        build_config({**context, STAGE_CONTEXT_KEY: stage})
    return config
