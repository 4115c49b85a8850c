"""Read a synthesized cloud assembly: each stack's template (nested stages included) and cdk-nag's report.

`make synth`'s summary (scripts/synth_summary.py), the idle cost (scripts/idle_cost.py) and the PR review
(scripts/review/) all read the assembly through this module.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Template = dict[str, Any]


def stack_templates(outdir: Path) -> dict[str, Template]:
    """Stack display name (``Data``, ``Pipeline/Prod/Data``) -> template, from the assembly manifest."""
    manifest = json.loads((outdir / "manifest.json").read_text())
    found: dict[str, Template] = {}
    for artifact_id, artifact in manifest.get("artifacts", {}).items():
        kind = artifact.get("type")
        if kind == "aws:cloudformation:stack":
            template_file = outdir / artifact["properties"]["templateFile"]
            found[artifact.get("displayName", artifact_id)] = json.loads(template_file.read_text())
        elif kind == "cdk:cloud-assembly":
            found.update(stack_templates(outdir / artifact["properties"]["directoryName"]))
    return found


def owning_stack(construct_path: str, stacks: list[str]) -> str:
    """The stack (display name) whose construct tree holds ``construct_path``."""
    # A stage's stacks ("Pipeline/Dev/Data") sit inside the pipeline stack's path: the longest name owns it.
    for stack in sorted(stacks, key=len, reverse=True):
        if construct_path == stack or construct_path.startswith(f"{stack}/"):
            return stack
    return construct_path.split("/")[0]


def nag_rule(finding_name: str) -> str:
    # "AwsSolutions-IAM5[Resource::<Bucket.Arn>/*]" counts under its rule: finding IDs embed logical IDs.
    return finding_name.split("[", 1)[0]


@dataclass
class NagFindings:
    """cdk-nag findings counted per (stack, rule)."""

    # Findings acknowledged with a reason; findings that fail synth.
    acknowledged: Counter[tuple[str, str]] = field(default_factory=Counter)
    violations: Counter[tuple[str, str]] = field(default_factory=Counter)


def nag_findings(outdir: Path, stacks: list[str]) -> NagFindings:
    """The findings of cdk-nag's ``validation-report.json`` (none when synth wrote no report)."""
    found = NagFindings()
    report_file = outdir / "validation-report.json"
    if not report_file.exists():
        return found
    for plugin in json.loads(report_file.read_text()).get("pluginReports", []):
        for counter, key in ((found.acknowledged, "suppressedViolations"), (found.violations, "violations")):
            for finding in plugin.get(key, []):
                for construct in finding.get("violatingConstructs", []):
                    counter[(owning_stack(construct["constructPath"], stacks), nag_rule(finding["ruleName"]))] += 1
    return found
