"""Which deployed code made a recorded call, and the deployed names of what the test named.

A test runs a handler with its own names (``inbox-bucket``, a moto topic, a stubbed model ``Model-Abc123``); the
proof judges the deployed names, learned from the same templates the policies come from, by aligning:

1. the handler's ``settings`` with the ``Settings`` its function's template environment gives, field by field;
2. the handler's ``event`` with the event patterns of the rules that invoke the function: a pattern's single
   literal value (``detail.bucket.name``, ``detail.datastoreId``) is what a delivered event carries there;
3. a Describe answer of a resource the templates create with that resource's properties (DESCRIBED): the current
   endpoint config the approval function reads is the serving stack's config, its model that stack's model;
4. WORLD_RULES for names that come from a request a person writes: the platform's one data store; the S3
   series an async request names lies under the prefix request_inference writes requests to (the deployed
   endpoint's role reads nothing else, see docs/containers.md).

A test value aligned with two deployed values is a naming clash in the tests, reported with both.
"""

from __future__ import annotations

import dataclasses
import importlib
import re
from dataclasses import dataclass
from typing import Any

from tests.stacks.contracts.recorder import PROJECT_ROOT
from tests.stacks.contracts.resolve import iter_resources
from tests.stacks.contracts.world import World

# Describe call -> (template type, the request parameter that names the resource, its name attribute).
DESCRIBED = {
    ("sagemaker", "DescribeEndpoint"): ("AWS::SageMaker::Endpoint", "EndpointName", "EndpointName"),
    ("sagemaker", "DescribeEndpointConfig"): ("AWS::SageMaker::EndpointConfig", "EndpointConfigName",
                                              "EndpointConfigName"),
    ("sagemaker", "DescribeModel"): ("AWS::SageMaker::Model", "ModelName", "ModelName"),
}
# Where the runtime packages' code runs: model_code/<package>/ -> the image (containers/<image>) that carries it.
RUNTIME_IMAGES_MODULE = "model_code.runtimes"
_MIN_NAME = 3  # shorter test values are never substituted (they would match inside other names)


@dataclass(frozen=True)
class Entry:
    """One deployed unit of code and the role it runs as."""

    unit: str  # "stacks/approval/runtime/deploy_approved.py", "model_code/serving/"
    role: str  # "<stack>/<role logical id>"
    function: str | None = None  # "<stack>/<function logical id>" for a Lambda handler
    settings: dict[str, Any] | None = None  # the Settings its template environment gives
    patterns: tuple[dict[str, Any], ...] = ()  # event patterns of the rules that invoke it


def lambda_entries(world: World) -> dict[str, Entry]:
    """stacks/<x>/runtime/<module>.py -> the function whose asset carries that very file, its role and Settings."""
    assembly = world.assembly
    patterns: dict[str, list[dict[str, Any]]] = {}
    for stack, _logical, rule in iter_resources(assembly, "AWS::Events::Rule"):
        props = assembly.resolve(stack, rule["Properties"])
        for target in props.get("Targets", []):
            patterns.setdefault(target["Arn"], []).append(props["EventPattern"])
    entries: dict[str, Entry] = {}
    for stack, logical, resource in iter_resources(assembly, "AWS::Lambda::Function"):
        props = assembly.resolve(stack, resource["Properties"])
        code = props.get("Code", {})
        module = props.get("Handler", "").rsplit(".", 1)[0]
        asset = assembly.outdir / f"asset.{str(code.get('S3Key', '')).removesuffix('.zip')}" / f"{module}.py"
        if not asset.is_file():
            continue  # inline code or CDK's own handlers: not the platform's code
        sources = [p for p in PROJECT_ROOT.glob(f"stacks/*/runtime/{module}.py") if p.read_bytes() == asset.read_bytes()]
        if not sources:
            continue
        unit = str(sources[0].relative_to(PROJECT_ROOT))
        handler = importlib.import_module(unit.removesuffix(".py").replace("/", "."))
        environment = props.get("Environment", {}).get("Variables", {})
        settings = handler.Settings.from_environment(environment) if hasattr(handler, "Settings") else None
        arn = assembly.resolve(stack, {"Fn::GetAtt": [logical, "Arn"]})
        entries[unit] = Entry(unit, world.role_of_arn(props["Role"]), f"{stack}/{logical}",
                              dataclasses.asdict(settings) if settings is not None else None,
                              tuple(patterns.get(arn, [])))
    return entries


def runtime_entries(world: World) -> dict[str, Entry]:
    """model_code/<package>/ -> the role of the SageMaker models whose image carries that runtime package."""
    images = importlib.import_module(RUNTIME_IMAGES_MODULE).IMAGES
    packages = {folder.removeprefix("containers/"): package for folder, package in images.items()
                if folder.startswith("containers/")}
    entries: dict[str, Entry] = {}
    for stack, _logical, resource in iter_resources(world.assembly, "AWS::SageMaker::Model"):
        props = world.assembly.resolve(stack, resource["Properties"])
        repository = props["PrimaryContainer"]["Image"].partition("/")[2].split(":", 1)[0]
        package = packages.get(repository.rsplit("/", 1)[-1])
        if package is not None:
            unit = f"model_code/{package}/"
            entries[unit] = Entry(unit, world.role_of_arn(props["ExecutionRoleArn"]))
    return entries


def entry_of(call: dict[str, Any], entries: dict[str, Entry]) -> Entry | None:
    """The deployed code of a call: its outermost code frame's module, or the runtime package it lies in."""
    if not call.get("code"):
        return None
    outermost = call["code"][0].split(":", 1)[0]
    if outermost in entries:
        return entries[outermost]
    for unit, entry in entries.items():
        if unit.endswith("/") and outermost.startswith(unit):
            return entry
    return None


class Names:
    """Test value -> deployed value, learned from every recorded call of one assembly.

    What a unit's own settings, event and answers say holds for that unit's calls; a name learned by one unit only
    (or the same way by every unit) also holds for the others: import_seg reads the inference bucket that
    request_inference's settings name. Two tests may reuse one name for different resources of different units.
    """

    def __init__(self, world: World) -> None:
        self.world = world
        self.by_unit: dict[str, dict[str, str]] = {}
        self.clashes: list[str] = []
        self._patterns: dict[str, tuple[dict[str, str], re.Pattern[str] | None]] = {}

    def learn(self, unit: str, test: Any, deployed: Any, where: str) -> None:
        """Align ``test`` with ``deployed`` (same structure); every differing string pair becomes a mapping."""
        if isinstance(test, dict) and isinstance(deployed, dict):
            for key in test.keys() & deployed.keys():
                self.learn(unit, test[key], deployed[key], f"{where}.{key}")
        elif isinstance(test, list) and isinstance(deployed, list) and len(test) == len(deployed):
            for index, (a, b) in enumerate(zip(test, deployed, strict=True)):
                self.learn(unit, a, b, f"{where}[{index}]")
        elif isinstance(test, str) and isinstance(deployed, str) and test != deployed and len(test) >= _MIN_NAME:
            mapping = self.by_unit.setdefault(unit, {})
            known = mapping.get(test)
            if known is not None and known != deployed:
                self.clashes.append(f"{unit}: {test!r} stands for both {known!r} and {deployed!r} ({where}): give "
                                    "its tests distinct names for distinct resources")
            mapping[test] = deployed
            self._patterns.clear()

    def learn_event(self, unit: str, event: Any, patterns: tuple[dict[str, Any], ...], where: str) -> None:
        for pattern in patterns:
            self._learn_pattern(unit, event, pattern, where)

    def _learn_pattern(self, unit: str, event: Any, pattern: Any, where: str) -> None:
        if not isinstance(event, dict) or not isinstance(pattern, dict):
            return
        for key, rule in pattern.items():
            if isinstance(rule, dict):
                self._learn_pattern(unit, event.get(key), rule, f"{where}.{key}")
            elif isinstance(rule, list) and len(rule) == 1 and isinstance(rule[0], str):
                value = event.get(key)
                if isinstance(value, str):
                    self.learn(unit, value, rule[0], f"{where}.{key} (rule pattern)")

    def learn_answer(self, unit: str, call: dict[str, Any]) -> None:
        """A Describe answer of a resource the templates create: its properties are the deployed values."""
        described = DESCRIBED.get((call["service"], call["operation"]))
        if described is None or not call.get("response"):
            return
        kind, parameter, attribute = described
        name = self.translate(unit, call["params"]).get(parameter)
        for stack, logical, resource in iter_resources(self.world.assembly, kind):
            if self.world.assembly.resolve(stack, {"Fn::GetAtt": [logical, attribute]}) == name:
                props = self.world.assembly.resolve(stack, resource["Properties"])
                self.learn(unit, call["response"], props, f"{call['operation']} answer vs {stack}/{logical}")

    def mapping(self, unit: str) -> dict[str, str]:
        """The unit's own names over the names every unit that learned them agrees on."""
        shared: dict[str, str] = {}
        ambiguous: set[str] = set()
        for mapping in self.by_unit.values():
            for test, deployed in mapping.items():
                if shared.get(test, deployed) != deployed:
                    ambiguous.add(test)
                shared[test] = deployed
        return {**{k: v for k, v in shared.items() if k not in ambiguous}, **self.by_unit.get(unit, {})}

    def translate(self, unit: str, value: Any) -> Any:
        """``value`` with every test name the unit knows replaced by its deployed name (whole names only)."""
        if unit not in self._patterns:
            mapping = self.mapping(unit)
            names = sorted(mapping, key=len, reverse=True)
            pattern = re.compile(r"(?<![A-Za-z0-9_-])(" + "|".join(map(re.escape, names)) + r")(?![A-Za-z0-9_-])") \
                if names else None
            self._patterns[unit] = (mapping, pattern)
        mapping, pattern = self._patterns[unit]
        return _substitute(value, mapping, pattern)


def _substitute(value: Any, mapping: dict[str, str], pattern: re.Pattern[str] | None) -> Any:
    if isinstance(value, dict):
        return {k: _substitute(v, mapping, pattern) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, mapping, pattern) for v in value]
    if not isinstance(value, str) or pattern is None:
        return value
    return pattern.sub(lambda m: mapping[m.group(1)], value)


def serving_request_prefix(entries: dict[str, Entry]) -> tuple[str, str] | None:
    """(bucket, prefix) where request_inference writes the async requests: the one S3 place a deployed request
    names (its INFERENCE_BUCKET and INPUT_PREFIX)."""
    for entry in entries.values():
        if entry.unit.endswith("/request_inference.py") and entry.settings:
            return entry.settings["inference_bucket"], entry.settings["input_prefix"]
    return None


def world_rules(call: dict[str, Any], entry: Entry, world: World, requests: tuple[str, str] | None) -> dict[str, Any]:
    """The parameters after the world rules (rule 4 of the module docstring); ``requests``: where request_inference
    writes the async requests."""
    params = dict(call["params"])
    datastore = world.the_datastore()
    if datastore and "datastoreId" in params and params["datastoreId"] not in world.datastores:
        params["datastoreId"] = datastore
    serving_s3 = entry.unit.startswith("model_code/") and call["signing_name"] == "s3"
    if serving_s3 and requests is not None and params.get("Bucket") != requests[0]:
        bucket, prefix = requests
        params["Bucket"] = bucket
        for key in ("Key", "Prefix"):
            if key in params:
                params[key] = prefix + str(params[key])
    return params


def translated(calls: list[dict[str, Any]], world: World) -> tuple[list[tuple[Entry, dict[str, Any]]], Names]:
    """Every call of code this assembly deploys, with its parameters in deployed names."""
    entries = {**lambda_entries(world), **runtime_entries(world)}
    names = Names(world)
    mine = [(entry, call) for call in calls if (entry := entry_of(call, entries)) is not None]
    for entry, call in mine:
        if entry.settings and call.get("settings"):
            names.learn(entry.unit, call["settings"], entry.settings, "Settings")
        if call.get("event") and entry.patterns:
            names.learn_event(entry.unit, call["event"], entry.patterns, "event")
    for entry, call in mine:  # in recorded order: a later Describe names what an earlier answer said
        names.learn_answer(entry.unit, call)
    out = []
    requests = serving_request_prefix(entries)
    for entry, call in mine:
        call = {**call, "params": names.translate(entry.unit, call["params"])}
        out.append((entry, {**call, "params": world_rules(call, entry, world, requests)}))
    return out, names

