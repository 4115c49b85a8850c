"""Print a one-screen summary of a synthesized cloud assembly: stacks, resource counts, cdk-nag result.

Usage: python scripts/synth_summary.py [cdk.out]
Exit status 1 when the validation report holds an unacknowledged finding.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path


def stack_templates(outdir: Path) -> dict[str, Path]:
    """Stack display name -> template file, from the assembly manifest (nested stages included)."""
    manifest = json.loads((outdir / "manifest.json").read_text())
    found: dict[str, Path] = {}
    for artifact_id, artifact in manifest.get("artifacts", {}).items():
        kind = artifact.get("type")
        if kind == "aws:cloudformation:stack":
            name = artifact.get("displayName", artifact_id)
            found[name] = outdir / artifact["properties"]["templateFile"]
        elif kind == "cdk:cloud-assembly":
            found.update(stack_templates(outdir / artifact["properties"]["directoryName"]))
    return found


def owning_stack(construct_path: str, stacks: list[str]) -> str:
    """The stack (display name, e.g. ``Pipeline/Dev/Data``) whose construct path holds ``construct_path``."""
    owners = [name for name in stacks if construct_path.startswith(f"{name}/")]
    return max(owners, key=len) if owners else construct_path.split("/")[0]


def nag_counts(outdir: Path, stacks: list[str]) -> tuple[Counter[str], Counter[str]]:
    """(unacknowledged, acknowledged) finding counts per stack from cdk-nag's validation report."""
    violations: Counter[str] = Counter()
    acknowledged: Counter[str] = Counter()
    report_file = outdir / "validation-report.json"
    if not report_file.exists():
        return violations, acknowledged
    for plugin in json.loads(report_file.read_text()).get("pluginReports", []):
        for counter, key in ((violations, "violations"), (acknowledged, "suppressedViolations")):
            for finding in plugin.get(key, []):
                for construct in finding.get("violatingConstructs", []):
                    counter[owning_stack(construct["constructPath"], stacks)] += 1
    return violations, acknowledged


def main(outdir: Path) -> int:
    templates = stack_templates(outdir)
    violations, acknowledged = nag_counts(outdir, list(templates))
    print(f"{'stack':<28}{'resources':>10}{'nag findings':>14}{'acknowledged':>14}")
    for name, template_file in sorted(templates.items()):
        resources = json.loads(template_file.read_text()).get("Resources", {})
        print(f"{name:<28}{len(resources):>10}{violations[name]:>14}{acknowledged[name]:>14}")
    total = sum(violations.values())
    verdict = "0 unacknowledged findings" if total == 0 else f"{total} UNACKNOWLEDGED FINDINGS"
    print(f"cdk-nag (AwsSolutions + HIPAA.Security): {verdict}; {sum(acknowledged.values())} acknowledged with reasons")
    return 0 if total == 0 else 1


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "cdk.out")))
