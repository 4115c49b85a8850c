"""Training workflow and approval deploys: the state machine's training job, registration, roles and rules."""

from __future__ import annotations

import json
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_ecr as ecr
from aws_cdk.assertions import Template

from model_code.training.environment import DEFAULT_CHECKPOINT_DIR
from model_code.training.metrics import METRIC_DEFINITIONS
from model_code.triton_model.package import render_config
from stacks.approval.runtime.deploy_approved import TRITON_NAME_PLACEHOLDER
from stacks.config import PlatformConfig, build_config
from stacks.data.stack import DataStack
from stacks.network.stack import NetworkStack
from stacks.training.stack import TrainingStack
from tests.stacks.assembly import Assembly, as_list, cdk_json_context, one_resource

TRAINING, APPROVAL = "Training", "Approval"


def flatten(node: Any) -> Any:
    """Intrinsics as readable markers, so a rendered definition or ARN can be parsed and compared."""
    if isinstance(node, dict):
        if "Fn::Join" in node:
            delimiter, items = node["Fn::Join"]
            return delimiter.join(str(flatten(item)) for item in items)
        if "Fn::GetStackOutput" in node:
            return f"<output:{node['Fn::GetStackOutput']['OutputName']}>"
        if "Fn::GetAtt" in node:
            return f"<{node['Fn::GetAtt'][0]}.{node['Fn::GetAtt'][1]}>"
        if "Ref" in node:
            return f"<{node['Ref']}>"
        return {key: flatten(value) for key, value in node.items()}
    if isinstance(node, list):
        return [flatten(item) for item in node]
    return node


# Template dicts, not assemblies: the variant below builds the training stack alone.
def definition_of(template: dict[str, Any]) -> dict[str, Any]:
    machine = one_resource(template, "AWS::StepFunctions::StateMachine")
    return dict(json.loads(flatten(machine["Properties"]["DefinitionString"])))


def statements(template: dict[str, Any], policy_prefix: str) -> list[dict[str, Any]]:
    policy = one_resource(template, "AWS::IAM::Policy", policy_prefix)
    return list(flatten(policy["Properties"]["PolicyDocument"]["Statement"]))


@pytest.fixture(scope="module")
def states(assembly: Assembly) -> dict[str, Any]:
    return dict(definition_of(assembly.templates[TRAINING])["States"])


# -- the training job ---------------------------------------------------------------------------------------


def test_the_job_trains_on_spot_with_checkpoints_and_waits_longer_than_it_runs(states: dict[str, Any]) -> None:
    train = states["Train"]
    assert train["Resource"].endswith(":states:::sagemaker:createTrainingJob.sync")
    params = train["Parameters"]
    assert params["EnableManagedSpotTraining"] is True
    stopping = params["StoppingCondition"]
    assert stopping["MaxRuntimeInSeconds"] == 24 * 3600  # training.maxRuntimeHours
    assert stopping["MaxWaitTimeInSeconds"] >= stopping["MaxRuntimeInSeconds"]
    # The checkpoint URI is per job, under training/checkpoints/ of the model-artifacts bucket.
    # LocalPath is where the trainer checkpoints by default (--checkpoint-dir), so SageMaker syncs what it writes.
    assert params["CheckpointConfig"] == {"S3Uri.$": "$.checkpoint.uri", "LocalPath": str(DEFAULT_CHECKPOINT_DIR)}
    checkpoint = states["CheckpointUri"]["Parameters"]["uri.$"]
    assert checkpoint.startswith("States.Format('s3://<output:PublishOutputRefModelArtifactsBucket")
    assert checkpoint.endswith("/training/checkpoints/{}/', $.job.name)")


def test_the_job_is_isolated_in_the_vpc_and_encrypted_with_the_data_key(states: dict[str, Any]) -> None:
    params = states["Train"]["Parameters"]
    assert params["EnableNetworkIsolation"] is True
    assert params["EnableInterContainerTrafficEncryption"] is True
    vpc = params["VpcConfig"]
    [group] = vpc["SecurityGroupIds"]
    assert group.startswith("<TrainingSecurityGroup")
    assert group.endswith(".GroupId>")
    assert len(vpc["Subnets"]) == 2
    assert all("PrivateSubnet" in subnet for subnet in vpc["Subnets"])
    output = params["OutputDataConfig"]
    assert "KeysDataKey" in output["KmsKeyId"]
    assert output["S3OutputPath"].endswith("/training/output/")
    # Must not: the default instance type (ml.g4dn.xlarge) has NVMe instance storage, which refuses a volume key.
    assert "VolumeKmsKeyId" not in params["ResourceConfig"]
    assert params["ResourceConfig"]["InstanceType"] == "ml.g4dn.xlarge"


def test_metric_definitions_are_the_trainers(states: dict[str, Any]) -> None:
    assert states["Train"]["Parameters"]["AlgorithmSpecification"]["MetricDefinitions"] == METRIC_DEFINITIONS
    # The registration and the metric reader cover every metric the trainer defines, no more.
    read = states["ReadMetrics"]["Parameters"]
    assert sorted(read) == sorted(f"{d['Name'].replace(':', '_')}.$" for d in METRIC_DEFINITIONS)
    assert read["validation_dice.$"] == "$.training.FinalMetricDataList[?(@.MetricName == 'validation:dice')].Value"


def test_hyperparameters_come_from_the_input_with_torchrun_enforced(states: dict[str, Any]) -> None:
    assert states["Train"]["Parameters"]["HyperParameters.$"] == "$.job.hyperparameters"
    merged = states["NameJob"]["Parameters"]["hyperparameters.$"]
    # The input first, the platform's settings last: an execution cannot switch torchrun off.
    assert merged == "States.JsonMerge($.run.hyperparameters, $.platformHyperparameters, false)"
    platform = states["PlatformSettings"]["Result"]["hyperparameters"]
    assert platform["sagemaker_torch_distributed_enabled"] == "true"
    assert json.loads(platform["sagemaker_instance_type"]) == "ml.g4dn.xlarge"
    # The job name fits SageMaker's 63 characters and the role's training-job/<prefix>-train-* scope.
    assert states["NameJob"]["Parameters"]["name.$"].startswith("States.Format('monai-imaging-dev-train-{}{}'")


# -- registration and failure -------------------------------------------------------------------------------


def test_the_package_is_registered_with_the_final_metrics_pending_approval(states: dict[str, Any]) -> None:
    register = states["RegisterModelPackage"]
    assert register["Resource"].endswith(":states:::aws-sdk:sagemaker:createModelPackage")
    params = register["Parameters"]
    assert params["ModelPackageGroupName"] == "monai-imaging-dev-spleen"
    assert params["ModelApprovalStatus.$"] == "$.approvalStatus"
    [container] = params["InferenceSpecification"]["Containers"]
    assert container["ModelDataUrl.$"] == "$.training.ModelArtifacts.S3ModelArtifacts"
    assert "pytorchinference" in container["Image"].lower()
    metadata = params["CustomerMetadataProperties"]
    assert metadata["validation:dice.$"] == "States.JsonToString($.metrics.validation_dice)"
    # Default configuration (autoApproveMetric ""): must not auto-approve; every package waits for a reviewer.
    assert "MeetsApprovalThreshold" not in states
    assert states["HasMetrics"]["Type"] == "Choice"
    assert states["PendingApproval"]["Result"] == "PendingManualApproval"


def test_failures_are_published_to_the_encrypted_topic(assembly: Assembly, states: dict[str, Any]) -> None:
    for name in ("Train", "RegisterModelPackage"):
        [catch] = states[name]["Catch"]
        assert (catch["ErrorEquals"], catch["Next"]) == (["States.ALL"], "NotifyFailure"), name
    notify = states["NotifyFailure"]
    assert "TrainingNotifications" in notify["Parameters"]["TopicArn"]
    assert notify["Next"] == "Failed"
    topic = assembly.one(TRAINING, "AWS::SNS::Topic", "TrainingNotifications")
    assert "KeysDataKey" in flatten(topic["Properties"]["KmsMasterKeyId"])


def test_the_state_machine_logs_to_an_encrypted_group_and_traces(assembly: Assembly) -> None:
    machine = assembly.one(TRAINING, "AWS::StepFunctions::StateMachine")
    props = machine["Properties"]
    assert props["TracingConfiguration"] == {"Enabled": True}
    assert props["LoggingConfiguration"]["Level"] == "ALL"
    group = assembly.one(TRAINING, "AWS::Logs::LogGroup", "StateMachineLogs")
    assert "LogsKey" in flatten(group["Properties"]["KmsKeyId"])


# -- roles ---------------------------------------------------------------------------------------------------


def test_the_training_role_is_trusted_by_sagemaker_of_this_account_only(assembly: Assembly) -> None:
    role = assembly.one(TRAINING, "AWS::IAM::Role", "TrainingJobRole")
    [trust] = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "sagemaker.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}


@pytest.mark.parametrize(
    ("policy", "forbidden"),
    [
        ("TrainingJobRole", {"s3:*", "sagemaker:*", "kms:*", "iam:PassRole"}),  # the job reads, writes, no admin
        ("StateMachineRole", {"s3:*", "sagemaker:*", "iam:*"}),  # the workflow starts jobs, passes one role
    ],
)
def test_roles_hold_no_service_wide_actions(assembly: Assembly, policy: str, forbidden: set[str]) -> None:
    actions = {a for s in statements(assembly.templates[TRAINING], policy) for a in as_list(s["Action"])}
    assert not actions & forbidden
    assert actions  # must: the policy exists and grants something


def test_the_workflow_passes_only_the_training_role_to_sagemaker(assembly: Assembly) -> None:
    by_sid = {s.get("Sid"): s for s in statements(assembly.templates[TRAINING], "StateMachineRole")}
    passing = by_sid["PassTrainingRole"]
    assert passing["Resource"].startswith("<TrainingJobRole")
    assert passing["Resource"].endswith(".Arn>")
    assert passing["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}
    jobs = by_sid["RunTrainingJobs"]
    [resource] = as_list(jobs["Resource"])
    assert resource.endswith(":sagemaker:us-east-1:<AWS::AccountId>:training-job/monai-imaging-dev-train-*")


def test_the_training_security_group_admits_only_its_own_instances(assembly: Assembly) -> None:
    group = assembly.one(TRAINING, "AWS::EC2::SecurityGroup", "TrainingSecurityGroup")
    assert "SecurityGroupIngress" not in group["Properties"]  # must not: no CIDR ingress at all
    rule = assembly.one(TRAINING, "AWS::EC2::SecurityGroupIngress")
    assert rule["Properties"]["SourceSecurityGroupId"] == rule["Properties"]["GroupId"]  # must: self only


# -- variants: auto-approval, no spot, a volume key -----------------------------------------------------------


def _training_template(config: PlatformConfig) -> dict[str, Any]:
    """The training stack alone (data and network beside it, no nag): enough for its definition."""
    app = cdk.App(context=cdk_json_context())
    env = cdk.Environment(account=config.account, region=config.region)
    data = DataStack(app, "Data", config=config, env=env)
    network = NetworkStack(app, "Network", config=config, logs_key=data.keys.logs_key, env=env)
    training = TrainingStack(
        app,
        "Training",
        config=config,
        data=data,
        network=network,
        logs_key=data.keys.logs_key,
        training_image_repository=ecr.Repository.from_repository_name(data, "Training", "x/training"),
        env=env,
    )
    return dict(Template.from_stack(training).to_json())


VARIANT = {
    "platform.training.instanceType": "ml.m5.xlarge",  # EBS-only: takes the data key on its volume
    "platform.training.instanceCount": "3",
    "platform.training.useSpot": "false",
    "platform.training.autoApproveMetric": "validation:dice",
    "platform.training.autoApproveThreshold": "0.8",
}


@pytest.fixture(scope="module")
def variant_states() -> dict[str, Any]:
    config = build_config({**cdk_json_context(), **VARIANT})
    return dict(definition_of(_training_template(config))["States"])


def test_auto_approval_compares_the_configured_metric_with_the_threshold(variant_states: dict[str, Any]) -> None:
    choice = variant_states["MeetsApprovalThreshold"]
    [rule] = choice["Choices"]
    assert rule["Next"] == "AutoApproved"
    assert {"Variable": "$.metrics.validation_dice[0]", "NumericGreaterThanEquals": 0.8} in rule["And"]
    assert {"Variable": "$.metrics.validation_dice[0]", "IsPresent": True} in rule["And"]
    assert choice["Default"] == "PendingApproval"  # must: no metric, or below it, waits for a reviewer
    assert variant_states["AutoApproved"]["Result"] == "Approved"


def test_on_demand_multi_instance_jobs_encrypt_their_volume(variant_states: dict[str, Any]) -> None:
    params = variant_states["Train"]["Parameters"]
    resources = params["ResourceConfig"]
    assert resources["InstanceCount"] == 3
    assert "KeysDataKey" in resources["VolumeKmsKeyId"]  # must: EBS-only instances take the data key
    # Must not: spot settings without spot.
    assert "EnableManagedSpotTraining" not in params
    assert "CheckpointConfig" not in params
    assert "MaxWaitTimeInSeconds" not in params["StoppingCondition"]


# -- approval deploys ----------------------------------------------------------------------------------------


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
