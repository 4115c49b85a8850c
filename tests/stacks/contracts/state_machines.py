"""Step Functions contracts: every state machine definition of a cloud assembly, resolved, checked by two
authorities we did not write.

1. ``asl-validator`` (npm, pinned in package.json) over each resolved definition: the Amazon States Language
   schema, JSONPath syntax, ARN shapes of Resource fields.
2. Each Task state's Parameters (and a Distributed Map's ItemReader/ResultWriter) against botocore's input shape
   of the API it calls:
   * arn:aws:states:::<service>:<action>[.sync|.waitForTaskToken] (optimized integrations) and
     arn:aws:states:::aws-sdk:<service>:<action> (SDK integrations) -> botocore (service, PascalCase action);
     both integrations take the API's own PascalCase member names (Step Functions "connect-parameters").
   * a key ending in ``.$`` is a JSONPath/intrinsic: its value is unknown here, but the member (key without .$)
     must exist in the shape; it is filled with a placeholder of the member's type so "required" is satisfied.
   * static values are validated by botocore's ParamValidator (types, required, unknown members, min lengths),
     plus enum, max length and pattern checks from the same shape (ParamValidator does not do those).
3. Every later read of a Task's result names members of the API's output shape (the Describe output for .sync).
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.session
from botocore.validate import ParamValidator

from tests.stacks.contracts.resolve import ResolvedAssembly, iter_resources

ASL_VALIDATOR = Path(__file__).resolve().parents[3] / "node_modules" / ".bin" / "asl-validator"
# Step Functions' service names that differ from botocore's.
SERVICE_NAMES = {"sfn": "stepfunctions", "states": "stepfunctions", "eventbridge": "events",
                 "medicalimaging": "medical-imaging", "sagemakerruntime": "sagemaker-runtime"}

_session = botocore.session.get_session()

# Optimized integrations that take a JSON object where the API takes a string and serialize it themselves
# (connect-sns.html's waitForTaskToken example publishes "Message": {"Input.$": "$", "TaskToken.$": ...};
# connect-sqs.html, connect-lambda.html, connect-eventbridge.html, connect-stepfunctions.html likewise).
JSON_PAYLOAD_MEMBERS = {
    ("sns", "Publish"): ("Message",),
    ("sqs", "SendMessage"): ("MessageBody",),
    ("lambda", "Invoke"): ("Payload",),
    ("stepfunctions", "StartExecution"): ("Input",),
}


def iter_states(definition: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """(name, state) of every state, nested Parallel branches and Map processors included."""
    for name, state in definition.get("States", {}).items():
        yield prefix + name, state
        for branch in state.get("Branches", []):
            yield from iter_states(branch, f"{prefix}{name}/")
        for key in ("Iterator", "ItemProcessor"):
            if key in state:
                yield from iter_states(state[key], f"{prefix}{name}/")


def definitions(assembly: ResolvedAssembly) -> list[tuple[str, str, dict[str, Any]]]:
    """(stack/logical id, role ARN, resolved definition) of every state machine."""
    out = []
    for stack, logical, resource in iter_resources(assembly, "AWS::StepFunctions::StateMachine"):
        props = assembly.resolve(stack, resource["Properties"])
        text = props.get("DefinitionString")
        definition = json.loads(text) if isinstance(text, str) else props.get("Definition")
        out.append((f"{stack}/{logical}", props["RoleArn"], definition))
    return out


def asl_validate(definition: dict[str, Any], path: Path) -> tuple[bool, str]:
    path.write_text(json.dumps(definition, indent=1))
    result = subprocess.run([str(ASL_VALIDATOR), "--json-path", str(path)], capture_output=True, text=True)
    return result.returncode == 0, (result.stdout + result.stderr).strip()


def api_of(resource: str) -> tuple[str, str] | None:
    """("sagemaker", "CreateTrainingJob") for arn:aws:states:::sagemaker:createTrainingJob.sync; None for Lambda
    ARNs and activities."""
    match = re.fullmatch(r"arn:[^:]+:states:::(?:aws-sdk:)?(?P<service>[a-z0-9-]+):(?P<action>[A-Za-z0-9]+)"
                         r"(?:\.(?:sync(?::2)?|waitForTaskToken))?", resource)
    if not match:
        return None
    service = SERVICE_NAMES.get(match["service"], match["service"])
    action = match["action"][0].upper() + match["action"][1:]
    return service, action


def placeholder(shape: Any) -> Any:
    kind = shape.type_name
    if kind == "structure":
        return {name: placeholder(shape.members[name]) for name in shape.required_members}
    if kind == "list":
        return [placeholder(shape.member)] * int(shape.metadata.get("min", 0))
    if kind == "map":
        return {}
    if kind in ("integer", "long"):
        return int(shape.metadata.get("min", 0))
    if kind in ("float", "double"):
        return float(shape.metadata.get("min", 0))
    if kind == "boolean":
        return False
    if kind == "timestamp":
        return "2026-01-01T00:00:00Z"
    if kind == "blob":
        return b"x"
    if shape.enum:
        return shape.enum[0]
    return "x" * max(1, int(shape.metadata.get("min", 1)))


def concretize(value: Any, shape: Any, path: str, problems: list[str]) -> Any:
    """The Parameters with every ``key.$`` replaced by ``key: <placeholder>``; unknown members reported."""
    if isinstance(value, dict) and shape.type_name == "structure":
        out = {}
        for key, item in value.items():
            dynamic = key.endswith(".$")
            name = key[:-2] if dynamic else key
            if name not in shape.members:
                problems.append(f"{path}.{name}: not a member of {shape.name} "
                                f"(members: {sorted(shape.members)[:40]})")
                continue
            member = shape.members[name]
            out[name] = placeholder(member) if dynamic else concretize(item, member, f"{path}.{name}", problems)
        return out
    if isinstance(value, dict) and shape.type_name == "map":
        out = {}
        for key, item in value.items():
            name = key[:-2] if key.endswith(".$") else key
            concretize(name, shape.key, f"{path} key {name!r}", problems)
            out[name] = placeholder(shape.value) if key.endswith(".$") else \
                concretize(item, shape.value, f"{path}.{name}", problems)
        return out
    if isinstance(value, list) and shape.type_name == "list":
        return [concretize(item, shape.member, f"{path}[{i}]", problems) for i, item in enumerate(value)]
    if isinstance(value, str) and shape.type_name == "string":
        if shape.enum and value not in shape.enum:
            problems.append(f"{path}: {value!r} is not one of {shape.enum[:6]}... ({len(shape.enum)} values)")
        if "max" in shape.metadata and len(value) > shape.metadata["max"]:
            problems.append(f"{path}: {len(value)} characters, more than {shape.metadata['max']}")
        pattern = shape.metadata.get("pattern")
        if pattern:
            try:
                if not re.fullmatch(pattern, value, flags=re.DOTALL) and not re.search(pattern, value):
                    problems.append(f"{path}: {value!r} does not match {pattern}")
            except re.error:
                pass  # a Java-only construct: botocore does not check patterns either
    return value


def check_task(resource: str, parameters: dict[str, Any]) -> tuple[str, list[str]]:
    api = api_of(resource)
    if api is None:
        return "not an AWS API integration", []
    service, action = api
    model = _session.get_service_model(service)
    if action not in model.operation_names:
        return f"{service}:{action}", [f"{service} has no operation {action}"]
    shape = model.operation_model(action).input_shape
    problems: list[str] = []
    parameters = dict(parameters)
    for member in JSON_PAYLOAD_MEMBERS.get((service, action), ()):
        if isinstance(parameters.get(member), (dict, list)) and not resource.split(":::")[1].startswith("aws-sdk:"):
            # Serialized by Step Functions; its own keys may still be JSONPaths: the string is unknown here.
            parameters[f"{member}.$"] = "(serialized by Step Functions)"
            del parameters[member]
    concrete = concretize(parameters, shape, action, problems)
    report = ParamValidator().validate(concrete, shape)
    if report.has_errors():
        problems.append(report.generate_report())
    return f"{service}:{action}", problems


# .sync integrations answer with the Describe call's output (Step Functions "Run a Job (.sync)").
SYNC_OUTPUT = {("sagemaker", "CreateTrainingJob"): "DescribeTrainingJob",
               ("sagemaker", "CreateTransformJob"): "DescribeTransformJob",
               ("sagemaker", "CreateProcessingJob"): "DescribeProcessingJob"}
# A reference path: $.a.b[0].c or $.a[?(@.x == 'y')].b (filters and indexes are skipped, names checked).
_PATH_TOKEN = re.compile(r"\$\.[A-Za-z0-9_]+(?:\[[^\]]*\]|\.[A-Za-z0-9_]+)*")


def output_shape(resource: str) -> Any:
    api = api_of(resource)
    if api is None:
        return None
    service, action = api
    model = _session.get_service_model(service)
    if resource.endswith(".sync") and api in SYNC_OUTPUT:
        action = SYNC_OUTPUT[api]
    return model.operation_model(action).output_shape


def walk(shape: Any, members: list[str]) -> str | None:
    """None when the member path exists in ``shape``; else the first member that does not."""
    for name in members:
        while shape.type_name == "list":
            shape = shape.member
        if shape.type_name != "structure" or name not in shape.members:
            return name
        shape = shape.members[name]
    return None


def result_references(definition: dict[str, Any], states: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """Every later read of a Task's result (``$.<ResultPath>.<member>...``) must name members of the API's
    output shape (the Describe output for .sync jobs); ResultSelector paths are checked against the raw output."""
    problems = []
    text = json.dumps(definition)
    for name, state in states:
        if state.get("Type") != "Task" or not state.get("ResultPath"):
            continue
        shape = output_shape(state["Resource"])
        if shape is None:
            continue
        selector = state.get("ResultSelector")
        if selector:
            for key, path in selector.items():
                if key.endswith(".$") and path.startswith("$."):
                    missing = walk(shape, [m.split("[")[0] for m in path[2:].split(".")])
                    if missing:
                        problems.append(f"{name}: ResultSelector {path}: {missing} is not in {shape.name}")
            continue
        prefix = state["ResultPath"].rstrip(".") + "."
        for match in _PATH_TOKEN.findall(text):
            if match.startswith(prefix):
                members = re.findall(r"(?:^|\.)([A-Za-z0-9_]+)", re.sub(r"\[[^\]]*\]", "", match[len(prefix):]))
                missing = walk(shape, members)
                if missing:
                    problems.append(f"{match} reads {missing}, not in {shape.name} (the result of {name})")
    return problems


def check_definition(definition: dict[str, Any]) -> list[str]:
    """Every botocore-shape problem of ``definition``'s API calls and result reads (empty when it honours them)."""
    problems: list[str] = []
    for state_name, state in iter_states(definition):
        # Distributed Map: ItemReader / ResultWriter call an API too (arn:aws:states:::s3:getObject, ...).
        for part in ("ItemReader", "ResultWriter"):
            spec = state.get(part)
            if isinstance(spec, dict) and "Resource" in spec:
                api, found = check_task(spec["Resource"], spec.get("Parameters") or spec.get("Arguments") or {})
                problems.extend(f"{state_name}.{part} ({api}): {problem}" for problem in found)
        if state.get("Type") != "Task":
            continue
        api, found = check_task(state["Resource"], state.get("Parameters", {}))
        problems.extend(f"{state_name} ({api}): {problem}" for problem in found)
    problems.extend(result_references(definition, list(iter_states(definition))))
    return problems
