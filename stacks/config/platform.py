"""The whole configuration of one stage: :class:`PlatformConfig`, built once by :func:`build_config`."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from stacks.config.document import STAGE_CONTEXT_KEY, resolve_document
from stacks.config.fields import (
    ConfigError,
    Nested,
    Rules,
    Section,
    Text,
    Value,
    empty_is_none,
    read_section,
    setting,
)
from stacks.config.sections import (
    AuditConfig,
    BackfillConfig,
    DataConfig,
    EdgeConfig,
    ImagesConfig,
    MonitoringConfig,
    NetworkConfig,
    ServingConfig,
    TrainingConfig,
    ViewerConfig,
)

# Regions where AWS HealthImaging is offered (AWS General Reference, "AWS HealthImaging endpoints and
# quotas", read 2026-11). The only list of them in the project: every region check reads it.
HEALTHIMAGING_REGIONS: tuple[str, ...] = ("us-east-1", "us-west-2", "eu-west-1", "eu-west-2", "ap-southeast-2")

# Derived names (e.g. "<project>-<stage>-spleen-async" for a SageMaker endpoint, 63 characters at most)
# must fit the tightest AWS limit they meet, so the parts are bounded here.
_PROJECT_NAME = re.compile(r"^[a-z][a-z0-9-]{1,23}[a-z0-9]$")
_STAGE_NAME = re.compile(r"^[a-z][a-z0-9]{0,9}$")
ACCOUNT = re.compile(r"^\d{12}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True)
class StageName:
    """The stage ``-c stage=<name>`` picked (resolve_document checked that cdk.json defines it)."""

    def read(self, section: Section, name: str) -> str:
        stage = str(section.raw(name))
        if not _STAGE_NAME.match(stage):
            # Named by its own context key: the stage is chosen with -c stage=..., not under platform.
            raise ConfigError(
                f"context key '{STAGE_CONTEXT_KEY}' must be 1-10 lowercase letters or digits starting with a letter, "
                f"got {stage!r}"
            )
        return stage


@dataclass(frozen=True)
class HealthImagingRegion:
    def read(self, section: Section, name: str) -> str:
        region = Text().read(section, name)
        if region not in HEALTHIMAGING_REGIONS:
            raise ConfigError(
                f"context key '{section.key(name)}' is {region!r}, where AWS HealthImaging is not available: "
                f"use one of {', '.join(HEALTHIMAGING_REGIONS)}"
            )
        return region


def account_id(why_empty: str) -> Value:
    """A 12-digit account ID, or "" (read as None) for ``why_empty``."""
    return Value(
        expected=f"a 12-digit AWS account ID or \"\" ({why_empty})",
        valid=lambda account: isinstance(account, str) and (not account or bool(ACCOUNT.match(account))),
        convert=empty_is_none,
    )


@dataclass(frozen=True)
class PlatformConfig(Rules):
    project_name: str = field(metadata=setting("projectName", Text(
        expected="3-25 lowercase letters, digits or hyphens, starting with a letter (it prefixes names with AWS "
        "length limits)",
        valid=lambda name: bool(_PROJECT_NAME.match(name)),
    )))
    stage: str = field(metadata=setting("stage", StageName()))
    account: str | None = field(metadata=setting("account", account_id("\"\" synthesizes environment-agnostic "
                                                                         "templates")))
    region: str = field(metadata=setting("region", HealthImagingRegion()))
    network: NetworkConfig = field(metadata=setting("network", Nested(NetworkConfig)))
    data: DataConfig = field(metadata=setting("data", Nested(DataConfig)))
    serving: ServingConfig = field(metadata=setting("serving", Nested(ServingConfig)))
    training: TrainingConfig = field(metadata=setting("training", Nested(TrainingConfig)))
    images: ImagesConfig = field(metadata=setting("images", Nested(ImagesConfig)))
    notification_emails: tuple[str, ...] = field(metadata=setting("notificationEmails", Value(
        expected="a list of e-mail addresses",
        valid=lambda emails: isinstance(emails, list) and all(isinstance(e, str) and _EMAIL.match(e) for e in emails),
        convert=tuple,
    )))
    monitoring: MonitoringConfig = field(metadata=setting("monitoring", Nested(MonitoringConfig)))
    backfill: BackfillConfig = field(metadata=setting("backfill", Nested(BackfillConfig)))
    edge: EdgeConfig = field(metadata=setting("edge", Nested(EdgeConfig)))
    viewer: ViewerConfig = field(metadata=setting("viewer", Nested(ViewerConfig)))
    audit: AuditConfig = field(metadata=setting("audit", Nested(AuditConfig)))

    @property
    def prefix(self) -> str:
        """Prefix of every name the platform sets explicitly: ``<project>-<stage>``."""
        return f"{self.project_name}-{self.stage}"


def build_config(context: Mapping[str, Any]) -> PlatformConfig:
    """Build and validate the configuration from a CDK context mapping (``app.node.get_all_context()``)."""
    return read_section(PlatformConfig, Section(resolve_document(context), ""))
