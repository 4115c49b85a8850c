"""Compliance is a test: cdk-nag clean with scoped, reasoned acknowledgments; cfn-lint and checkov clean."""

from __future__ import annotations

import json
from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk import aws_s3 as s3

from stacks.compliance import acknowledge, add_compliance_checks, skip_checkov
from tests.stacks.assembly import Assembly
from tests.stacks.lint import NAG_PACKS, acknowledgment_listing, assert_cfn_lint_clean, assert_checkov_clean

# Every configuration the suite synthesizes as a whole platform (tests/stacks/conftest.py): each stack's own tests
# build it from its props alone, without cdk-nag, so the packs run over every variant here.
PLATFORM_VARIANTS = ["assembly", "variant_assembly", "codestar_assembly", "mme_assembly", "import_assembly"]


@pytest.mark.parametrize("fixture", PLATFORM_VARIANTS)
def test_nag_report_has_no_unacknowledged_findings(request: pytest.FixtureRequest, fixture: str) -> None:
    assembly: Assembly = request.getfixturevalue(fixture)
    report = json.loads((assembly.outdir / "validation-report.json").read_text())
    packs = {plugin["pluginName"]: plugin for plugin in report["pluginReports"]}
    # A pack appears in the report only when it has findings or acknowledgments to list.
    assert "HIPAA.Security" in packs
    assert set(packs) <= NAG_PACKS
    for name, plugin in packs.items():
        assert plugin["violations"] == [], f"{name} findings: {plugin['violations']}"
        assert plugin["conclusion"] == "success"


def test_an_unacknowledged_finding_fails_synth_with_both_packs(tmp_path: Path) -> None:
    # The must-not twin of the clean report above: a plain bucket breaks rules of both packs.
    app = cdk.App(outdir=str(tmp_path))
    add_compliance_checks(app)
    s3.Bucket(cdk.Stack(app, "Probe"), "PlainBucket")
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    report = json.loads((tmp_path / "validation-report.json").read_text())
    rules = {v["ruleName"] for plugin in report["pluginReports"] for v in plugin["violations"]}
    assert {"AwsSolutions-S1", "AwsSolutions-S10", "HIPAA.Security-S3DefaultEncryptionKMS"} <= rules


def test_every_acknowledgment_is_scoped_to_a_resource_and_has_a_reason(assembly: Assembly) -> None:
    # The listing a reviewer reads: every acknowledgment, where it applies.
    print("\n".join(acknowledgment_listing(assembly)))


def test_acknowledge_refuses_a_stack_wide_scope_and_a_vague_reason() -> None:
    app = cdk.App()
    stack = cdk.Stack(app, "Probe")
    bucket = s3.Bucket(stack, "Bucket")
    good_reason = "A reason long enough that a reviewer could judge whether to accept it."
    acknowledge(bucket, ["AwsSolutions-S1"], good_reason)  # must: a resource and a real reason
    with pytest.raises(ValueError, match="would cover every resource in it"):
        acknowledge(stack, ["AwsSolutions-S1"], good_reason)
    with pytest.raises(ValueError, match="would cover every resource in it"):
        acknowledge(app, ["AwsSolutions-S1"], good_reason)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"reason .* is too short"):
        acknowledge(bucket, ["AwsSolutions-S1"], "not needed")
    with pytest.raises(ValueError, match=r"reason .* is too short"):
        skip_checkov(bucket, {"CKV_AWS_18": "n/a"})


@pytest.mark.compliance
@pytest.mark.parametrize("fixture", ["assembly", "variant_assembly"])
def test_cfn_lint_reports_nothing(request: pytest.FixtureRequest, fixture: str) -> None:
    assert_cfn_lint_clean(request.getfixturevalue(fixture).template_files())


@pytest.mark.compliance
@pytest.mark.parametrize("fixture", ["assembly", "variant_assembly"])
def test_checkov_reports_no_failed_check(request: pytest.FixtureRequest, fixture: str) -> None:
    assert_checkov_clean([request.getfixturevalue(fixture).outdir], min_passed=50)


@pytest.mark.compliance
def test_the_import_variant_passes_cfn_lint_and_checkov(import_assembly: Assembly) -> None:
    # The default and variant assemblies are covered above; this covers the import function's resources and the
    # monitoring stack that graphs it.
    templates = import_assembly.template_files("Inference", "Monitoring")
    assert_cfn_lint_clean(templates)
    assert_checkov_clean(templates, min_passed=20)
