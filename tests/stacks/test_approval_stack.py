"""Approval stack: an approved package of the training workflow's group deploys to the async endpoint, guarded by
rollback alarms."""

from __future__ import annotations

import pytest

from model_code.triton_model.package import render_config
from stacks.approval.runtime.deploy_approved import TRITON_NAME_PLACEHOLDER
from stacks.approval.stack import ApprovalStack
from tests.stacks.assembly import Assembly, as_list, flatten, statements
from tests.stacks.scaffold import Scaffold, alone

APPROVAL = "Approval"


def build(scaffold: Scaffold) -> None:
    scaffold.add(
        ApprovalStack,
        APPROVAL,
        keys=scaffold.keys,
        network=scaffold.network,
        model_store=scaffold.model_store,
        endpoint=scaffold.endpoint,
        registry=scaffold.registry,
    )


assembly = alone(build)
# An instance type without NVMe storage: the async endpoint's config names the data key as its volume key.
volume_key_assembly = alone(build, {"platform.serving.asyncInstanceType": "ml.m5.xlarge"})


def test_the_rule_sends_only_approvals_of_our_group_to_the_function(assembly: Assembly) -> None:
    rule = assembly.one(APPROVAL, "AWS::Events::Rule", "PackageApprovedRule")
    assert rule["Properties"]["EventPattern"] == {
        "source": ["aws.sagemaker"],
        "detail-type": ["SageMaker Model Package State Change"],
        "detail": {"ModelPackageGroupName": ["monai-imaging-dev-spleen"], "ModelApprovalStatus": ["Approved"]},
    }
    [target] = rule["Properties"]["Targets"]
    assert "DeployApproved" in flatten(target["Arn"])
    assert "DeadLetterQueue" in flatten(target["DeadLetterConfig"]["Arn"])


def test_the_deploy_function_is_in_the_vpc_serialized_and_configured(assembly: Assembly) -> None:
    function = assembly.one(APPROVAL, "AWS::Lambda::Function", "DeployApproved")
    props = function["Properties"]
    assert props["VpcConfig"]["SubnetIds"]
    assert "DeadLetterQueue" in flatten(props["DeadLetterConfig"]["TargetArn"])
    assert props["ReservedConcurrentExecutions"] == 1
    env = props["Environment"]["Variables"]
    assert env["DEPLOYMENT_STRATEGY"] == "canary"
    assert env["TRITON_CONFIG"] == render_config(TRITON_NAME_PLACEHOLDER)
    alarms = {a["Properties"]["AlarmName"] for a in assembly.resources(APPROVAL, "AWS::CloudWatch::Alarm").values()}
    assert set(env["ROLLBACK_ALARMS"].split(",")) == alarms == {
        "monai-imaging-dev-spleen-async-deploy-invocationfailures",
        "monai-imaging-dev-spleen-async-deploy-modelerrors",
    }


def test_the_deploy_function_writes_only_where_endpoints_read(assembly: Assembly) -> None:
    policy = statements(assembly.templates[APPROVAL], "DeployApprovedServiceRole")
    puts = [r for s in policy if "s3:PutObject" in as_list(s["Action"]) for r in as_list(s["Resource"])]
    assert sorted(r.split(">", 1)[1] for r in puts) == ["/models/spleen/*", "/models/triton/*"]
    by_sid = {s.get("Sid"): s for s in policy}
    assert by_sid["PassEndpointRole"]["Condition"] == {
        "StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}
    }
    assert "EndpointRole" in flatten(by_sid["PassEndpointRole"]["Resource"])
    creates = as_list(by_sid["CreateVersionedModels"]["Resource"])
    assert all(r.endswith("/monai-imaging-dev-spleen-async-v*") for r in creates)
    # Must not: any service-wide SageMaker or S3 action.
    assert not {a for s in policy for a in as_list(s["Action"])} & {"sagemaker:*", "s3:*", "iam:*"}


def test_the_endpoint_role_may_read_exactly_the_rollback_alarms(assembly: Assembly) -> None:
    policy = assembly.one(APPROVAL, "AWS::IAM::Policy", "EndpointReadsRollbackAlarms")
    [role] = policy["Properties"]["Roles"]
    assert "EndpointRole" in flatten(role)  # must: the serving stack's endpoint role, imported
    [statement] = flatten(policy["Properties"]["PolicyDocument"]["Statement"])
    assert statement["Action"] == "cloudwatch:DescribeAlarms"
    assert sorted(r.rsplit(":alarm:", 1)[1] for r in statement["Resource"]) == [
        "monai-imaging-dev-spleen-async-deploy-invocationfailures",
        "monai-imaging-dev-spleen-async-deploy-modelerrors",
    ]


def test_the_update_may_deploy_only_the_versioned_configs(assembly: Assembly) -> None:
    by_sid = {s.get("Sid"): s for s in statements(assembly.templates[APPROVAL], "DeployApprovedServiceRole")}
    update = by_sid["UpdateTheEndpoint"]
    assert update["Action"] == "sagemaker:UpdateEndpoint"
    # UpdateEndpoint is authorized against the endpoint and the config it deploys (the IAM proof found the second
    # missing): the function's own -v<version> configs, not any config.
    assert sorted(r.rsplit(":", 1)[1] for r in update["Resource"]) == [
        "endpoint-config/monai-imaging-dev-spleen-async-v*", "endpoint/monai-imaging-dev-spleen-async"]


@pytest.mark.parametrize(("fixture", "grants"), [("assembly", False), ("volume_key_assembly", True)])
def test_the_volume_key_grant_follows_the_endpoint_config(request: pytest.FixtureRequest, fixture: str,
                                                          grants: bool) -> None:
    built: Assembly = request.getfixturevalue(fixture)
    by_sid = {s.get("Sid"): s for s in statements(built.templates[APPROVAL], "DeployApprovedServiceRole")}
    assert ("GrantVolumeKey" in by_sid) == grants
    if grants:
        statement = by_sid["GrantVolumeKey"]
        assert statement["Action"] == "kms:CreateGrant"
        assert "KeysDataKey" in statement["Resource"]
        assert statement["Condition"] == {"Bool": {"kms:GrantIsForAWSResource": "true"}}
