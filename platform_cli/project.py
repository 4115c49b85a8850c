"""Which deployment the CLI talks to: project name and stage, and the stack names they give.

Stack names follow ``stacks/platform.py``: ``<projectName>-<stage>-<lower(stack id)>``. Inside the repository the
project name defaults to cdk.json's ``platform.defaults.projectName`` (or the stage's override); elsewhere it
must be given, because guessing would point the CLI at someone else's stacks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from platform_cli.errors import UsageError

CDK_JSON = "cdk.json"
CONTEXT_ROOT = "platform"
DEFAULT_STAGE = "dev"


@dataclass(frozen=True)
class Deployment:
    project: str
    stage: str

    def stack_name(self, stack_id: str) -> str:
        return f"{self.project}-{self.stage}-{stack_id.lower()}"


def find_cdk_json(start: Path) -> Path | None:
    """The nearest cdk.json at or above ``start`` (the CLI may run from a subfolder of the repository)."""
    for folder in (start, *start.parents):
        candidate = folder / CDK_JSON
        if candidate.is_file():
            return candidate
    return None


def project_from_cdk_json(path: Path, *, stage: str) -> str:
    """``platform.stages.<stage>.projectName`` if the stage overrides it, else ``platform.defaults.projectName``."""
    try:
        context = json.loads(path.read_text())["context"][CONTEXT_ROOT]
        stage_doc = (context.get("stages") or {}).get(stage) or {}
        name = stage_doc.get("projectName") or context["defaults"]["projectName"]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise UsageError(
            f"{path} has no readable context.{CONTEXT_ROOT}.defaults.projectName ({error!r}): pass --project"
        ) from error
    if not isinstance(name, str) or not name:
        raise UsageError(f"{path}: projectName must be a non-empty string, got {name!r}: pass --project")
    return name


def resolve_deployment(*, project: str | None, stage: str, cwd: Path) -> Deployment:
    if project:
        return Deployment(project=project, stage=stage)
    cdk_json = find_cdk_json(cwd)
    if cdk_json is None:
        raise UsageError(
            f"--project is required outside the platform repository (no {CDK_JSON} at or above {cwd})"
        )
    return Deployment(project=project_from_cdk_json(cdk_json, stage=stage), stage=stage)
