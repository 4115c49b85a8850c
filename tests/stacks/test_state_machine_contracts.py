"""Every state machine the platform synthesizes, judged by asl-validator and by botocore's input shapes of the APIs
its tasks call (tests/stacks/contracts/state_machines.py). Each check has a twin that must fail."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from tests.stacks.assembly import Assembly
from tests.stacks.contracts.resolve import ResolvedAssembly
from tests.stacks.contracts.state_machines import asl_validate, check_definition, definitions, iter_states

ASSEMBLIES = ("assembly", "variant_assembly", "codestar_assembly")


def _definitions(request: pytest.FixtureRequest, name: str) -> list[tuple[str, str, dict[str, Any]]]:
    built: Assembly = request.getfixturevalue(name)
    return definitions(ResolvedAssembly.load(built.outdir))


@pytest.mark.parametrize("assembly_name", ASSEMBLIES)
def test_every_state_machine_is_valid_asl(request: pytest.FixtureRequest, assembly_name: str, tmp_path: Path):
    found = _definitions(request, assembly_name)
    assert found, "the platform synthesizes at least the training workflow"
    for name, _, definition in found:
        ok, output = asl_validate(definition, tmp_path / "definition.asl.json")
        assert ok, f"{name}: asl-validator refused the definition: {output}"


@pytest.mark.parametrize("assembly_name", ASSEMBLIES)
def test_every_task_matches_the_api_it_calls(request: pytest.FixtureRequest, assembly_name: str):
    for name, _, definition in _definitions(request, assembly_name):
        tasks = [state for _, state in iter_states(definition) if state.get("Type") == "Task"]
        assert tasks, f"{name} has no Task state to check"
        assert check_definition(definition) == [], name


def _training_definition(request: pytest.FixtureRequest) -> dict[str, Any]:
    (_name, _, definition), *_ = [d for d in _definitions(request, "assembly") if "Training" in d[0]]
    return copy.deepcopy(definition)


def _state_calling(definition: dict[str, Any], resource_part: str) -> dict[str, Any]:
    return next(state for _, state in iter_states(definition) if resource_part in str(state.get("Resource", "")))


def test_a_dangling_next_is_refused_by_asl_validator(request: pytest.FixtureRequest, tmp_path: Path):
    definition = _training_definition(request)
    state = next(state for _, state in iter_states(definition) if "Next" in state)
    state["Next"] = "NoSuchState"
    ok, output = asl_validate(definition, tmp_path / "broken.asl.json")
    assert not ok
    assert "NoSuchState" in output


def test_an_unknown_parameter_of_create_training_job_is_named(request: pytest.FixtureRequest):
    definition = _training_definition(request)
    _state_calling(definition, "createTrainingJob")["Parameters"]["TrainingImageUri"] = "x"
    problems = check_definition(definition)
    assert any("TrainingImageUri: not a member of CreateTrainingJobRequest" in p for p in problems), problems


def test_a_missing_required_parameter_is_named(request: pytest.FixtureRequest):
    definition = _training_definition(request)
    parameters = _state_calling(definition, "createTrainingJob")["Parameters"]
    parameters.pop("RoleArn", None)
    parameters.pop("RoleArn.$", None)
    problems = check_definition(definition)
    assert any("RoleArn" in p for p in problems), problems


def test_a_result_read_the_api_does_not_return_is_named(request: pytest.FixtureRequest):
    definition = _training_definition(request)
    text = json.dumps(definition)
    assert "ModelArtifacts" in text, "the workflow reads the training job's ModelArtifacts"
    broken = json.loads(text.replace("ModelArtifacts", "ModelArtifactz"))
    problems = check_definition(broken)
    assert any("ModelArtifactz" in p for p in problems), problems
