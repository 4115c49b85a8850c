"""Which stacks `make deploy` deploys before the image pipeline runs, and which after, read from the cloud assembly.

A stack goes after the images and the seeded artifacts when it needs them at deploy time, or depends on one that
does; everything else is foundation. Needing images is read from the template (an SSM parameter under the stage's
image-URI prefix, resolved by CloudFormation at deploy time: the rule the release pipeline uses,
``stacks.pipeline.stack.image_uri_readers``); needing a seeded artifact is the table ``SEEDED`` below. Order
within a phase follows the assembly's dependencies, so a new stack lands in the right phase by itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

# Stacks whose deployment reads an object `make deploy` seeds, and why.
SEEDED = {
    "Serving": "the endpoint loads the model archive at serving.modelDataKey when it is created",
    "Edge": "Greengrass reads the edge bundle when the component version is created",
}
STACK_ARTIFACT = "aws:cloudformation:stack"
BOOTSTRAP_PARAMETER = "BootstrapVersion"


@dataclass(frozen=True)
class PlannedStack:
    stack_id: str  # the construct ID (`cdk deploy` selects by it)
    stack_name: str  # the CloudFormation name
    dependencies: tuple[str, ...]
    reads_images: bool


@dataclass(frozen=True)
class DeployPlan:
    foundation: tuple[PlannedStack, ...]
    rest: tuple[PlannedStack, ...]
    # The SSM parameter holding the bootstrap version, and the lowest version the templates accept.
    bootstrap_parameter: str
    bootstrap_version: int

    @property
    def stacks(self) -> tuple[PlannedStack, ...]:
        return (*self.foundation, *self.rest)

    def ids(self, stacks: tuple[PlannedStack, ...]) -> list[str]:
        return [stack.stack_id for stack in stacks]


def _bootstrap_requirement(template: dict) -> tuple[str, int]:
    """The bootstrap version parameter and the lowest version CDK's CheckBootstrapVersion rule accepts."""
    parameter = template.get("Parameters", {}).get(BOOTSTRAP_PARAMETER, {})
    name = str(parameter.get("Default", "/cdk-bootstrap/hnb659fds/version"))
    refused: list[str] = []
    for rule in template.get("Rules", {}).values():
        for assertion in rule.get("Assertions", []):
            contains = assertion.get("Assert", {}).get("Fn::Not", [{}])[0].get("Fn::Contains")
            if contains:
                refused = [str(v) for v in contains[0]]
    return name, max((int(v) for v in refused), default=0) + 1


def read_plan(outdir: Path, *, image_parameter_prefix: str) -> DeployPlan:
    """The plan of the assembly in ``outdir`` (``make synth`` writes cdk.out)."""
    manifest_file = outdir / "manifest.json"
    if not manifest_file.is_file():
        raise FileNotFoundError(f"{manifest_file} is missing: run `make synth STAGE=<stage>` first")
    artifacts = json.loads(manifest_file.read_text())["artifacts"]
    stack_ids = [a for a, artifact in artifacts.items() if artifact["type"] == STACK_ARTIFACT]
    if not stack_ids:
        raise ValueError(f"{outdir} holds no stack (a pipeline synth? run `make synth` without -c pipeline=true)")
    templates = {a: json.loads((outdir / artifacts[a]["properties"]["templateFile"]).read_text()) for a in stack_ids}
    planned = {}
    for stack_id in stack_ids:
        parameters = templates[stack_id].get("Parameters", {}).values()
        planned[stack_id] = PlannedStack(
            stack_id=stack_id,
            stack_name=artifacts[stack_id]["properties"].get("stackName", stack_id),
            dependencies=tuple(d for d in artifacts[stack_id].get("dependencies", []) if d in artifacts
                               and artifacts[d]["type"] == STACK_ARTIFACT),
            reads_images=any(str(p.get("Default", "")).startswith(f"{image_parameter_prefix}/") for p in parameters),
        )
    ordered = _topological(planned)
    late: set[str] = set()
    for stack in ordered:  # dependencies first, so a dependent sees its dependencies' phase
        if stack.reads_images or stack.stack_id in SEEDED or any(d in late for d in stack.dependencies):
            late.add(stack.stack_id)
    bootstrap_parameter, bootstrap_version = _bootstrap_requirement(templates[stack_ids[0]])
    return DeployPlan(
        foundation=tuple(s for s in ordered if s.stack_id not in late),
        rest=tuple(s for s in ordered if s.stack_id in late),
        bootstrap_parameter=bootstrap_parameter,
        bootstrap_version=bootstrap_version,
    )


def _topological(planned: dict[str, PlannedStack]) -> list[PlannedStack]:
    """Dependencies before dependents; otherwise the assembly's order."""
    ordered: list[PlannedStack] = []
    placed: set[str] = set()
    while len(ordered) < len(planned):
        ready = [s for s in planned.values() if s.stack_id not in placed and set(s.dependencies) <= placed]
        if not ready:
            raise ValueError(f"a dependency cycle among {sorted(set(planned) - placed)}")
        ordered.append(ready[0])
        placed.add(ready[0].stack_id)
    return ordered
