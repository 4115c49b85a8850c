"""Run by the tools venv's python (parliament 1.6.4 lives there, requirements-tools.txt): lint policy statements.

stdin: {"<label>": {"Version": ..., "Statement": [statement]}, ...}   stdout: {"<label>": [finding, ...], ...}
with each finding {"issue", "severity", "title", "detail"}. Imports nothing of the repository: tests/stacks/contracts/
parliament_lint.py prepares the documents and judges the findings.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import parliament


def lint(document: dict[str, Any]) -> list[dict[str, Any]]:
    policy = parliament.analyze_policy_string(json.dumps(document), ignore_private_auditors=True)
    out = []
    for finding in policy.findings:
        parliament.enhance_finding(finding)
        out.append({"issue": finding.issue, "severity": finding.severity, "title": finding.title,
                    "detail": json.loads(json.dumps(finding.detail, default=str))})
    return out


def main() -> int:
    documents = json.load(sys.stdin)
    json.dump({label: lint(document) for label, document in documents.items()}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
