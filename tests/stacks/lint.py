"""The compliance checks test modules run over synthesized templates: cfn-lint, checkov and nag acknowledgments."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from stacks.compliance import MIN_REASON_LENGTH
from tests.stacks.assembly import PROJECT_ROOT, Assembly

# cfn-lint rules ignored over the synthesized templates, each with the reason a reviewer needs.
CFN_LINT_IGNORED = {
    "W3005": "aws-cdk-lib's generated resources (the built-in custom-resource provider, a Trail's log delivery "
    "role) declare a DependsOn that a GetAtt already implies; the redundancy is harmless.",
}
# checkov pins an old boto3, so `make tools` installs it in a virtual environment of its own.
CHECKOV = PROJECT_ROOT / ".venv-tools" / "bin" / "checkov"
NAG_PACKS = {"AwsSolutions", "HIPAA.Security"}


def assert_cfn_lint_clean(templates: Sequence[Path], ignored: Mapping[str, str] = CFN_LINT_IGNORED) -> None:
    """cfn-lint reports nothing over ``templates`` but the ``ignored`` rules (rule ID: reason)."""
    assert templates, "no template to lint"
    result = subprocess.run(
        [str(Path(sys.executable).parent / "cfn-lint"), "--ignore-checks", *ignored, "--", *map(str, templates)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"cfn-lint found problems:\n{result.stdout}{result.stderr}"


def assert_checkov_clean(paths: Sequence[Path], *, min_passed: int) -> None:
    """checkov parses everything and fails no check over ``paths``: template files, or cloud assembly folders
    (scanned with the nested assemblies of pipeline stages). ``min_passed`` guards against scanning nothing."""
    assert CHECKOV.exists(), "checkov is missing: run `make tools` (make test does it)"
    assert paths, "nothing to scan"
    folders = {path.is_dir() for path in paths}
    assert len(folders) == 1, f"checkov scans template files or folders, not both: {paths}"
    flag = "-d" if folders.pop() else "-f"
    result = subprocess.run(
        [str(CHECKOV), *(arg for path in paths for arg in (flag, str(path))), "--framework", "cloudformation",
         "--skip-download", "--quiet", "--compact", "--output", "json"],
        capture_output=True,
        text=True,
        check=False,
    )
    reports = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    summary = [r["summary"] for r in reports if "summary" in r]
    assert summary, result.stdout[-2000:]
    assert all(s["parsing_errors"] == 0 for s in summary), result.stdout[-2000:]
    failed = [
        f"{c['check_id']} {c['resource']} ({c['file_path']})"
        for r in reports
        for c in r.get("results", {}).get("failed_checks", [])
    ]
    assert failed == [], "checkov failed checks:\n" + "\n".join(failed)
    passed = sum(s["passed"] for s in summary)
    assert passed > min_passed, f"checkov passed only {passed} checks: are the templates there?"


def acknowledgment_listing(assembly: Assembly) -> list[str]:
    """Every nag acknowledgment as "<construct path>  <rule>", after asserting each is scoped to a resource
    and carries a reason."""
    # aws-cdk-lib records acknowledgments of its own (e.g. CloudFormation-Validate::W3010 at stack level for
    # Fn::GetAZs); the ones that silence compliance findings are the nag packs'.
    acknowledgments = [
        (path, {rule: reason for rule, reason in rules.items() if rule.split("::")[0] in NAG_PACKS})
        for path, rules in assembly.metadata_entries("aws:cdk:acknowledged-rules")
    ]
    acknowledgments = [(path, rules) for path, rules in acknowledgments if rules]
    assert acknowledgments, "the assembly records no acknowledgments at all: the listing is broken"
    listing = []
    for path, rules in acknowledgments:
        depth = len(path.strip("/").split("/"))
        assert depth >= 2, f"acknowledgment at {path} covers a whole stack or the app: {rules}"
        for rule, reason in rules.items():
            assert len(reason.strip()) >= MIN_REASON_LENGTH, f"{path} {rule}: reason too short: {reason!r}"
            listing.append(f"{path}  {rule}")
    return sorted(listing)
