"""parliament 1.6.4 (an IAM linter that knows every action's resource types) over every policy statement of every
synthesized configuration: no unknown action, no action on a resource type it cannot apply to, every other finding
explained (tests/stacks/contracts/parliament_lint.py). Twins: each kind of defect, put back, is named."""

from __future__ import annotations

import pytest

from tests.stacks.assembly import Assembly
from tests.stacks.contracts.parliament_lint import Finding, judge, lint, run_parliament
from tests.stacks.contracts.resolve import ResolvedAssembly

# The platform's configurations and the release pipeline (its stages are the platform's stacks, linted above).
ASSEMBLIES = ("assembly", "variant_assembly", "codestar_assembly", "mme_assembly", "import_assembly",
              "pipeline_assembly")


@pytest.mark.parametrize("assembly_name", ASSEMBLIES)
def test_parliament_finds_nothing_unexplained(request: pytest.FixtureRequest, assembly_name: str) -> None:
    built: Assembly = request.getfixturevalue(assembly_name)
    count, findings = lint(ResolvedAssembly.load(built.outdir))
    assert count > 40, "every policy statement of the assembly is linted"
    unexplained = [str(f) for f in findings if f.reason is None]
    assert unexplained == [], "\n".join(unexplained)
    # An unknown action passes only where FINDING_REASONS names it (actions newer than parliament's copy of the
    # Service Authorization Reference); anything else unknown is a typo AWS would refuse.
    assert not [f for f in findings if f.issue.startswith("UNKNOWN_") and f.reason is None]
    # Only the roles that sign HealthImaging's DICOMweb requests: the viewer's reads, the inference write-back's store.
    assert all(f.statement.startswith(("Viewer/DicomWebFunction", "Inference/ImportSegServiceRole"))
               for f in findings if f.issue.startswith("UNKNOWN_"))


def _lint_one(statement: dict[str, object], label: str = "Test/Policy#0") -> list[Finding]:
    document = {"Version": "2012-10-17", "Statement": [statement]}
    return [judge(label, f, statement) for f in run_parliament({label: document})[label]]


@pytest.mark.parametrize(
    ("statement", "issue", "explained"),
    [
        # The UpdateEndpoint defect: the endpoint alone, without the config it deploys.
        ({"Effect": "Allow", "Action": "sagemaker:UpdateEndpoint",
          "Resource": "arn:aws:sagemaker:us-east-1:123456789012:endpoint/e"}, "RESOURCE_MISMATCH", False),
        # An object action on a bucket ARN.
        ({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::bucket"}, "RESOURCE_MISMATCH", False),
        # An action no service has.
        ({"Effect": "Allow", "Action": "sagemaker:UpdateEndpoints", "Resource": "*"}, "UNKNOWN_ACTION", False),
        # Must: CDK's grant_read wildcard on a bucket and its objects is the filtered expansion.
        ({"Effect": "Allow", "Action": ["s3:GetObject*", "s3:GetBucket*", "s3:List*"],
          "Resource": ["arn:aws:s3:::bucket", "arn:aws:s3:::bucket/*"]}, "RESOURCE_MISMATCH", True),
    ],
)
def test_each_kind_of_defect_is_named(statement: dict[str, object], issue: str, explained: bool) -> None:
    findings = [f for f in _lint_one(statement) if f.issue == issue]
    assert findings, f"parliament reports {issue}"
    assert all((f.reason is not None) == explained for f in findings), findings


def test_the_update_endpoint_grant_with_its_configs_is_clean() -> None:
    # Must twin of the first row: the approval function's grant as synthesized now.
    assert _lint_one({"Effect": "Allow", "Action": "sagemaker:UpdateEndpoint", "Resource": [
        "arn:aws:sagemaker:us-east-1:123456789012:endpoint/e",
        "arn:aws:sagemaker:us-east-1:123456789012:endpoint-config/e-v*"]}) == []
