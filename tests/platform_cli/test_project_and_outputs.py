"""Which stacks the CLI reads (project, stage) and what it says when a stack or an output is missing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from platform_cli.errors import UsageError
from platform_cli.main import main
from platform_cli.outputs import ALL_OUTPUTS, OutputRef
from platform_cli.project import Deployment, resolve_deployment
from tests.platform_cli.fakes import PROJECT, REPO_ROOT, Platform


@pytest.mark.parametrize(
    ("stage_doc", "stage", "expected"),
    [
        ({}, "dev", "from-defaults"),  # no override: the defaults' projectName
        ({"projectName": "from-stage"}, "prod", "from-stage"),  # a stage may rename the project
        ({"projectName": "from-stage"}, "dev", "from-defaults"),  # another stage's override does not leak
    ],
)
def test_project_defaults_to_cdk_json(tmp_path: Path, stage_doc: dict[str, str], stage: str, expected: str) -> None:
    context = {"platform": {"defaults": {"projectName": "from-defaults"}, "stages": {"dev": {}, "prod": stage_doc}}}
    (tmp_path / "cdk.json").write_text(json.dumps({"context": context}))
    nested = tmp_path / "sub" / "dir"
    nested.mkdir(parents=True)  # run from a subfolder of the repository: cdk.json is found above it
    assert resolve_deployment(project=None, stage=stage, cwd=nested) == Deployment(expected, stage)


def test_repository_cdk_json_names_the_stacks() -> None:
    deployment = resolve_deployment(project=None, stage="prod", cwd=REPO_ROOT)
    assert deployment.stack_name("Data") == f"{PROJECT}-prod-data"  # stacks/platform.py's naming


def test_explicit_project_wins(tmp_path: Path) -> None:
    assert resolve_deployment(project="other", stage="dev", cwd=tmp_path).stack_name("Imaging") == "other-dev-imaging"


def test_project_required_outside_the_repository(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(UsageError, match="--project is required"):
        resolve_deployment(project=None, stage="dev", cwd=tmp_path)
    assert main(["models", "list"], cwd=tmp_path) == 2
    assert "--project is required" in capsys.readouterr().err


def test_broken_cdk_json_asks_for_project(tmp_path: Path) -> None:
    (tmp_path / "cdk.json").write_text('{"app": "python app.py"}')
    with pytest.raises(UsageError, match="pass --project"):
        resolve_deployment(project=None, stage="dev", cwd=tmp_path)


def test_missing_stack_names_the_stack(platform: Platform, capsys: pytest.CaptureFixture[str]) -> None:
    assert platform.run("models", "list") == 1
    err = capsys.readouterr().err
    assert f"stack {PROJECT}-dev-training does not exist in us-east-1" in err
    assert "--project/--stage/--region" in err


def test_missing_output_names_stack_and_output(platform: Platform, capsys: pytest.CaptureFixture[str]) -> None:
    platform.deploy("Training", {"StateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:t"})
    assert platform.run("models", "list") == 1
    err = capsys.readouterr().err
    assert f"stack {PROJECT}-dev-training has no output 'ModelPackageGroupName'" in err
    assert "['StateMachineArn']" in err


@pytest.mark.parametrize(
    "argv",
    [
        ["--stage", "prod", "models", "list"],  # deployment options before the command
        ["models", "list", "--stage", "prod"],  # ... and after it
    ],
)
def test_stage_option_anywhere(platform: Platform, capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    assert platform.run(*argv) == 1
    assert f"stack {PROJECT}-prod-training does not exist" in capsys.readouterr().err


def test_bad_usage_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["segment"])  # IMAGE_SET_ID missing: argparse's message and exit code
    assert exit_info.value.code == 2
    assert "IMAGE_SET_ID" in capsys.readouterr().err


def test_prefixes_match_the_data_stack() -> None:
    """The CLI keeps the bucket prefixes as constants so that it does not import aws_cdk at run time."""
    from platform_cli.dicom_import import INBOX_INCOMING_PREFIX
    from platform_cli.segment import INFERENCE_INPUT_PREFIX
    from stacks.data.stack import INBOX_INCOMING_PREFIX as STACK_INCOMING
    from stacks.data.stack import INFERENCE_INPUT_PREFIX as STACK_INPUT

    assert (INBOX_INCOMING_PREFIX, INFERENCE_INPUT_PREFIX) == (STACK_INCOMING, STACK_INPUT)


@pytest.mark.parametrize("ref", ALL_OUTPUTS, ids=lambda ref: f"{ref.stack_id}.{ref.key}")
def test_output_is_declared_by_its_stack(ref: OutputRef) -> None:
    """A cheap guard against renames: the stack module declares an output of that exact name.

    (The synthesized templates are the real contract; tests/stacks synthesizes them once per session.)
    """
    # The deployed stacks kept their construct IDs when these two packages were renamed (stacks/platform.py).
    package = {"Imaging": "healthimaging", "Images": "container_images"}.get(ref.stack_id, ref.stack_id.lower())
    source = (REPO_ROOT / "stacks" / package / "stack.py").read_text()
    assert f'"{ref.key}"' in source
