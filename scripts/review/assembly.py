"""Read a synthesized cloud assembly: templates per stack (nested stages included) and cdk-nag's report."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Template = dict[str, Any]


@dataclass
class SynthResult:
    """One side of the review: its templates, nag counts, and whether synth succeeded."""

    templates: dict[str, Template] = field(default_factory=dict)
    # (stack, rule) -> findings acknowledged with a reason / findings that failed synth.
    acknowledged: Counter[tuple[str, str]] = field(default_factory=Counter)
    violations: Counter[tuple[str, str]] = field(default_factory=Counter)
    error: str | None = None


def stack_templates(outdir: Path) -> dict[str, Template]:
    """Stack display name (``Data``, ``Pipeline/Prod/Data``) -> template, from the manifest."""
    manifest_file = outdir / "manifest.json"
    if not manifest_file.exists():
        return {}
    found: dict[str, Template] = {}
    for artifact_id, artifact in json.loads(manifest_file.read_text()).get("artifacts", {}).items():
        kind = artifact.get("type")
        if kind == "aws:cloudformation:stack":
            template_file = outdir / artifact["properties"]["templateFile"]
            if template_file.exists():
                found[artifact.get("displayName", artifact_id)] = json.loads(template_file.read_text())
        elif kind == "cdk:cloud-assembly":
            found.update(stack_templates(outdir / artifact["properties"]["directoryName"]))
    return found


def _owning_stack(construct_path: str, stacks: list[str]) -> str:
    # Nested stages' stacks are "Pipeline/Dev/Data"; the longest matching display name owns the construct.
    for stack in sorted(stacks, key=len, reverse=True):
        if construct_path == stack or construct_path.startswith(f"{stack}/"):
            return stack
    return construct_path.split("/")[0]


def _rule(name: str) -> str:
    # "AwsSolutions-IAM5[Resource::<Bucket.Arn>/*]" counts under its rule: finding IDs embed logical IDs.
    return name.split("[", 1)[0]


def read_assembly(outdir: Path, *, error: str | None = None) -> SynthResult:
    result = SynthResult(templates=stack_templates(outdir), error=error)
    report_file = outdir / "validation-report.json"
    if not report_file.exists():
        return result
    stacks = list(result.templates)
    for plugin in json.loads(report_file.read_text()).get("pluginReports", []):
        for counter, key in ((result.acknowledged, "suppressedViolations"), (result.violations, "violations")):
            for finding in plugin.get(key, []):
                for construct in finding.get("violatingConstructs", []):
                    counter[(_owning_stack(construct["constructPath"], stacks), _rule(finding["ruleName"]))] += 1
    return result
