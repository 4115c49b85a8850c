"""IAM proven both ways for every role of every synthesized configuration (tests/stacks/contracts/roles.py):

* nothing missing: each (action, resource) the role's code calls (recorded from its own tests), AWS then does with
  it, or a service does with it by the templates' wiring is allowed by the role's synthesized policy;
* nothing unexplained: each granted action is used by such a request or listed with its reason (unused_grants.py);
* no role and no deployed code without either: a function whose tests recorded nothing, a role that makes no
  request and has no reason, fails with what to add.

The twins below break one grant of the synthesized templates each (the defects this proof found) and check that
the proof names it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from tests.stacks.assembly import Assembly
from tests.stacks.contracts.deployed_names import lambda_entries, translated
from tests.stacks.contracts.recording_plugin import recorded_calls
from tests.stacks.contracts.resolve import PARTITION, ResolvedAssembly
from tests.stacks.contracts.roles import Proof, prove
from tests.stacks.contracts.unused_grants import ROLE_REASONS
from tests.stacks.contracts.world import World

ASSEMBLIES = ("assembly", "variant_assembly", "codestar_assembly", "mme_assembly", "import_assembly")


@pytest.fixture(scope="module")
def calls(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return recorded_calls(request.config)


@pytest.fixture(scope="module")
def proofs(request: pytest.FixtureRequest, calls: list[dict[str, Any]]) -> dict[str, Proof]:
    return {name: prove(ResolvedAssembly.load(request.getfixturevalue(name).outdir), calls) for name in ASSEMBLIES}


# Functions whose AWS requests are plain HTTPS signed with SigV4 by the code itself, not botocore client calls: the
# recorder sees none, and their actions are missing from parliament's Service Authorization Reference, so their
# grants are held by a reason (unused_grants.ROLE_REASONS "viewer-dicomweb-proxy") instead of recorded requests.
SIGNS_ITS_OWN_REQUESTS = {"stacks/viewer/runtime/dicomweb_proxy.py"}


def problems(proof: Proof, world: World, calls: list[dict[str, Any]]) -> list[str]:
    """Everything the proof cannot accept, each with what to do."""
    out = list(proof.names.clashes)
    for key, role in sorted(proof.roles.items()):
        out += [f"{key}: {gap}" for gap in role.gaps]
        out += [f"{key}: {label} grants {action}, which no proven request uses: remove it, or add the request's rule "
                "(tests/stacks/contracts/iam_actions.py, service_side.py), or its reason "
                "(tests/stacks/contracts/unused_grants.py)" for label, action in role.unexplained]
        if not role.pairs and role.no_requests_reason is None:
            out.append(f"{key} (assumed by {role.services}) makes no request the proof knows of: if code runs as it, "
                       "record its tests (tests/stacks/<stack>_runtime/); if a service acts with it, add the rule to "
                       "tests/stacks/contracts/service_side.py; else give it a reason in unused_grants.ROLE_REASONS")
    recorded = {entry.unit for entry, _ in translated(calls, world)[0]}
    for unit, entry in sorted(lambda_entries(world).items()):
        if unit not in recorded and unit not in SIGNS_ITS_OWN_REQUESTS:
            out.append(f"{entry.function} runs {unit} as {entry.role}, but no recorded test ran it: put its tests in "
                       "tests/stacks/<stack>_runtime/ (tests/stacks/contracts/recording_plugin.py records them)")
    return out


@pytest.mark.parametrize("assembly_name", ASSEMBLIES)
def test_every_role_is_proven_both_ways(request: pytest.FixtureRequest, proofs: dict[str, Proof],
                                        calls: list[dict[str, Any]], assembly_name: str) -> None:
    proof = proofs[assembly_name]
    world = World.of(ResolvedAssembly.load(request.getfixturevalue(assembly_name).outdir))
    assert set(proof.roles) == set(world.roles), "every role of the templates has a proof"
    found = problems(proof, world, calls)
    assert found == [], "\n".join(found)
    # The recorded side is not empty where code runs: each function's role has pairs from its own tests.
    for unit, entry in lambda_entries(world).items():
        assert unit in SIGNS_ITS_OWN_REQUESTS or proof.roles[entry.role].recorded > 0, entry.unit


def test_every_role_reason_explains_something_in_some_configuration(proofs: dict[str, Proof]) -> None:
    applied = {reason.name for proof in proofs.values() for role in proof.roles.values()
               for _, _, reason in role.explained}
    applied |= {role.no_requests_reason.name for proof in proofs.values() for role in proof.roles.values()
                if role.no_requests_reason is not None}
    stale = [entry.name for entry in ROLE_REASONS if entry.name not in applied]
    assert stale == [], f"ROLE_REASONS entries that no longer explain any grant: {stale}: remove them"


# -- twins: each grant this proof found missing, removed again, is named ------------------------------------------

def _statements(assembly: ResolvedAssembly, stack: str, policy_prefix: str) -> list[dict[str, Any]]:
    (policy,) = [r for k, r in assembly.stacks[stack].resources.items()
                 if r["Type"] == "AWS::IAM::Policy" and k.startswith(policy_prefix)]
    statements: list[dict[str, Any]] = policy["Properties"]["PolicyDocument"]["Statement"]
    return statements  # the template's own list: an edit changes what the proof reads


def _drop(statement_test: Callable[[dict[str, Any]], bool]) -> Callable[[list[dict[str, Any]]], None]:
    def edit(statements: list[dict[str, Any]]) -> None:
        matching = [s for s in statements if statement_test(s)]
        assert matching, "the statement the twin removes exists (its must case)"
        for statement in matching:
            statements.remove(statement)
    return edit


def _without_config_resource(statements: list[dict[str, Any]]) -> None:
    (statement,) = [s for s in statements if s.get("Sid") == "UpdateTheEndpoint"]
    statement["Resource"] = [r for r in statement["Resource"] if "endpoint-config" not in str(r)]


TWINS = [
    # (configuration, stack, policy, edit, the gap the proof must name)
    pytest.param("assembly", "Approval", "DeployApprovedServiceRoleDefaultPolicy", _without_config_resource,
                 "MISSING: sagemaker:UpdateEndpoint on arn:aws:sagemaker:us-east-1:123456789012:endpoint-config/"
                 "monai-imaging-dev-spleen-async-v3", id="UpdateEndpoint-without-the-new-config"),
    pytest.param("codestar_assembly", "Approval", "DeployApprovedServiceRoleDefaultPolicy",
                 _drop(lambda s: s.get("Sid") == "GrantVolumeKey"), "MISSING: kms:CreateGrant", id="volume-key-grant"),
    pytest.param("assembly", "Training", "StateMachineRoleDefaultPolicy",
                 _drop(lambda s: s.get("Sid") == "ReadTrainingJobTags"), "MISSING: sagemaker:ListTags on *",
                 id="sync-training-ListTags"),
    pytest.param("assembly", "Training", "StateMachineRoleDefaultPolicy",
                 _drop(lambda s: sorted(s.get("Action", [])) == ["kms:Decrypt", "kms:GenerateDataKey"]),
                 "MISSING: kms:GenerateDataKey on arn:aws:kms:", id="notify-states-topic-key"),
    pytest.param("codestar_assembly", "Images", "PipelineSourceCodePipelineActionRoleDefaultPolicy",
                 _drop(lambda s: s.get("Sid") == "UseConnection"),
                 "MISSING: codeconnections:UseConnection", id="codeconnections-prefix"),
    pytest.param("assembly", "Imaging", "ImportCompletedServiceRoleDefaultPolicy",
                 _drop(lambda s: s.get("Action") == "medical-imaging:GetDICOMImportJob"),
                 "MISSING: medical-imaging:GetDICOMImportJob", id="import-job-without-output-location"),
    # The Audit stack's trail delivers to CloudWatch Logs with its own role (service_side._trail_logs).
    pytest.param("assembly", "Audit", "AuditTrailLogsRoleDefaultPolicy",
                 _drop(lambda s: "logs:PutLogEvents" in s.get("Action", [])), "MISSING: logs:PutLogEvents",
                 id="trail-log-delivery"),
    # ImportSeg announces each stored SEG on the results topic: its one sns:Publish grant, named by the recorded call.
    pytest.param("import_assembly", "Inference", "ImportSegServiceRoleDefaultPolicy",
                 _drop(lambda s: s.get("Action") == "sns:Publish"),
                 f"MISSING: sns:Publish on arn:{PARTITION}:sns:us-east-1:123456789012:monai-imaging-dev-results",
                 id="results-topic-publish"),
]


@pytest.mark.parametrize(("assembly_name", "stack", "policy", "edit", "gap"), TWINS)
def test_a_grant_removed_again_is_named(request: pytest.FixtureRequest, calls: list[dict[str, Any]],
                                        assembly_name: str, stack: str, policy: str,
                                        edit: Callable[[list[dict[str, Any]]], None], gap: str) -> None:
    built: Assembly = request.getfixturevalue(assembly_name)
    resolved = ResolvedAssembly.load(built.outdir)
    edit(_statements(resolved, stack, policy))
    gaps = [str(g) for role in prove(resolved, calls).roles.values() for g in role.gaps]
    assert any(g.startswith(gap) for g in gaps), gaps


def test_an_unused_grant_and_an_idle_role_are_named(assembly: Assembly, calls: list[dict[str, Any]]) -> None:
    resolved = ResolvedAssembly.load(assembly.outdir)
    statements = _statements(resolved, "Approval", "DeployApprovedServiceRoleDefaultPolicy")
    statements.append({"Effect": "Allow", "Action": "sagemaker:DeleteEndpoint", "Resource": "*"})
    resources = resolved.stacks["Approval"].template["Resources"]
    resources["IdleRole"] = {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": {
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}}}
    proof = prove(resolved, calls)
    found = problems(proof, World.of(resolved), calls)
    assert any("grants sagemaker:DeleteEndpoint, which no proven request uses" in p for p in found), found
    assert any(p.startswith("Approval/IdleRole (assumed by ['lambda.amazonaws.com']) makes no request") for p in found)


def test_an_explicit_deny_wins_over_the_grant(assembly: Assembly, calls: list[dict[str, Any]]) -> None:
    resolved = ResolvedAssembly.load(assembly.outdir)
    statements = _statements(resolved, "Inference", "RequestInferenceServiceRoleDefaultPolicy")
    statements.append({"Effect": "Deny", "Action": "sagemaker:InvokeEndpointAsync", "Resource": "*"})
    (role,) = [r for k, r in prove(resolved, calls).roles.items() if k.startswith("Inference/RequestInference")]
    assert [g.decision.verdict for g in role.gaps if g.action == "sagemaker:InvokeEndpointAsync"] == ["denied"]


def test_code_that_no_recorded_test_ran_is_named(assembly: Assembly, calls: list[dict[str, Any]]) -> None:
    resolved = ResolvedAssembly.load(assembly.outdir)
    without = [c for c in calls if not c["code"][0].startswith("stacks/inference/runtime/request_inference.py")]
    found = problems(prove(resolved, without), World.of(resolved), without)
    assert any("runs stacks/inference/runtime/request_inference.py as" in p and "no recorded test ran it" in p
               for p in found), found
    # Must: with its recorded calls, the same function is proven.
    assert not [p for p in problems(prove(resolved, calls), World.of(resolved), calls) if "request_inference" in p]


def test_the_proof_judges_deployed_names_not_the_tests(assembly: Assembly, calls: list[dict[str, Any]]) -> None:
    resolved = ResolvedAssembly.load(assembly.outdir)
    world = World.of(resolved)
    mine, names = translated(copy.deepcopy(calls), world)
    buckets = {call["params"]["Bucket"] for entry, call in mine if "Bucket" in call["params"]}
    # Every bucket a platform function or the endpoint touches is one the templates create (the tests' moto
    # buckets, "inbox-bucket" and friends, are translated through the handlers' settings and events).
    assert buckets <= set(world.bucket_keys), buckets - set(world.bucket_keys)
    assert names.clashes == []
