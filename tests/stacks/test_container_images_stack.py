"""Container-images stack: one locked-down ECR repository per container, a pipeline that builds, pushes and records
them (absent with build_images=False)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from stacks.container_images.names import IMAGES, image_uri_parameter_name
from stacks.container_images.stack import ContainerImagesStack
from tests.stacks.assembly import CODESTAR_OVERRIDES, CONNECTION_ARN, PROJECT_ROOT, Assembly, as_list
from tests.stacks.scaffold import Scaffold, alone

STACK = "Images"  # the platform's construct ID for the container-images stack


def build(scaffold: Scaffold, *, build_images: bool = True) -> None:
    scaffold.add(
        ContainerImagesStack,
        STACK,
        logs_key=scaffold.keys.logs_key,
        access_logs_bucket=scaffold.access_logs_bucket,
        network=scaffold.network,
        build_images=build_images,
    )


assembly = alone(build)
codestar_assembly = alone(build, CODESTAR_OVERRIDES)
repositories_only = alone(lambda scaffold: build(scaffold, build_images=False))


def project(assembly: Assembly, name: str) -> dict[str, Any]:
    matches = [v for v in assembly.resources(STACK, "AWS::CodeBuild::Project").values()
               if v["Properties"]["Name"].endswith(name)]
    assert len(matches) == 1, name
    return matches[0]


def test_images_match_the_container_folders_with_a_dockerfile() -> None:
    folders = {p.parent.name for p in (PROJECT_ROOT / "containers").glob("*/Dockerfile")}
    assert set(IMAGES) == folders


def test_images_match_what_the_buildspec_builds() -> None:
    buildspec = (PROJECT_ROOT / "containers" / "buildspec.yml").read_text()
    assert f'IMAGES: "{" ".join(IMAGES)}"' in buildspec


def test_one_repository_per_image_scanned_immutable_kms_and_retained(assembly: Assembly) -> None:
    repositories = assembly.resources(STACK, "AWS::ECR::Repository")
    names = {r["Properties"]["RepositoryName"] for r in repositories.values()}
    assert names == {f"monai-imaging-dev/{image}" for image in IMAGES}
    for logical_id, repository in repositories.items():
        props = repository["Properties"]
        assert props["ImageScanningConfiguration"] == {"ScanOnPush": True}, logical_id
        assert props["ImageTagMutability"] == "IMMUTABLE", logical_id
        assert props["EncryptionConfiguration"]["EncryptionType"] == "KMS", logical_id
        assert props["EncryptionConfiguration"]["KmsKey"]["Fn::GetAtt"][0].startswith("ImagesKey"), logical_id
        assert repository["DeletionPolicy"] == "Retain", logical_id
        assert '"countNumber":20' in props["LifecyclePolicy"]["LifecyclePolicyText"].replace(" ", ""), logical_id


@pytest.mark.parametrize(
    ("fixture", "kind"),
    [
        ("assembly", "S3"),  # default: an archive in a bucket the stack creates, works offline
        ("codestar_assembly", "CodeStarSourceConnection"),  # a Git host through a CodeStar connection
    ],
)
def test_pipeline_source_follows_configuration(request: pytest.FixtureRequest, fixture: str, kind: str) -> None:
    assembly: Assembly = request.getfixturevalue(fixture)
    pipeline = assembly.one(STACK, "AWS::CodePipeline::Pipeline")["Properties"]
    (source_stage,) = [s for s in pipeline["Stages"] if s["Name"] == "Source"]
    (action,) = source_stage["Actions"]
    assert action["ActionTypeId"]["Provider"] == kind
    assert [s["Name"] for s in pipeline["Stages"]] == ["Source", "Build", "Record"]
    assert pipeline["PipelineType"] == "V2"
    if kind == "S3":
        assert action["Configuration"]["S3ObjectKey"] == "source/platform.zip"
        assert "ConnectionArn" not in action["Configuration"]
    else:
        assert action["Configuration"]["ConnectionArn"] == CONNECTION_ARN
        assert action["Configuration"]["FullRepositoryId"] == "example-org/monai-platform"
        assert action["Configuration"]["BranchName"] == "release"


def test_source_bucket_exists_only_for_the_s3_source(assembly: Assembly, codestar_assembly: Assembly) -> None:
    def bucket_ids(a: Assembly) -> set[str]:
        return {k.rstrip("0123456789ABCDEF") for k in a.resources(STACK, "AWS::S3::Bucket")}

    assert bucket_ids(assembly) == {"SourceBucket", "PipelineArtifactsBucket"}
    assert bucket_ids(codestar_assembly) == {"PipelineArtifactsBucket"}


def test_pipeline_buckets_are_kms_encrypted_and_tls_only(assembly: Assembly) -> None:
    for logical_id, bucket in assembly.resources(STACK, "AWS::S3::Bucket").items():
        default = bucket["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
        assert default["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms", logical_id
    policies = assembly.resources(STACK, "AWS::S3::BucketPolicy").values()
    secured = {
        p["Properties"]["Bucket"]["Ref"]
        for p in policies
        if any(s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}} and s["Effect"] == "Deny"
               for s in p["Properties"]["PolicyDocument"]["Statement"])
    }
    assert secured == set(assembly.resources(STACK, "AWS::S3::Bucket"))


def test_build_project_is_privileged_encrypted_logged_and_runs_the_buildspec(assembly: Assembly) -> None:
    props = project(assembly, "build-images")["Properties"]
    assert props["Environment"]["PrivilegedMode"] is True
    assert props["Source"] == {"BuildSpec": "containers/buildspec.yml", "Type": "CODEPIPELINE"}
    assert props["EncryptionKey"]["Fn::GetAtt"][0].startswith("ImagesKey")
    assert props["LogsConfig"]["CloudWatchLogs"]["Status"] == "ENABLED"
    assert props["LogsConfig"]["CloudWatchLogs"]["GroupName"]["Ref"].startswith("BuildLogs")
    variables = {v["Name"]: v["Value"] for v in props["Environment"]["EnvironmentVariables"]}
    # What containers/buildspec.yml reads (AWS_REGION comes from CodeBuild itself).
    assert variables["ECR_REPOSITORY_PREFIX"] == "monai-imaging-dev"
    assert variables["AWS_ACCOUNT_ID"] == {"Ref": "AWS::AccountId"}


def test_build_log_group_uses_the_logs_key(assembly: Assembly) -> None:
    group = assembly.one(STACK, "AWS::Logs::LogGroup")
    assert "KmsKeyId" in group["Properties"]
    assert group["Properties"]["RetentionInDays"] == 365


def test_record_step_is_unprivileged_and_can_write_only_the_image_parameters(assembly: Assembly) -> None:
    props = project(assembly, "record-image-uris")["Properties"]
    assert props["Environment"].get("PrivilegedMode", False) is False  # must not: no docker needed here
    variables = {v["Name"]: v["Value"] for v in props["Environment"]["EnvironmentVariables"]}
    assert variables == {"IMAGES": " ".join(IMAGES), "PARAMETER_PREFIX": "/monai-imaging-dev/images"}
    statements = [
        s for p in assembly.resources(STACK, "AWS::IAM::Policy").values()
        for s in p["Properties"]["PolicyDocument"]["Statement"] if "ssm:PutParameter" in str(s["Action"])
    ]
    (statement,) = statements
    resources = [str(r) for r in statement["Resource"]]
    assert len(resources) == len(IMAGES)
    for image in IMAGES:
        assert any(f"parameter{image_uri_parameter_name('monai-imaging-dev', image)}" in r for r in resources)


@pytest.mark.parametrize(
    ("fixture", "in_vpc"),
    [
        ("assembly", False),  # natGateways 0: no route to PyPI, so builds run outside the VPC (acknowledged)
        ("codestar_assembly", True),  # natGateways 2: builds run in the workload subnets
    ],
)
def test_build_runs_in_the_vpc_only_when_it_has_nat(request: pytest.FixtureRequest, fixture: str, in_vpc: bool) -> None:
    assembly: Assembly = request.getfixturevalue(fixture)
    props = project(assembly, "build-images")["Properties"]
    assert ("VpcConfig" in props) is in_vpc


def test_failed_executions_are_published_to_an_encrypted_topic(codestar_assembly: Assembly) -> None:
    topic = codestar_assembly.one(STACK, "AWS::SNS::Topic")
    assert topic["Properties"]["KmsMasterKeyId"]["Fn::GetAtt"][0].startswith("ImagesKey")
    rule = codestar_assembly.one(STACK, "AWS::Events::Rule")["Properties"]
    assert rule["EventPattern"]["detail"]["state"] == ["FAILED"]
    assert rule["EventPattern"]["detail-type"] == ["CodePipeline Pipeline Execution State Change"]
    (target,) = rule["Targets"]
    assert target["Arn"]["Ref"].startswith("PipelineFailures")
    subscription = codestar_assembly.one(STACK, "AWS::SNS::Subscription")["Properties"]
    assert subscription == {**subscription, "Protocol": "email", "Endpoint": "imaging-ops@example.org"}


def test_only_the_failure_rules_role_may_use_the_images_key_for_the_topic(assembly: Assembly) -> None:
    ((key_id, key),) = assembly.resources(STACK, "AWS::KMS::Key").items()
    assert key["Properties"]["EnableKeyRotation"] is True
    # Must not: a service principal (events, logs) on the key; events.amazonaws.com would admit any account's rules.
    assert not any("Service" in s["Principal"] for s in key["Properties"]["KeyPolicy"]["Statement"])
    # Must: EventBridge publishes with the rule's own role, granted on the topic and this key.
    (target,) = assembly.one(STACK, "AWS::Events::Rule")["Properties"]["Targets"]
    role_id = target["RoleArn"]["Fn::GetAtt"][0]
    (policy,) = [p for p in assembly.resources(STACK, "AWS::IAM::Policy").values()
                 if {"Ref": role_id} in p["Properties"]["Roles"]]
    statements = {json.dumps(s["Resource"]): s["Action"] for s in policy["Properties"]["PolicyDocument"]["Statement"]}
    assert statements == {
        json.dumps(target["Arn"]): "sns:Publish",
        json.dumps({"Fn::GetAtt": [key_id, "Arn"]}): ["kms:Decrypt", "kms:GenerateDataKey*"],
    }


def test_no_role_has_a_managed_full_access_policy(assembly: Assembly) -> None:
    for logical_id, role in assembly.resources(STACK, "AWS::IAM::Role").items():
        assert "FullAccess" not in str(role["Properties"].get("ManagedPolicyArns", [])), logical_id


def test_without_its_own_build_the_stack_keeps_the_repositories_and_their_key_only(
    repositories_only: Assembly, assembly: Assembly
) -> None:
    # The release pipeline's stages: their BuildImages step pushes into these repositories.
    kinds = {r["Type"] for r in repositories_only.templates[STACK]["Resources"].values()}
    assert kinds == {"AWS::ECR::Repository", "AWS::KMS::Key", "AWS::KMS::Alias"}
    assert set(repositories_only.templates[STACK]["Outputs"]) == {
        f"Repository{''.join(p.title() for p in image.split('-'))}Uri" for image in IMAGES
    }
    # Must: with its own build, the pipeline, both projects and the failure rule are there too.
    full = {r["Type"] for r in assembly.templates[STACK]["Resources"].values()}
    assert {"AWS::CodePipeline::Pipeline", "AWS::CodeBuild::Project", "AWS::Events::Rule"} <= full


def test_unknown_image_has_no_parameter_name() -> None:
    with pytest.raises(ValueError, match="unknown image 'jupyter'"):
        image_uri_parameter_name("p", "jupyter")


def test_codebuild_never_bundles_docker_at_synth(assembly: Assembly) -> None:
    # Must not: a container image asset would need a Docker engine at synth.
    assets = list(Path(assembly.outdir).glob("asset.*"))
    assert not [a for a in assets if (a / "Dockerfile").exists()]


def test_a_codeconnections_arn_is_used_with_its_own_prefix(assembly: Assembly, codestar_assembly: Assembly) -> None:
    def source_actions(built: Assembly) -> set[str]:
        policy = built.one(STACK, "AWS::IAM::Policy", "PipelineSourceCodePipelineActionRoleDefaultPolicy")
        return {a for s in policy["Properties"]["PolicyDocument"]["Statement"] for a in as_list(s["Action"])}

    # CDK writes codestar-connections:UseConnection; an arn:...:codeconnections: ARN takes the renamed prefix.
    assert CONNECTION_ARN.split(":")[2] == "codeconnections"
    assert "codeconnections:UseConnection" in source_actions(codestar_assembly)
    # Must not: the S3 source uses no connection.
    assert not {"codeconnections:UseConnection", "codestar-connections:UseConnection"} & source_actions(assembly)


def test_a_codestar_connections_arn_gets_no_second_prefix() -> None:
    from aws_cdk import App, Stack
    from aws_cdk import aws_codepipeline as codepipeline

    from stacks.container_images.build_pipeline import allow_connection_prefix

    pipeline = codepipeline.Pipeline(Stack(App(), "S"), "Pipeline")
    # Returns before looking for a source action at all: the legacy prefix is CDK's own and right.
    allow_connection_prefix(pipeline, "arn:aws:codestar-connections:us-east-1:123456789012:connection/abc")
