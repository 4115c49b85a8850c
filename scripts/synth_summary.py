"""Print a one-screen summary of a synthesized cloud assembly: stacks, resource counts, cdk-nag result.

Usage: python -m scripts.synth_summary [cdk.out]   (`make synth` runs the file with PYTHONPATH=.)
Exit status 1 when the validation report holds an unacknowledged finding.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

from scripts.assembly import nag_findings, stack_templates


def _per_stack(counts: Counter[tuple[str, str]]) -> Counter[str]:
    per_stack: Counter[str] = Counter()
    for (stack, _rule), count in counts.items():
        per_stack[stack] += count
    return per_stack


def main(outdir: Path) -> int:
    templates = stack_templates(outdir)
    nag = nag_findings(outdir, list(templates))
    violations, acknowledged = _per_stack(nag.violations), _per_stack(nag.acknowledged)
    print(f"{'stack':<28}{'resources':>10}{'nag findings':>14}{'acknowledged':>14}")
    for name, template in sorted(templates.items()):
        print(f"{name:<28}{len(template.get('Resources', {})):>10}{violations[name]:>14}{acknowledged[name]:>14}")
    total = sum(violations.values())
    verdict = "0 unacknowledged findings" if total == 0 else f"{total} UNACKNOWLEDGED FINDINGS"
    print(f"cdk-nag (AwsSolutions + HIPAA.Security): {verdict}; {sum(acknowledged.values())} acknowledged with reasons")
    return 0 if total == 0 else 1


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "cdk.out")))
