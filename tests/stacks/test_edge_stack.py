"""Edge stack: the Greengrass v2 component's generated recipe, the device read policy, the optional deployment."""

from __future__ import annotations

import json
from typing import Any

import pytest

from stacks.config import build_config
from stacks.edge.recipe import RunnerSettings, artifact_key, build_recipe
from stacks.edge.stack import EdgeStack, component_name
from tests.stacks.assembly import THING_GROUP_ARN, Assembly, cdk_json_context
from tests.stacks.scaffold import Scaffold, alone

TOKEN = "<token>"


def build(scaffold: Scaffold) -> None:
    scaffold.add(EdgeStack, "Edge", model_store=scaffold.model_store)


assembly = alone(build)
# A thing group, another version and port (the platform's VARIANT_OVERRIDES carry the thing group too, so
# cdk-nag, cfn-lint and checkov see the deployment: tests/stacks/test_compliance.py).
deployed_assembly = alone(build, {"platform.edge.thingGroupArn": THING_GROUP_ARN,
                                  "platform.edge.componentVersion": "1.2.3", "platform.edge.port": "9000"})


def _recipe(template: dict[str, Any]) -> dict[str, Any]:
    """The inline recipe with every CloudFormation reference (the bucket name) replaced by TOKEN."""
    (component,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::GreengrassV2::ComponentVersion"]
    value = component["Properties"]["InlineRecipe"]
    if isinstance(value, dict):
        value = "".join(part if isinstance(part, str) else TOKEN for part in value["Fn::Join"][1])
    return json.loads(value)


def test_component_recipe_runs_the_bundle_from_the_model_artifacts_bucket(assembly: Assembly) -> None:
    template = assembly.templates["Edge"]
    recipe = _recipe(template)
    config = build_config(cdk_json_context())
    assert recipe["ComponentName"] == component_name(config)
    assert recipe["ComponentVersion"] == config.edge.component_version
    defaults = recipe["ComponentConfiguration"]["DefaultConfiguration"]
    assert (defaults["port"], defaults["threads"], defaults["queue"], defaults["maxRequestMb"]) == (
        config.edge.port, config.edge.threads, config.edge.queue, config.edge.max_request_mb)
    assert defaults["host"] == "127.0.0.1"  # loopback unless a site opts in
    (manifest,) = recipe["Manifests"]
    (artifact,) = manifest["Artifacts"]
    assert artifact["Uri"] == f"s3://{TOKEN}/{artifact_key(config.edge.artifact_prefix, config.edge.component_version)}"
    assert artifact["Unarchive"] == "ZIP"
    # The bucket is the data stack's model-artifacts bucket, by cross-stack reference.
    joined = json.dumps(next(r for r in template["Resources"].values()
                             if r["Type"] == "AWS::GreengrassV2::ComponentVersion"))
    assert "ModelArtifacts" in joined
    assert not assembly.resources("Edge", "AWS::GreengrassV2::Deployment")  # no thing group configured


def test_device_policy_reads_only_this_bundle_and_decrypts_only_via_s3(assembly: Assembly) -> None:
    (policy,) = assembly.resources("Edge", "AWS::IAM::ManagedPolicy").values()
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    assert sorted(s["Action"] for s in statements) == ["kms:Decrypt", "s3:GetObject"]
    read = next(s for s in statements if s["Action"] == "s3:GetObject")
    assert read["Resource"]["Fn::Join"][1][-1] == "/edge/spleen/1.0.0/bundle.zip"  # one object, no wildcard
    decrypt = next(s for s in statements if s["Action"] == "kms:Decrypt")
    assert "kms:ViaService" in decrypt["Condition"]["StringEquals"]
    assert "*" not in json.dumps(policy)
    outputs = assembly.templates["Edge"]["Outputs"]
    assert {"ComponentArn", "BundleS3Uri", "DevicePolicyArn"} <= {k.split("Export")[0] for k in outputs}


def test_a_thing_group_gets_a_deployment_of_this_version(deployed_assembly: Assembly) -> None:
    template = deployed_assembly.templates["Edge"]
    (deployment,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::GreengrassV2::Deployment"]
    properties = deployment["Properties"]
    assert properties["TargetArn"] == THING_GROUP_ARN
    ((name, spec),) = properties["Components"].items()
    assert name == _recipe(template)["ComponentName"]
    assert spec["ComponentVersion"] == {"Fn::GetAtt": ["Component", "ComponentVersion"]}
    recipe = _recipe(template)
    assert recipe["ComponentVersion"] == "1.2.3"
    assert recipe["ComponentConfiguration"]["DefaultConfiguration"]["port"] == 9000
    assert recipe["Manifests"][0]["Artifacts"][0]["Uri"].endswith("/edge/spleen/1.2.3/bundle.zip")


@pytest.mark.parametrize(
    ("settings", "expected_run"),
    [
        (RunnerSettings(port=8080, threads=2, queue=2, max_request_mb=256), "--port {configuration:/port}"),
        (RunnerSettings(port=9000, threads=1, queue=0, max_request_mb=64, workers=2), "--workers {configuration:/workers}"),
    ],
    ids=["defaults", "custom"],
)
def test_recipe_reads_its_configuration_at_run_time(settings: RunnerSettings, expected_run: str) -> None:
    recipe = build_recipe(component_name="c", component_version="1.0.0", artifact_uri="s3://b/edge/1.0.0/bundle.zip",
                          settings=settings, description="d")
    lifecycle = recipe["Manifests"][0]["Lifecycle"]
    assert expected_run in lifecycle["Run"]["Script"]
    assert "{configuration:/pipArguments}" in lifecycle["Install"]["Script"]  # offline sites: a local wheelhouse
    assert lifecycle["Setenv"]["PYTHONPATH"] == "{artifacts:decompressedPath}/bundle/runner"
    assert not lifecycle["Run"]["RequiresPrivilege"]
    assert recipe["ComponentConfiguration"]["DefaultConfiguration"] == settings.to_json()
    json.dumps(recipe)  # serialisable as the inline recipe
