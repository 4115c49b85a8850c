"""Serving stack: the async endpoint in the VPC with encrypted outputs, and autoscaling that wakes from zero."""

from __future__ import annotations

import json
from typing import Any

import pytest

from stacks.serving.roles import has_instance_storage
from tests.stacks.assembly import Assembly
from tests.stacks.test_images_stack import synthesize_codestar_variant


@pytest.fixture
def m5_assembly() -> Assembly:
    """asyncInstanceType ml.m5.xlarge (no local storage) and NAT on: see test_images_stack.CODESTAR_OVERRIDES."""
    return synthesize_codestar_variant()


def only(assembly: Assembly, type_: str) -> dict[str, Any]:
    resources = assembly.resources("Serving", type_)
    assert len(resources) == 1, f"expected one {type_}, found {list(resources)}"
    return next(iter(resources.values()))["Properties"]


def statements(assembly: Assembly) -> list[dict[str, Any]]:
    policies = assembly.resources("Serving", "AWS::IAM::Policy").values()
    return [s for p in policies for s in p["Properties"]["PolicyDocument"]["Statement"]]


def actions_of(statement: dict[str, Any]) -> list[str]:
    action = statement["Action"]
    return action if isinstance(action, list) else [action]


def test_model_runs_the_ssm_recorded_image_and_the_configured_archive(assembly: Assembly) -> None:
    model = only(assembly, "AWS::SageMaker::Model")
    container = model["PrimaryContainer"]
    (parameter_name,) = [
        p for p in assembly.templates["Serving"]["Parameters"].values()
        if p.get("Default") == "/monai-imaging-dev/images/pytorch-inference/uri"
    ]
    assert parameter_name["Type"] == "AWS::SSM::Parameter::Value<String>"  # resolved at deploy, no synth lookup
    assert container["Image"]["Ref"] in assembly.templates["Serving"]["Parameters"]
    assert json.dumps(container["ModelDataUrl"]).endswith('"/models/spleen/model.tar.gz"]]}')


def test_model_is_in_the_vpc_workload_subnets_behind_its_own_security_group(assembly: Assembly) -> None:
    model = only(assembly, "AWS::SageMaker::Model")
    assert len(model["VpcConfig"]["Subnets"]) == 2  # one workload subnet per AZ (maxAzs 2)
    (group,) = model["VpcConfig"]["SecurityGroupIds"]
    assert group["Fn::GetAtt"][0].startswith("EndpointSecurityGroup")
    security_group = only(assembly, "AWS::EC2::SecurityGroup")
    assert "SecurityGroupIngress" not in security_group  # must not: nothing connects in
    (egress,) = security_group["SecurityGroupEgress"]
    assert (egress["FromPort"], egress["ToPort"]) == (443, 443)


def test_endpoint_config_is_async_with_encrypted_outputs_and_both_topics(assembly: Assembly) -> None:
    config = only(assembly, "AWS::SageMaker::EndpointConfig")
    (variant,) = config["ProductionVariants"]
    assert variant["InstanceType"] == "ml.g4dn.xlarge"
    assert variant["InitialInstanceCount"] == 1  # SageMaker creates with one; scaling takes it to 0
    output = config["AsyncInferenceConfig"]["OutputConfig"]
    assert json.dumps(output["S3OutputPath"]).endswith('"/output/"]]}')
    assert json.dumps(output["S3FailurePath"]).endswith('"/failures/"]]}')
    assert "KmsKeyId" in output
    topics = output["NotificationConfig"]
    assert topics["SuccessTopic"]["Ref"].startswith("InferenceSucceeded")
    assert topics["ErrorTopic"]["Ref"].startswith("InferenceFailed")
    assert config["AsyncInferenceConfig"]["ClientConfig"] == {"MaxConcurrentInvocationsPerInstance": 1}


@pytest.mark.parametrize(
    ("fixture", "volume_key"),
    [
        ("assembly", False),  # ml.g4dn has NVMe instance storage: SageMaker refuses a volume KmsKeyId
        ("m5_assembly", True),  # ml.m5 has EBS only: the volume is encrypted with the data key
    ],
)
def test_volume_key_is_set_wherever_sagemaker_accepts_one(
    request: pytest.FixtureRequest, fixture: str, volume_key: bool
) -> None:
    assembly: Assembly = request.getfixturevalue(fixture)
    config = only(assembly, "AWS::SageMaker::EndpointConfig")
    assert ("KmsKeyId" in config) is volume_key


@pytest.mark.parametrize(
    ("instance_type", "expected"),
    [
        ("ml.g4dn.xlarge", True),  # "dn": NVMe
        ("ml.m5d.large", True),  # "d": NVMe
        ("ml.g5.2xlarge", True),  # NVMe-only family
        ("ml.m5.xlarge", False),  # EBS only
        ("ml.c5.xlarge", False),
        ("ml.p3.2xlarge", False),
    ],
)
def test_instance_storage_families(instance_type: str, expected: bool) -> None:
    assert has_instance_storage(instance_type) is expected


def test_topics_are_encrypted_with_the_data_key(assembly: Assembly) -> None:
    topics = assembly.resources("Serving", "AWS::SNS::Topic")
    assert len(topics) == 2
    for logical_id, topic in topics.items():
        assert "KmsMasterKeyId" in topic["Properties"], logical_id


def test_scalable_target_follows_configuration_and_can_reach_zero(assembly: Assembly) -> None:
    target = only(assembly, "AWS::ApplicationAutoScaling::ScalableTarget")
    assert (target["MinCapacity"], target["MaxCapacity"]) == (0, 2)
    assert target["ResourceId"] == "endpoint/monai-imaging-dev-spleen-async/variant/AllTraffic"
    assert target["ScalableDimension"] == "sagemaker:variant:DesiredInstanceCount"


def policies(assembly: Assembly) -> dict[str, dict[str, Any]]:
    found = assembly.resources("Serving", "AWS::ApplicationAutoScaling::ScalingPolicy").values()
    return {p["Properties"]["PolicyType"]: p["Properties"] for p in found}


def test_target_tracking_follows_the_backlog_per_instance(assembly: Assembly) -> None:
    config = policies(assembly)["TargetTrackingScaling"]["TargetTrackingScalingPolicyConfiguration"]
    assert config["TargetValue"] == 2
    metric = config["CustomizedMetricSpecification"]
    assert (metric["Namespace"], metric["MetricName"]) == ("AWS/SageMaker", "ApproximateBacklogSizePerInstance")
    assert metric["Dimensions"] == [{"Name": "EndpointName", "Value": "monai-imaging-dev-spleen-async"}]


def test_a_step_policy_wakes_the_endpoint_from_zero(assembly: Assembly) -> None:
    # Target tracking alone never scales out from 0 (its metric has no datapoints without instances).
    step = policies(assembly)["StepScaling"]["StepScalingPolicyConfiguration"]
    assert step["AdjustmentType"] == "ChangeInCapacity"
    assert step["StepAdjustments"] == [{"MetricIntervalLowerBound": 0, "ScalingAdjustment": 1}]
    alarm = only(assembly, "AWS::CloudWatch::Alarm")
    assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/SageMaker", "HasBacklogWithoutCapacity")
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert alarm["Threshold"] == 1
    (action,) = alarm["AlarmActions"]
    step_id = next(k for k, v in assembly.resources("Serving", "AWS::ApplicationAutoScaling::ScalingPolicy").items()
                   if v["Properties"]["PolicyType"] == "StepScaling")
    assert action == {"Ref": step_id}


def test_role_is_assumed_by_sagemaker_without_managed_full_access(assembly: Assembly) -> None:
    roles = {k: v["Properties"] for k, v in assembly.resources("Serving", "AWS::IAM::Role").items()}
    (role,) = [v for k, v in roles.items() if k.startswith("EndpointRole")]
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "sagemaker.amazonaws.com"}
    for logical_id, any_role in roles.items():
        assert "FullAccess" not in json.dumps(any_role.get("ManagedPolicyArns", [])), logical_id


def test_role_reads_only_the_model_prefix_and_writes_only_output_and_failures(assembly: Assembly) -> None:
    resources = json.dumps([s["Resource"] for s in statements(assembly) if any(a.startswith("s3:Put") for a in actions_of(s))])
    assert '"/output/*"' in resources
    assert '"/failures/*"' in resources
    assert '"/input/*"' not in resources  # must not: the endpoint never writes requests
    reads = json.dumps([s["Resource"] for s in statements(assembly) if "s3:GetObject*" in actions_of(s)])
    assert '"/models/spleen/*"' in reads
    assert '"/*"]' not in reads.replace('/models/spleen/*"]', "").replace('/input/*"]', "")


def test_role_pulls_from_the_inference_repository_only(assembly: Assembly) -> None:
    (pull,) = [s for s in statements(assembly) if "ecr:BatchGetImage" in actions_of(s)]
    # One resource, the pytorch-inference repository's ARN (exported by the images stack); not Triton's.
    output = pull["Resource"]["Fn::GetStackOutput"]
    assert output["StackName"] == "monai-imaging-dev-images"
    assert output["OutputName"].startswith("PublishOutputFnGetAttRepositoryPytorchInference")


def test_role_publishes_to_the_two_topics_and_metrics_only_in_sagemaker_namespaces(assembly: Assembly) -> None:
    publish = [s for s in statements(assembly) if "sns:Publish" in actions_of(s)]
    (statement,) = publish
    assert sorted(r["Ref"] for r in statement["Resource"]) == sorted(assembly.resources("Serving", "AWS::SNS::Topic"))
    (metrics,) = [s for s in statements(assembly) if "cloudwatch:PutMetricData" in actions_of(s)]
    assert metrics["Condition"] == {"StringEquals": {"cloudwatch:namespace": ["AWS/SageMaker", "/aws/sagemaker/Endpoints"]}}


def test_no_statement_grants_a_service_wide_wildcard_action(assembly: Assembly) -> None:
    for statement in statements(assembly):
        for action in actions_of(statement):
            assert not action.endswith(":*"), action
            assert action != "*", action


def test_endpoint_name_is_derived_from_the_prefix(assembly: Assembly, m5_assembly: Assembly) -> None:
    for a in (assembly, m5_assembly):
        assert only(a, "AWS::SageMaker::Endpoint")["EndpointName"] == "monai-imaging-dev-spleen-async"
