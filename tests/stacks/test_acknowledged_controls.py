"""Every acknowledgment reason that names a control is true of the resources it acknowledges (tests/stacks/controls.py).

Read from the synthesized assemblies, not from cdk-nag's report: an acknowledgment whose finding never fires is
still a claim a reviewer reads. The source scan makes sure no reason in stacks/ names a control without being
synthesized (and so checked) in one of the configurations below.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Iterator
from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk import aws_cloudtrail as cloudtrail
from aws_cdk import aws_s3 as s3

from stacks.compliance import acknowledge
from stacks.components.audit_trail import audit_selectors
from tests.stacks import controls
from tests.stacks.assembly import ORGANIZATION_TRAIL_ARN, PROJECT_ROOT, Assembly

# Every platform configuration the suite synthesizes, and the release pipeline with its stages.
CONFIGURATIONS = ["assembly", "variant_assembly", "codestar_assembly", "mme_assembly", "import_assembly",
                  "audit_assembly", "pipeline_assembly"]


def checked(request: pytest.FixtureRequest, fixture: str) -> list[controls.Assembly]:
    """The fixture's assembly and each nested stage assembly (a stage's trail covers that stage's buckets)."""
    outdir = request.getfixturevalue(fixture).outdir
    organization_trail = ORGANIZATION_TRAIL_ARN if fixture == "audit_assembly" else None
    found = [controls.Assembly.read(outdir, organization_trail_arn=organization_trail)]
    manifest = json.loads((outdir / "manifest.json").read_text())
    for artifact in manifest["artifacts"].values():
        if artifact["type"] == "cdk:cloud-assembly":
            found.append(controls.Assembly.read(outdir / artifact["properties"]["directoryName"]))
    return found


@pytest.mark.parametrize("fixture", CONFIGURATIONS)
def test_no_reason_names_a_control_the_templates_do_not_contain(request: pytest.FixtureRequest, fixture: str) -> None:
    assemblies = checked(request, fixture)
    claims = [item for a in assemblies for item in a.acknowledged() if controls.named_controls(item.reason)]
    assert claims, "no reason names a control: the scan reads nothing"
    for assembly in assemblies:
        assert controls.false_claims(assembly) == {}


def test_the_access_log_buckets_claim_cloudtrail_and_the_trails_record_them(
    request: pytest.FixtureRequest, assembly: Assembly, audit_assembly: Assembly
) -> None:
    def claims(outdir: Path, trail: str | None = None) -> dict[str, str]:
        return {
            item.path: item.reason
            for item in controls.Assembly.read(outdir, organization_trail_arn=trail).acknowledged()
            if "CloudTrail" in item.reason
        }

    own = claims(assembly.outdir)
    assert "the platform audit trail (the Audit stack)" in own["/Data/AccessLogs"]
    organization = claims(audit_assembly.outdir, ORGANIZATION_TRAIL_ARN)
    assert ORGANIZATION_TRAIL_ARN in organization["/Data/AccessLogs"]
    # With an organization trail the platform creates none: the claim names the trail doctor checks instead.
    assert not audit_assembly.resources("Audit", "AWS::CloudTrail::Trail")
    pipeline = checked(request, "pipeline_assembly")[0]
    assert any(path.startswith("/Pipeline/AccessLogs") for path in claims(pipeline.resolved.outdir))


def probe(tmp_path: Path, *, trail_buckets: tuple[str, ...], reason: str) -> controls.Assembly:
    """A stack with buckets A and B, A acknowledged with ``reason``, a trail recording ``trail_buckets``."""
    app = cdk.App(outdir=str(tmp_path))
    stack = cdk.Stack(app, "Probe")
    buckets = {name: s3.Bucket(stack, name) for name in ("A", "B")}
    acknowledge(buckets["A"], ["AwsSolutions-S1"], reason)
    if trail_buckets:
        trail = cloudtrail.CfnTrail(stack, "Trail", is_logging=True, s3_bucket_name="logs")
        trail.advanced_event_selectors = audit_selectors(  # type: ignore[assignment]
            management_events=False, object_buckets=[buckets[n] for n in trail_buckets], log_buckets=(),
            datastore_arns=(),
        )
    app.synth()
    return controls.Assembly.read(tmp_path)


CLAIM = "A long enough reason for a reviewer: CloudTrail data events cover access to it, and versioning is on."


@pytest.mark.parametrize(
    ("trail_buckets", "expected"),
    [
        # Must: a trail records the acknowledged bucket.
        (("A",), []),
        # Must not: no trail at all.
        ((), ["names CloudTrail but the assembly has no trail"]),
        # Must not: a trail, but of another bucket.
        (("B",), ["no trail records reads and deletes of the objects of A"]),
    ],
)
def test_a_cloudtrail_claim_needs_a_trail_recording_that_bucket(
    tmp_path: Path, trail_buckets: tuple[str, ...], expected: list[str]
) -> None:
    found = controls.false_claims(probe(tmp_path, trail_buckets=trail_buckets, reason=CLAIM))
    problems = [p for ps in found.values() for p in ps]
    # The probe's bucket has no versioning either: that claim is false in every row.
    assert any("has no versioning" in p for p in problems)
    trail_problems = [p for p in problems if "versioning" not in p]
    assert len(trail_problems) == len(expected)
    for problem, fragment in zip(trail_problems, expected, strict=True):
        assert fragment in problem


def test_a_claim_naming_another_organization_trail_is_refused(tmp_path: Path) -> None:
    reason = f"A long enough reason: CloudTrail data events of the organization trail {ORGANIZATION_TRAIL_ARN} apply."
    assembly = probe(tmp_path, trail_buckets=(), reason=reason)
    assert controls.false_claims(assembly)  # no organization trail configured
    assembly.organization_trail_arn = ORGANIZATION_TRAIL_ARN
    assert controls.false_claims(assembly) == {}


def reason_texts(node: ast.expr) -> Iterator[str]:
    """The literal text of a reason expression (each literal part of an f-string; a dict's values)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        yield node.value
    elif isinstance(node, ast.JoinedStr):
        for part in node.values:
            yield from reason_texts(part)
    elif isinstance(node, ast.BinOp):
        yield from reason_texts(node.left)
        yield from reason_texts(node.right)
    elif isinstance(node, ast.Dict):
        for value in node.values:
            yield from reason_texts(value)


def source_reasons() -> Iterator[tuple[str, str]]:
    """("<file>:<line>", text) of every reason written in stacks/: assigned to a *REASON(S) name, passed to a
    ``*reason`` keyword, or to acknowledge*/skip_checkov*."""
    for path in sorted((PROJECT_ROOT / "stacks").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            expressions: list[ast.expr] = []
            if isinstance(node, ast.Assign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                if any(isinstance(t, ast.Name) and t.id.rstrip("S").endswith("REASON") for t in targets) and node.value:
                    expressions.append(node.value)
            elif isinstance(node, ast.Call):
                callee = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
                if callee.startswith(("acknowledge", "skip_checkov")):
                    expressions += node.args[1:]
                expressions += [k.value for k in node.keywords if k.arg and k.arg.endswith("reason")]
            for expression in expressions:
                for text in reason_texts(expression):
                    yield f"{path.relative_to(PROJECT_ROOT)}:{expression.lineno}", text


def test_every_reason_in_the_source_that_names_a_control_is_synthesized_and_so_checked(
    request: pytest.FixtureRequest,
) -> None:
    synthesized = [item.reason for fixture in CONFIGURATIONS for a in checked(request, fixture)
                   for item in a.acknowledged()]
    written = [(where, text) for where, text in source_reasons() if controls.named_controls(text)]
    assert any("versioning plus RETAIN" in text for _, text in written)  # the scan reads the reasons
    unchecked = [f"{where}: {text[:80]}" for where, text in written if not any(text in r for r in synthesized)]
    assert unchecked == [], "reasons naming a control that no synthesized configuration records (add one)"


def test_an_isolation_claim_needs_a_vpc_without_nat(assembly: Assembly, variant_assembly: Assembly) -> None:
    claim = controls.Acknowledged("Serving", "/Serving/Model", "CKV_AWS_370", "runs in isolated subnets", ())
    # Must: the default configuration has no NAT gateway.
    assert controls.check_isolated(controls.Assembly.read(assembly.outdir), claim) == []
    # Must not: with natGateways = 2 the subnets route out through NAT.
    [problem] = controls.check_isolated(controls.Assembly.read(variant_assembly.outdir), claim)
    assert "claims isolated subnets, but the VPC has NAT gateways" in problem
