"""Serving stack: the async endpoint in the VPC with encrypted outputs, and autoscaling that wakes from zero."""

from __future__ import annotations

import json
from typing import Any

import pytest

from stacks.components.instance_types import has_instance_storage
from stacks.container_images.names import PYTORCH_INFERENCE, TRITON_INFERENCE
from stacks.serving.stack import ServingStack
from tests.stacks.assembly import CODESTAR_OVERRIDES, MME_NAME, MULTI_MODEL_OVERRIDES, Assembly, as_list
from tests.stacks.lint import assert_cfn_lint_clean, assert_checkov_clean
from tests.stacks.scaffold import Scaffold, alone

STACK = "Serving"


def build(scaffold: Scaffold) -> None:
    scaffold.add(
        ServingStack,
        STACK,
        keys=scaffold.keys,
        network=scaffold.network,
        model_store=scaffold.model_store,
        inference_bucket=scaffold.buckets["Inference"],
        inference_image_repository=scaffold.repositories[PYTORCH_INFERENCE],
        triton_image_repository=scaffold.repositories[TRITON_INFERENCE],
    )


assembly = alone(build)
codestar_assembly = alone(build, CODESTAR_OVERRIDES)  # asyncInstanceType ml.m5.xlarge (EBS only)
mme_assembly = alone(build, MULTI_MODEL_OVERRIDES)


def statements(assembly: Assembly) -> list[dict[str, Any]]:
    policies = assembly.resources(STACK, "AWS::IAM::Policy").values()
    return [s for p in policies for s in p["Properties"]["PolicyDocument"]["Statement"]]


def actions_of(statement: dict[str, Any]) -> list[str]:
    return as_list(statement["Action"])


def test_model_runs_the_ssm_recorded_image_and_the_configured_archive(assembly: Assembly) -> None:
    model = assembly.one(STACK, "AWS::SageMaker::Model")["Properties"]
    container = model["PrimaryContainer"]
    (parameter_name,) = [
        p for p in assembly.templates[STACK]["Parameters"].values()
        if p.get("Default") == "/monai-imaging-dev/images/pytorch-inference/uri"
    ]
    assert parameter_name["Type"] == "AWS::SSM::Parameter::Value<String>"  # resolved at deploy, no synth lookup
    assert container["Image"]["Ref"] in assembly.templates[STACK]["Parameters"]
    assert json.dumps(container["ModelDataUrl"]).endswith('"/models/spleen/model.tar.gz"]]}')


@pytest.mark.parametrize(
    ("fixture", "workers", "threads"),
    [
        ("assembly", "1", "4"),  # ml.g4dn.xlarge: one worker for its GPU, its 4 vCPUs as torch threads
        ("codestar_assembly", "2", "2"),  # ml.m5.xlarge: 2 workers x 2 threads = its 4 vCPUs
    ],
)
def test_model_sizes_workers_and_threads_to_the_instance_type(
    request: pytest.FixtureRequest, fixture: str, workers: str, threads: str
) -> None:
    assembly: Assembly = request.getfixturevalue(fixture)
    container = assembly.one(STACK, "AWS::SageMaker::Model")["Properties"]["PrimaryContainer"]
    assert container["Environment"] == {"SAGEMAKER_MODEL_SERVER_WORKERS": workers, "SERVING_INTRA_OP_THREADS": threads}
    # SageMaker hands an instance as many requests at once as it has workers: none idles while requests queue.
    client = assembly.one(STACK, "AWS::SageMaker::EndpointConfig")["Properties"]["AsyncInferenceConfig"]["ClientConfig"]
    assert client == {"MaxConcurrentInvocationsPerInstance": int(workers)}


def test_model_is_in_the_vpc_workload_subnets_behind_its_own_security_group(assembly: Assembly) -> None:
    model = assembly.one(STACK, "AWS::SageMaker::Model")["Properties"]
    assert len(model["VpcConfig"]["Subnets"]) == 2  # one workload subnet per AZ (maxAzs 2)
    (group,) = model["VpcConfig"]["SecurityGroupIds"]
    assert group["Fn::GetAtt"][0].startswith("EndpointSecurityGroup")
    security_group = assembly.one(STACK, "AWS::EC2::SecurityGroup")["Properties"]
    assert "SecurityGroupIngress" not in security_group  # must not: nothing connects in
    (egress,) = security_group["SecurityGroupEgress"]
    assert (egress["FromPort"], egress["ToPort"]) == (443, 443)


def test_endpoint_config_is_async_with_encrypted_outputs_and_both_topics(assembly: Assembly) -> None:
    config = assembly.one(STACK, "AWS::SageMaker::EndpointConfig")["Properties"]
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
        ("codestar_assembly", True),  # asyncInstanceType ml.m5 has EBS only: the data key encrypts the volume
    ],
)
def test_volume_key_is_set_wherever_sagemaker_accepts_one(
    request: pytest.FixtureRequest, fixture: str, volume_key: bool
) -> None:
    assembly: Assembly = request.getfixturevalue(fixture)
    config = assembly.one(STACK, "AWS::SageMaker::EndpointConfig")["Properties"]
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
    topics = assembly.resources(STACK, "AWS::SNS::Topic")
    assert len(topics) == 2
    for logical_id, topic in topics.items():
        assert "KmsMasterKeyId" in topic["Properties"], logical_id


def test_the_endpoint_role_reads_healthimaging_with_the_two_calls_the_loader_makes(assembly: Assembly) -> None:
    policy = assembly.one(STACK, "AWS::IAM::Policy", "EndpointRoleDefaultPolicy")
    [read] = [s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s.get("Sid") == "ReadHealthImaging"]
    # GetImageSet was granted but never called (the IAM proof's recorded calls): removed.
    assert sorted(as_list(read["Action"])) == ["medical-imaging:GetImageFrame", "medical-imaging:GetImageSetMetadata"]


def test_scalable_target_follows_configuration_and_can_reach_zero(assembly: Assembly) -> None:
    target = assembly.one(STACK, "AWS::ApplicationAutoScaling::ScalableTarget")["Properties"]
    assert (target["MinCapacity"], target["MaxCapacity"]) == (0, 2)
    assert target["ResourceId"] == "endpoint/monai-imaging-dev-spleen-async/variant/AllTraffic"
    assert target["ScalableDimension"] == "sagemaker:variant:DesiredInstanceCount"


def policies(assembly: Assembly) -> dict[str, dict[str, Any]]:
    found = assembly.resources(STACK, "AWS::ApplicationAutoScaling::ScalingPolicy").values()
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
    alarm = assembly.one(STACK, "AWS::CloudWatch::Alarm")["Properties"]
    assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/SageMaker", "HasBacklogWithoutCapacity")
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert alarm["Threshold"] == 1
    (action,) = alarm["AlarmActions"]
    step_id = next(k for k, v in assembly.resources(STACK, "AWS::ApplicationAutoScaling::ScalingPolicy").items()
                   if v["Properties"]["PolicyType"] == "StepScaling")
    assert action == {"Ref": step_id}


def test_role_is_assumed_by_sagemaker_without_managed_full_access(assembly: Assembly) -> None:
    roles = {k: v["Properties"] for k, v in assembly.resources(STACK, "AWS::IAM::Role").items()}
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
    # One resource, the ARN of the pytorch-inference repository it was given; not Triton's.
    output = pull["Resource"]["Fn::GetStackOutput"]
    assert output["OutputName"].startswith("PublishOutputFnGetAttRepositoryPytorchInference")


def test_role_publishes_to_the_two_topics_and_metrics_only_in_sagemaker_namespaces(assembly: Assembly) -> None:
    publish = [s for s in statements(assembly) if "sns:Publish" in actions_of(s)]
    (statement,) = publish
    assert sorted(r["Ref"] for r in statement["Resource"]) == sorted(assembly.resources(STACK, "AWS::SNS::Topic"))
    (metrics,) = [s for s in statements(assembly) if "cloudwatch:PutMetricData" in actions_of(s)]
    assert metrics["Condition"] == {"StringEquals": {"cloudwatch:namespace": ["AWS/SageMaker", "/aws/sagemaker/Endpoints"]}}


def test_no_statement_grants_a_service_wide_wildcard_action(assembly: Assembly) -> None:
    for statement in statements(assembly):
        for action in actions_of(statement):
            assert not action.endswith(":*"), action
            assert action != "*", action


def test_endpoint_name_is_derived_from_the_prefix(assembly: Assembly, codestar_assembly: Assembly) -> None:
    for a in (assembly, codestar_assembly):
        endpoint = a.one(STACK, "AWS::SageMaker::Endpoint")["Properties"]
        assert endpoint["EndpointName"] == "monai-imaging-dev-spleen-async"


# --- The multi-model (Triton) endpoint: absent by default, complete when serving.multiModelEnabled is true ---



def mme_statements(assembly: Assembly) -> list[dict[str, Any]]:
    (policy,) = [v for k, v in assembly.resources(STACK, "AWS::IAM::Policy").items()
                 if k.startswith("MultiModelRoleDefaultPolicy")]
    return list(policy["Properties"]["PolicyDocument"]["Statement"])


@pytest.mark.parametrize(
    ("fixture", "present"),
    [
        ("assembly", False),  # default multiModelEnabled false: a real-time endpoint would bill every hour
        ("mme_assembly", True),
    ],
)
def test_multi_model_endpoint_exists_only_when_enabled(
    request: pytest.FixtureRequest, fixture: str, present: bool
) -> None:
    assembly: Assembly = request.getfixturevalue(fixture)
    template = assembly.templates[STACK]
    names = {v["Properties"]["EndpointName"] for v in assembly.resources(STACK, "AWS::SageMaker::Endpoint").values()}
    assert names == ({"monai-imaging-dev-spleen-async", MME_NAME} if present else {"monai-imaging-dev-spleen-async"})
    assert any(k.startswith("MultiModel") for k in template["Resources"]) is present
    for output in ("MultiModelEndpointName", "MultiModelArchivePrefix"):
        assert (output in template["Outputs"]) is present, output


def test_multi_model_runs_the_triton_image_over_an_s3_prefix_of_archives(mme_assembly: Assembly) -> None:
    container = mme_assembly.one(STACK, "AWS::SageMaker::Model", "MultiModel")["Properties"]["PrimaryContainer"]
    assert container["Mode"] == "MultiModel"
    url = json.dumps(container["ModelDataUrl"])
    assert url.startswith('{"Fn::Join": ["", ["s3://"')
    assert url.endswith('"/models/triton/"]]}')  # a prefix ending in '/': TargetModel names the archive under it
    parameters = mme_assembly.templates[STACK]["Parameters"]
    assert parameters[container["Image"]["Ref"]]["Default"] == "/monai-imaging-dev/images/triton-inference/uri"
    # The asynchronous model stays a single model on the PyTorch image (must-not twin of the above).
    (async_model,) = [v["Properties"] for k, v in mme_assembly.resources(STACK, "AWS::SageMaker::Model").items()
                      if not k.startswith("MultiModel")]
    assert "Mode" not in async_model["PrimaryContainer"]


def test_triton_environment_is_what_the_sagemaker_triton_serve_script_reads_in_mme_mode(mme_assembly: Assembly) -> None:
    model = mme_assembly.one(STACK, "AWS::SageMaker::Model", "MultiModel")["Properties"]
    environment = model["PrimaryContainer"]["Environment"]
    assert all(key.startswith("SAGEMAKER_TRITON_") for key in environment)
    assert environment["SAGEMAKER_TRITON_SHM_DEFAULT_BYTE_SIZE"] == str(64 * 1024 * 1024)  # > a 25 MB series zip
    assert environment["SAGEMAKER_TRITON_SHM_GROWTH_BYTE_SIZE"] == str(16 * 1024 * 1024)
    assert environment["SAGEMAKER_TRITON_MODEL_LOAD_GPU_LIMIT"] == "0.8"
    assert environment["SAGEMAKER_TRITON_LOG_VERBOSE"] == "false"
    # Must not: the default model name belongs to single-model endpoints; MME loads TargetModel archives.
    assert "SAGEMAKER_TRITON_DEFAULT_MODEL_NAME" not in environment
    assert "SAGEMAKER_MULTI_MODEL" not in environment  # SageMaker sets it from Mode


def test_multi_model_is_isolated_in_the_vpc_behind_its_own_security_group(mme_assembly: Assembly) -> None:
    model = mme_assembly.one(STACK, "AWS::SageMaker::Model", "MultiModel")["Properties"]
    assert model["EnableNetworkIsolation"] is True  # the Triton model calls nothing; the async one must
    assert len(model["VpcConfig"]["Subnets"]) == 2
    (group,) = model["VpcConfig"]["SecurityGroupIds"]
    assert group["Fn::GetAtt"][0].startswith("MultiModelSecurityGroup")
    security_group = mme_assembly.one(STACK, "AWS::EC2::SecurityGroup", "MultiModel")["Properties"]
    assert "SecurityGroupIngress" not in security_group
    (egress,) = security_group["SecurityGroupEgress"]
    assert (egress["FromPort"], egress["ToPort"]) == (443, 443)


def test_multi_model_endpoint_config_is_real_time_on_the_gpu_instance(mme_assembly: Assembly) -> None:
    config = mme_assembly.one(STACK, "AWS::SageMaker::EndpointConfig", "MultiModel")["Properties"]
    (variant,) = config["ProductionVariants"]
    assert (variant["InstanceType"], variant["InitialInstanceCount"]) == ("ml.g4dn.xlarge", 1)
    assert "AsyncInferenceConfig" not in config
    # ml.g4dn has NVMe instance storage: no volume key, and the finding is acknowledged on this config only.
    assert "KmsKeyId" not in config
    acknowledged = [path for path, rules in mme_assembly.metadata_entries("aws:cdk:acknowledged-rules")
                    if "HIPAA.Security::HIPAA.Security-SageMakerEndpointConfigurationKMSKeyConfigured" in rules]
    assert sorted(acknowledged) == ["/Serving/EndpointConfig", "/Serving/MultiModel/EndpointConfig"]


@pytest.mark.parametrize(
    ("instance_type", "keyed"),
    [
        ("ml.g4dn.xlarge", False),  # NVMe: SageMaker rejects a volume key
        ("ml.g5.2xlarge", False),
        ("ml.m5.xlarge", True),  # EBS: the data key encrypts the volume
        ("ml.p3.2xlarge", True),
    ],
)
def test_both_endpoints_share_the_volume_key_rule(instance_type: str, keyed: bool) -> None:
    import aws_cdk as cdk
    from aws_cdk import aws_kms as kms

    from stacks.serving.volume import volume_key_arn

    key = kms.Key(cdk.Stack(cdk.App(), "Probe"), "Key")
    assert (volume_key_arn(instance_type, key) is not None) is keyed


def test_multi_model_scales_on_invocations_per_instance_within_configured_bounds(mme_assembly: Assembly) -> None:
    targets = {v["Properties"]["ResourceId"]: (k, v["Properties"]) for k, v in
               mme_assembly.resources(STACK, "AWS::ApplicationAutoScaling::ScalableTarget").items()}
    target_id, target = targets[f"endpoint/{MME_NAME}/variant/AllTraffic"]
    assert (target["MinCapacity"], target["MaxCapacity"]) == (1, 3)  # real-time endpoints cannot reach 0
    (policy,) = [v["Properties"] for v in mme_assembly.resources(STACK, "AWS::ApplicationAutoScaling::ScalingPolicy").values()
                 if v["Properties"]["ScalingTargetId"] == {"Ref": target_id}]
    tracking = policy["TargetTrackingScalingPolicyConfiguration"]
    assert tracking["PredefinedMetricSpecification"] == {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"}
    assert tracking["TargetValue"] == 5
    # The asynchronous endpoint keeps its own backlog-based scaling from 0 (must-not: no invocation tracking).
    _, async_target = targets["endpoint/monai-imaging-dev-spleen-async/variant/AllTraffic"]
    assert async_target["MinCapacity"] == 0


def test_multi_model_role_reads_only_its_archive_prefix_and_pulls_only_triton(mme_assembly: Assembly) -> None:
    found = mme_statements(mme_assembly)
    actions = {a for s in found for a in actions_of(s)}
    reads = json.dumps([s["Resource"] for s in found if "s3:GetObject*" in actions_of(s)])
    assert '"/models/triton/*"' in reads
    assert "/models/spleen/" not in reads
    assert "/input/" not in reads
    (pull,) = [s for s in found if "ecr:BatchGetImage" in actions_of(s)]
    assert pull["Resource"]["Fn::GetStackOutput"]["OutputName"].startswith("PublishOutputFnGetAttRepositoryTritonInference")
    # Must not: it writes nothing, publishes nothing, reads no HealthImaging (the async role does all three).
    assert not any(a.startswith(("s3:Put", "s3:Delete", "sns:", "medical-imaging:", "kms:Encrypt")) for a in actions)
    async_actions = {a for s in statements(mme_assembly) if s not in found for a in actions_of(s)}
    assert {"sns:Publish", "medical-imaging:GetImageFrame"} <= async_actions


@pytest.mark.compliance
def test_multi_model_variant_passes_cfn_lint_and_checkov(mme_assembly: Assembly) -> None:
    # Only the serving template changes with the switch; test_compliance covers the whole platform's variants.
    template = mme_assembly.template_files(STACK)
    assert_cfn_lint_clean(template)
    assert_checkov_clean(template, min_passed=20)
