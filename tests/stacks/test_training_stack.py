"""Training workflow: the state machine's training job, registration, roles and notifications."""

from __future__ import annotations

import json
from typing import Any

import pytest

from model_code.training.environment import DEFAULT_CHECKPOINT_DIR
from model_code.training.metrics import METRIC_DEFINITIONS
from stacks.container_images.names import TRAINING as TRAINING_IMAGE
from stacks.training.stack import TrainingStack
from tests.stacks.assembly import Assembly, as_list, flatten, one_resource, statements
from tests.stacks.scaffold import Scaffold, alone

TRAINING = "Training"


def build(scaffold: Scaffold) -> None:
    scaffold.add(
        TrainingStack,
        TRAINING,
        keys=scaffold.keys,
        network=scaffold.network,
        training_data_bucket=scaffold.buckets["TrainingData"],
        model_store=scaffold.model_store,
        training_image_repository=scaffold.repositories[TRAINING_IMAGE],
    )


def definition_of(template: dict[str, Any]) -> dict[str, Any]:
    machine = one_resource(template, "AWS::StepFunctions::StateMachine")
    return dict(json.loads(flatten(machine["Properties"]["DefinitionString"])))


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
    assert metadata["modelFormat"] == "monai-bundle"  # what the approval handler unpacks (configs/ + models/)
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


VARIANT = {
    "platform.training.instanceType": "ml.m5.xlarge",  # EBS-only: takes the data key on its volume
    "platform.training.instanceCount": "3",
    "platform.training.useSpot": "false",
    "platform.training.autoApproveMetric": "validation:dice",
    "platform.training.autoApproveThreshold": "0.8",
}


assembly = alone(build)
variant_assembly = alone(build, VARIANT)


@pytest.fixture(scope="module")
def variant_states(variant_assembly: Assembly) -> dict[str, Any]:
    return dict(definition_of(variant_assembly.templates[TRAINING])["States"])


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


# -- grants the IAM proof found missing or unused (tests/stacks/test_iam_contracts.py) ------------------------


@pytest.mark.parametrize(
    ("fixture", "grants_volume_key"),
    [
        ("assembly", False),  # g4dn: NVMe instance storage, no VolumeKmsKeyId in the Train state
        ("variant_assembly", True),  # ml.m5.xlarge: the data key on the volume, so SageMaker needs a grant
    ],
)
def test_the_job_role_may_grant_the_volume_key_only_when_the_job_names_one(
    request: pytest.FixtureRequest, fixture: str, grants_volume_key: bool
) -> None:
    built: Assembly = request.getfixturevalue(fixture)
    by_sid = {s.get("Sid"): s for s in statements(built.templates[TRAINING], "TrainingJobRole")}
    assert ("VolumeKeyGrant" in by_sid) == grants_volume_key
    if grants_volume_key:
        assert by_sid["VolumeKeyGrant"]["Condition"] == {"Bool": {"kms:GrantIsForAWSResource": "true"}}
        assert "KeysDataKey" in by_sid["VolumeKeyGrant"]["Resource"]


def test_the_workflow_reads_job_tags_and_tags_nothing(assembly: Assembly) -> None:
    policy = statements(assembly.templates[TRAINING], "StateMachineRole")
    by_sid = {s.get("Sid"): s for s in policy}
    # createTrainingJob.sync lists the job's tags (Step Functions' IAM page for it: ListTags on *).
    assert by_sid["ReadTrainingJobTags"] == {"Action": "sagemaker:ListTags", "Effect": "Allow", "Resource": "*",
                                             "Sid": "ReadTrainingJobTags"}
    # Must not: AddTags, which the Train state (no Tags) never needs.
    assert "sagemaker:AddTags" not in {a for s in policy for a in as_list(s["Action"])}


def test_the_notify_states_may_use_the_topic_key(assembly: Assembly) -> None:
    topic = assembly.one(TRAINING, "AWS::SNS::Topic", "TrainingNotifications")
    key = flatten(topic["Properties"]["KmsMasterKeyId"])
    policy = statements(assembly.templates[TRAINING], "StateMachineRole")
    encrypting = [s for s in policy if "kms:GenerateDataKey" in as_list(s["Action"])]
    assert [(sorted(as_list(s["Action"])), s["Resource"]) for s in encrypting] == [
        (["kms:Decrypt", "kms:GenerateDataKey"], key)
    ]
