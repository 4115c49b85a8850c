"""The release pipeline (`-c pipeline=true`): stage order, synth step, image builds, approval, cross-account, compliance.

Synthesized once per session with a cross-account layout (pipeline in one account, prod in another, dev in the
pipeline's), the way a team would configure it; the compliance checks are tests/stacks/lint.py's, as in test_compliance.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from stacks.config import ConfigError, build_pipeline_config, pipeline_enabled
from stacks.pipeline.stack import SYNTH_COMMANDS
from tests.stacks.assembly import PIPELINE_ACCOUNT, PROD_ACCOUNT, PROJECT_ROOT, Assembly, cdk_json_context
from tests.stacks.lint import CFN_LINT_IGNORED, acknowledgment_listing, assert_cfn_lint_clean, assert_checkov_clean

PIPELINE_TEMPLATE = "Pipeline"
# cfn-lint's E3703 (prefer Fn::Sub) fires on the bootstrap-role ARNs that CDK Pipelines renders with Fn::Join.
PIPELINE_CFN_LINT_IGNORED = {
    "E3703": "aws-cdk-lib's CDK Pipelines renders the stage bootstrap-role ARNs with Fn::Join; the template is "
    "generated, and Fn::Join builds the same ARN.",
}


def pipeline_stages(assembly: Assembly) -> dict[str, list[dict[str, Any]]]:
    (pipeline,) = assembly.resources(PIPELINE_TEMPLATE, "AWS::CodePipeline::Pipeline").values()
    return {stage["Name"]: stage["Actions"] for stage in pipeline["Properties"]["Stages"]}


def run_order(actions: list[dict[str, Any]], name_fragment: str) -> int:
    (order,) = [a["RunOrder"] for a in actions if name_fragment in a["Name"]]
    return int(order)


def test_only_the_pipeline_stack_is_top_level_and_the_stages_are_nested_assemblies(pipeline_assembly: Assembly) -> None:
    assert set(pipeline_assembly.templates) == {PIPELINE_TEMPLATE}
    manifest = json.loads((pipeline_assembly.outdir / "manifest.json").read_text())
    nested = {k for k, v in manifest["artifacts"].items() if v["type"] == "cdk:cloud-assembly"}
    assert nested == {"assembly-Pipeline-Dev", "assembly-Pipeline-Prod"}


def test_stages_run_source_synth_selfmutate_assets_dev_then_prod(pipeline_assembly: Assembly) -> None:
    assert list(pipeline_stages(pipeline_assembly)) == ["Source", "Build", "UpdatePipeline", "Assets", "Dev", "Prod"]


def test_prod_starts_with_a_manual_approval_and_dev_has_none(pipeline_assembly: Assembly) -> None:
    stages = pipeline_stages(pipeline_assembly)
    approvals = {
        name: [a["Name"] for a in actions if a["ActionTypeId"]["Category"] == "Approval"]
        for name, actions in stages.items()
    }
    assert approvals["Prod"] == ["Promote-prod"]
    assert approvals["Dev"] == []
    assert run_order(stages["Prod"], "Promote-prod") < min(
        a["RunOrder"] for a in stages["Prod"] if a["ActionTypeId"]["Category"] == "Deploy"
    )


def image_uri_readers(assembly: Assembly, stage: str) -> set[str]:
    """Stack names in the stage's nested assembly that resolve an image URI from SSM at deploy time."""
    nested = assembly.outdir / f"assembly-Pipeline-{stage}"
    readers = set()
    for artifact in json.loads((nested / "manifest.json").read_text())["artifacts"].values():
        if artifact["type"] != "aws:cloudformation:stack":
            continue
        template = json.loads((nested / artifact["properties"]["templateFile"]).read_text())
        defaults = [str(p.get("Default")) for p in template.get("Parameters", {}).values()]
        if any(d.startswith(f"/monai-imaging-{stage.lower()}/images/") for d in defaults):
            readers.add(artifact["properties"]["stackName"])
    return readers


@pytest.mark.parametrize("stage", ["Dev", "Prod"])
def test_images_are_built_after_the_images_stack_and_before_every_image_reader(
    pipeline_assembly: Assembly, stage: str
) -> None:
    actions = pipeline_stages(pipeline_assembly)[stage]
    prefix = f"monai-imaging-{stage.lower()}"
    build = run_order(actions, f"BuildImages-{stage.lower()}")
    assert run_order(actions, f"{prefix}-images.Deploy") < build
    readers = image_uri_readers(pipeline_assembly, stage)
    assert f"{prefix}-serving" in readers  # the must case: the async endpoint reads its image URI
    for reader in readers:
        assert build < run_order(actions, f"{reader}.Prepare"), f"{reader} deploys before its images exist"


def test_synth_step_runs_make_test_then_the_pipeline_synth_on_python_311_and_node_20(pipeline_assembly: Assembly) -> None:
    projects = pipeline_assembly.resources(PIPELINE_TEMPLATE, "AWS::CodeBuild::Project")
    (synth,) = [p for k, p in projects.items() if "Synth" in k]
    spec = json.loads(synth["Properties"]["Source"]["BuildSpec"])
    assert spec["phases"]["install"]["runtime-versions"] == {"python": "3.11", "nodejs": "20"}
    assert spec["phases"]["build"]["commands"] == SYNTH_COMMANDS
    assert SYNTH_COMMANDS[0] == "make test"
    assert "-c pipeline=true" in SYNTH_COMMANDS[1]
    assert spec["artifacts"]["base-directory"] == "cdk.out"


def test_image_builds_are_privileged_and_push_only_to_their_stage_account(pipeline_assembly: Assembly) -> None:
    template = pipeline_assembly.templates[PIPELINE_TEMPLATE]
    projects = pipeline_assembly.resources(PIPELINE_TEMPLATE, "AWS::CodeBuild::Project")
    builds = {k: p for k, p in projects.items() if "BuildImages" in k}
    assert len(builds) == 2
    # Must: docker needs privileged mode on the image builds; must not: any other project gets it.
    assert all(p["Properties"]["Environment"]["PrivilegedMode"] for p in builds.values())
    assert not any(p["Properties"]["Environment"].get("PrivilegedMode") for k, p in projects.items() if k not in builds)
    policies = json.dumps(pipeline_assembly.resources(PIPELINE_TEMPLATE, "AWS::IAM::Policy"))
    assert f":ecr:us-east-1:{PROD_ACCOUNT}:repository/monai-imaging-prod/pytorch-inference" in policies
    assert f":ecr:us-east-1:{PIPELINE_ACCOUNT}:repository/monai-imaging-dev/pytorch-inference" in policies
    assert f"{PROD_ACCOUNT}:repository/monai-imaging-dev" not in policies
    assert "arn:aws:" not in json.dumps({k: template["Resources"][k] for k in builds})


def test_cross_account_deploys_assume_the_stage_accounts_bootstrap_roles(pipeline_assembly: Assembly) -> None:
    stages = pipeline_stages(pipeline_assembly)
    prod_roles = json.dumps([a.get("RoleArn") for a in stages["Prod"] if a["ActionTypeId"]["Category"] == "Deploy"])
    dev_roles = json.dumps([a.get("RoleArn") for a in stages["Dev"] if a["ActionTypeId"]["Category"] == "Deploy"])
    assert f"cdk-hnb659fds-deploy-role-{PROD_ACCOUNT}-us-east-1" in prod_roles
    assert PROD_ACCOUNT not in dev_roles
    # The artifacts are encrypted with the pipeline's customer-managed key, which the prod account may use.
    (key,) = pipeline_assembly.resources(PIPELINE_TEMPLATE, "AWS::KMS::Key").values()
    assert key["Properties"]["EnableKeyRotation"] is True
    assert PROD_ACCOUNT in json.dumps(key["Properties"]["KeyPolicy"])


def test_pipeline_synth_has_no_unacknowledged_nag_finding(pipeline_assembly: Assembly) -> None:
    report = json.loads((pipeline_assembly.outdir / "validation-report.json").read_text())
    assert report["pluginReports"], "the nag packs did not run over the pipeline"
    for plugin in report["pluginReports"]:
        assert plugin["violations"] == [], f"{plugin['pluginName']}: {plugin['violations']}"
    suppressed = [
        f["ruleName"] for p in report["pluginReports"] for f in p["suppressedViolations"]
        if any(c["constructPath"].startswith("Pipeline/Pipeline/") for c in f["violatingConstructs"])
    ]
    # The generated roles' wildcards are acknowledged finding by finding, never with a bare rule name.
    assert any(rule.startswith("AwsSolutions-IAM5[") for rule in suppressed)


def test_pipeline_acknowledgments_are_scoped_and_reasoned(pipeline_assembly: Assembly) -> None:
    assert any(entry.startswith("/Pipeline/Pipeline/") for entry in acknowledgment_listing(pipeline_assembly))


@pytest.mark.compliance
def test_pipeline_template_passes_cfn_lint(pipeline_assembly: Assembly) -> None:
    assert_cfn_lint_clean(pipeline_assembly.template_files(), {**CFN_LINT_IGNORED, **PIPELINE_CFN_LINT_IGNORED})


@pytest.mark.compliance
def test_pipeline_templates_pass_checkov(pipeline_assembly: Assembly) -> None:
    # The folder, not the top-level template: checkov also scans the stages' nested assemblies under it.
    assert_checkov_clean([pipeline_assembly.outdir], min_passed=50)


@pytest.mark.parametrize(
    ("context_value", "expected"),
    [
        (None, False),  # absent: the default synth builds the stage's stacks
        ("true", True),  # -c pipeline=true
        ("false", False),  # -c pipeline=false
        (True, True),  # a JSON boolean in cdk.json or cdk.context.json
    ],
)
def test_pipeline_switch_parses_the_context_value(context_value: Any, expected: bool) -> None:
    context = {} if context_value is None else {"pipeline": context_value}
    assert pipeline_enabled(context) is expected


def test_pipeline_switch_refuses_a_non_boolean() -> None:
    with pytest.raises(ConfigError, match="context key 'pipeline' must be true or false, got 'yes'"):
        pipeline_enabled({"pipeline": "yes"})


def test_default_pipeline_config_deploys_dev_then_prod_from_the_embedded_config() -> None:
    config = build_pipeline_config(cdk_json_context())
    assert config.stages == ("dev", "prod")
    assert config.account is None
    assert config.region == "us-east-1"


def test_image_build_spec_is_the_containers_buildspec_plus_the_ssm_record() -> None:
    from stacks.container_images.build_pipeline import RECORD_COMMANDS
    from stacks.pipeline.stack import image_build_spec

    spec = image_build_spec()
    assert spec["phases"]["post_build"]["commands"][-len(RECORD_COMMANDS):] == RECORD_COMMANDS
    assert any("docker push" in command for command in spec["phases"]["post_build"]["commands"])
    assert "artifacts" not in spec


def test_cdk_ls_with_the_switch_lists_the_pipeline_and_every_stage_stack(tmp_path: Path, assembly: Assembly) -> None:
    # app.py's switch as users flip it; without it, test_cli's listing shows the stage's stacks alone.
    result = subprocess.run(
        ["npx", "--no-install", "cdk", "ls", "-c", "pipeline=true", "--output", str(tmp_path)],
        cwd=PROJECT_ROOT, capture_output=True, text=True, check=False, timeout=300,
        env={**os.environ, "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    expected = ["Pipeline (monai-imaging-release-pipeline)"] + [
        f"Pipeline/{stage.title()}/{stack_id} (monai-imaging-{stage}-{stack_id.lower()})"
        for stage in ("dev", "prod")
        for stack_id in assembly.templates
    ]
    assert sorted(result.stdout.splitlines()) == sorted(expected)


# Cross-account image pushes: Prod (PROD_ACCOUNT) differs from the pipeline's account, Dev is environment-agnostic
# (so unknown at synth: nothing is added), and the default stage app has no pipeline account at all.
def stage_template(assembly: Assembly, stage: str, stack_id: str) -> dict[str, Any]:
    nested = assembly.outdir / f"assembly-Pipeline-{stage}"
    for artifact in json.loads((nested / "manifest.json").read_text())["artifacts"].values():
        if artifact["type"] == "aws:cloudformation:stack" and artifact["displayName"] == f"Pipeline/{stage}/{stack_id}":
            return dict(json.loads((nested / artifact["properties"]["templateFile"]).read_text()))
    raise AssertionError(f"no {stack_id} stack in the {stage} stage")


def of_type(template: dict[str, Any], type_: str) -> list[dict[str, Any]]:
    return [r for r in template["Resources"].values() if r["Type"] == type_]


def is_pipeline_account_root(principal: Any) -> bool:
    """The pipeline account's root principal, whether CDK renders the partition literally or as a Ref."""
    return (
        isinstance(principal, dict)
        and set(principal) == {"AWS"}
        and json.dumps(principal["AWS"]).endswith(f':iam::{PIPELINE_ACCOUNT}:root"')
        and json.dumps(principal["AWS"]).count(":root") == 1
    )


def writer_roles(template: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in of_type(template, "AWS::IAM::Role") if r["Properties"].get("RoleName") == "monai-imaging-prod-image-uri-writer"]


def image_step_spec_and_policy(assembly: Assembly, stage: str) -> tuple[str, str]:
    projects = assembly.resources(PIPELINE_TEMPLATE, "AWS::CodeBuild::Project")
    (project,) = [p for k, p in projects.items() if f"BuildImages{stage}" in k]
    role_id = project["Properties"]["ServiceRole"]["Fn::GetAtt"][0]
    (policy,) = [
        p for p in assembly.resources(PIPELINE_TEMPLATE, "AWS::IAM::Policy").values()
        if {"Ref": role_id} in p["Properties"]["Roles"]
    ]
    return json.dumps(project["Properties"]["Source"]["BuildSpec"]), json.dumps(policy["Properties"]["PolicyDocument"])


def test_cross_account_stage_repositories_admit_only_the_pipeline_account(pipeline_assembly: Assembly) -> None:
    repositories = of_type(stage_template(pipeline_assembly, "Prod", "Images"), "AWS::ECR::Repository")
    assert len(repositories) == 3
    for repository in repositories:
        (statement,) = repository["Properties"]["RepositoryPolicyText"]["Statement"]
        assert is_pipeline_account_root(statement["Principal"])
        assert statement["Effect"] == "Allow"
        assert sorted(statement["Action"]) == sorted([
            "ecr:BatchCheckLayerAvailability", "ecr:CompleteLayerUpload", "ecr:InitiateLayerUpload", "ecr:PutImage",
            "ecr:UploadLayerPart", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer",
        ])


def test_cross_account_stage_key_lets_the_pipeline_account_encrypt_only_through_ecr(pipeline_assembly: Assembly) -> None:
    (key,) = of_type(stage_template(pipeline_assembly, "Prod", "Images"), "AWS::KMS::Key")
    statements = [s for s in key["Properties"]["KeyPolicy"]["Statement"] if is_pipeline_account_root(s.get("Principal"))]
    assert len(statements) == 1
    (statement,) = statements
    assert sorted(statement["Action"]) == ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey*"]
    assert statement["Condition"] == {"StringEquals": {"kms:ViaService": "ecr.us-east-1.amazonaws.com"}}


def test_cross_account_writer_role_trusts_the_pipeline_account_and_puts_only_the_image_uris(
    pipeline_assembly: Assembly,
) -> None:
    template = stage_template(pipeline_assembly, "Prod", "Images")
    (role,) = writer_roles(template)
    (trust,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert is_pipeline_account_root(trust["Principal"])
    assert trust["Action"] == "sts:AssumeRole"
    role_id = next(k for k, r in template["Resources"].items() if r is role)
    (policy,) = [p for p in of_type(template, "AWS::IAM::Policy") if {"Ref": role_id} in p["Properties"]["Roles"]]
    (statement,) = policy["Properties"]["PolicyDocument"]["Statement"]
    assert sorted(statement["Action"]) == ["ssm:GetParameter", "ssm:PutParameter"]
    resources = json.dumps(statement["Resource"])
    assert len(statement["Resource"]) == 3
    for image in ("pytorch-inference", "triton-inference", "training"):
        assert f":parameter/monai-imaging-prod/images/{image}/uri" in resources
    assert "*" not in resources


def test_cross_account_image_step_assumes_exactly_the_stage_writer_role(pipeline_assembly: Assembly) -> None:
    spec, policy = image_step_spec_and_policy(pipeline_assembly, "prod")
    role_arn = f":iam::{PROD_ACCOUNT}:role/monai-imaging-prod-image-uri-writer"
    assert role_arn in spec
    assert "AWS_PROFILE=image-uri-writer" in spec
    statements = json.loads(policy)["Statement"]
    (assume,) = [s for s in statements if s["Action"] == "sts:AssumeRole"]
    assert role_arn in json.dumps(assume["Resource"])
    assert "*" not in json.dumps(assume["Resource"])
    # Must not: a direct SSM write into another account, which IAM there would refuse anyway.
    assert not any("ssm:PutParameter" in json.dumps(s["Action"]) for s in statements)


def test_same_or_unknown_account_stages_get_no_cross_account_access(
    pipeline_assembly: Assembly, assembly: Assembly
) -> None:
    dev = stage_template(pipeline_assembly, "Dev", "Images")  # environment-agnostic: the account is unknown
    default = assembly.templates["Images"]  # the default stage app: no pipeline account
    for template in (dev, default):
        assert not any("RepositoryPolicyText" in r["Properties"] for r in of_type(template, "AWS::ECR::Repository"))
        assert "kms:ViaService" not in json.dumps(of_type(template, "AWS::KMS::Key"))
        assert not any("image-uri-writer" in json.dumps(r) for r in of_type(template, "AWS::IAM::Role"))
    spec, policy = image_step_spec_and_policy(pipeline_assembly, "dev")
    assert "sts:AssumeRole" not in policy
    assert "image-uri-writer" not in spec
    assert "ssm:PutParameter" in policy


# The stage's Images stack builds nothing itself: the release pipeline's BuildImages-<stage> step does, and a
# second build of one commit would collide on the immutable tags.
STAGE_BUILD_ALARMS = {"ImagePipelineFailures", "BuildImagesFailures", "RecordImageUrisFailures"}


@pytest.mark.parametrize("stage", ["Dev", "Prod"])
def test_stage_images_stack_keeps_the_repositories_but_has_no_pipeline_or_builds(
    pipeline_assembly: Assembly, stage: str
) -> None:
    template = stage_template(pipeline_assembly, stage, "Images")
    assert len(of_type(template, "AWS::ECR::Repository")) == 3  # must: the step pushes into these
    assert len(of_type(template, "AWS::KMS::Key")) == 1
    for type_ in ("AWS::CodePipeline::Pipeline", "AWS::CodeBuild::Project", "AWS::S3::Bucket", "AWS::SNS::Topic",
                  "AWS::Events::Rule", "AWS::Logs::LogGroup"):
        assert of_type(template, type_) == [], type_


def test_default_images_stack_builds_its_own_images(assembly: Assembly) -> None:
    # The must case beside the stage's must-not: without the release pipeline, the stack's pipeline builds.
    assert len(assembly.resources("Images", "AWS::CodePipeline::Pipeline")) == 1
    assert len(assembly.resources("Images", "AWS::CodeBuild::Project")) == 2


@pytest.mark.parametrize("stage", ["Dev", "Prod"])
def test_stage_monitoring_has_no_build_alarms_but_every_other(pipeline_assembly: Assembly, stage: str) -> None:
    names = {
        a["Properties"]["AlarmName"].removeprefix(f"monai-imaging-{stage.lower()}-")
        for a in of_type(stage_template(pipeline_assembly, stage, "Monitoring"), "AWS::CloudWatch::Alarm")
    }
    assert not names & STAGE_BUILD_ALARMS
    assert {"BacklogSize", "ImportJobFailures", "InferenceDeadLettersDepth"} <= names


@pytest.mark.compliance
def test_cross_account_images_template_passes_cfn_lint(pipeline_assembly: Assembly, tmp_path: Path) -> None:
    # The compliance test lints the top-level templates only; the stages' are nested assemblies.
    template = tmp_path / "images.template.json"
    template.write_text(json.dumps(stage_template(pipeline_assembly, "Prod", "Images")))
    assert_cfn_lint_clean([template])
