"""``train`` against moto's Step Functions; ``models`` against moto's SageMaker Model Registry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.platform_cli.fakes import PROJECT, Platform

GROUP = f"{PROJECT}-dev-spleen"
OTHER_GROUP = "someone-else"
SPEC = {
    "Containers": [{"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/t:1", "ModelDataUrl": "s3://b/m.tar.gz"}],
    "SupportedContentTypes": ["application/json"],
    "SupportedResponseMIMETypes": ["application/dicom"],
}


@pytest.fixture
def state_machine(platform: Platform) -> str:
    stepfunctions = platform.session.client("stepfunctions")
    arn = stepfunctions.create_state_machine(
        name="training",
        definition=json.dumps({"StartAt": "Train", "States": {"Train": {"Type": "Pass", "End": True}}}),
        roleArn="arn:aws:iam::123456789012:role/training",
    )["stateMachineArn"]
    platform.deploy("Training", {"StateMachineArn": arn, "ModelPackageGroupName": GROUP})
    return str(arn)


@pytest.fixture
def packages(platform: Platform, state_machine: str) -> list[str]:
    """Three versions in our group (pending), one package in another group."""
    sagemaker = platform.session.client("sagemaker")
    for group in (GROUP, OTHER_GROUP):
        sagemaker.create_model_package_group(ModelPackageGroupName=group)
    arns = [
        sagemaker.create_model_package(
            ModelPackageGroupName=GROUP, ModelApprovalStatus="PendingManualApproval", InferenceSpecification=SPEC
        )["ModelPackageArn"]
        for _ in range(3)
    ]
    sagemaker.create_model_package(ModelPackageGroupName=OTHER_GROUP, InferenceSpecification=SPEC,
                                   ModelApprovalStatus="PendingManualApproval")
    return arns


def execution_input(platform: Platform, arn: str) -> dict:
    return json.loads(platform.session.client("stepfunctions").describe_execution(executionArn=arn)["input"])


def test_train_passes_hyperparameters(
    platform: Platform, state_machine: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "hp.json"
    file.write_text(json.dumps({"max_epochs": 50, "learning_rate": "1e-4", "amp": True}))
    argv = ["train", "--hyperparameters-file", str(file), "-p", "max_epochs=5", "-p", "note=a=b", "--name", "run-1",
            "--data-prefix", "liver/"]
    assert platform.run(*argv) == 0
    arn = capsys.readouterr().out.strip()
    assert arn.endswith(":execution:training:run-1")
    # Strings throughout (SageMaker's type); -p overrides the file; a value may itself hold '='.
    assert execution_input(platform, arn) == {
        "hyperparameters": {"max_epochs": "5", "learning_rate": "1e-4", "amp": "true", "note": "a=b"},
        "dataPrefix": "liver/",
    }


def test_train_without_hyperparameters(platform: Platform, state_machine: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert platform.run("train") == 0
    # No dataPrefix key: the state machine's default applies (States.JsonMerge over its defaults).
    assert execution_input(platform, capsys.readouterr().out.strip()) == {"hyperparameters": {}}


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["-p", "max_epochs"], "write NAME=VALUE"),  # no '='
        (["-p", "=5"], "write NAME=VALUE"),  # no name
        (["--name", "has space"], "--name 'has space' must be 1-80"),
        (["-p", "x=" + "v" * 2501], "values 2500 characters"),
        (["--hyperparameters-file", "FILE", "-p", "a=1"], "not a readable JSON file"),  # FILE holds no JSON
        (["--hyperparameters-file", "LIST"], "must hold a JSON object"),
        (["--data-prefix", "/spleen/"], "must be a folder of the training-data bucket"),
        (["--data-prefix", "spleen"], "must be a folder of the training-data bucket"),  # no trailing '/'

    ],
)
def test_train_bad_input_exits_2(
    platform: Platform, state_machine: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    argv: list[str], expected: str,
) -> None:
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "list.json").write_text("[1, 2]")
    argv = [{"FILE": str(tmp_path / "bad.json"), "LIST": str(tmp_path / "list.json")}.get(a, a) for a in argv]
    assert platform.run("train", *argv) == 2
    assert expected in capsys.readouterr().err
    executions = platform.session.client("stepfunctions").list_executions(stateMachineArn=state_machine)
    assert executions["executions"] == []


def test_models_list_newest_first(platform: Platform, packages: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert platform.run("models", "list") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["VERSION", "APPROVAL", "CREATED", "ARN"]
    assert [line.split()[-1] for line in lines[1:]] == packages[::-1]  # only our group, newest first
    assert all("PendingManualApproval" in line for line in lines[1:])


@pytest.mark.parametrize(
    ("target", "command", "status"),
    [
        ("2", "approve", "Approved"),  # by version number
        ("ARN1", "approve", "Approved"),  # by ARN
        ("3", "reject", "Rejected"),
    ],
)
def test_models_update_status(
    platform: Platform, packages: list[str], capsys: pytest.CaptureFixture[str], target: str, command: str, status: str
) -> None:
    arn = packages[0] if target == "ARN1" else packages[int(target) - 1]
    assert platform.run("models", command, packages[0] if target == "ARN1" else target, "--note", "dice 0.91") == 0
    assert capsys.readouterr().out.strip() == arn
    described = platform.session.client("sagemaker").describe_model_package(ModelPackageName=arn)
    assert described["ModelApprovalStatus"] == status
    assert platform.run("models", "list", "--status", status, "--json") == 0
    assert [p["ModelPackageArn"] for p in json.loads(capsys.readouterr().out)] == [arn]  # the others stay pending


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("7", f"model package group {GROUP} has no version 7"),
        ("OTHER", f"is neither a version number nor a package ARN of group {GROUP}"),  # another group's package
    ],
)
def test_models_approve_unknown_exits_2(
    platform: Platform, packages: list[str], capsys: pytest.CaptureFixture[str], target: str, expected: str
) -> None:
    other = f"arn:aws:sagemaker:us-east-1:123456789012:model-package/{OTHER_GROUP}/1"
    assert platform.run("models", "approve", other if target == "OTHER" else target) == 2
    assert expected in capsys.readouterr().err
    assert platform.session.client("sagemaker").describe_model_package(ModelPackageName=other)[
        "ModelApprovalStatus"] == "PendingManualApproval"


def test_models_list_empty_group(platform: Platform, state_machine: str, capsys: pytest.CaptureFixture[str]) -> None:
    platform.session.client("sagemaker").create_model_package_group(ModelPackageGroupName=GROUP)
    assert platform.run("models", "list") == 0
    out, err = capsys.readouterr()
    assert out == ""
    assert f"no model packages in group {GROUP}" in err
