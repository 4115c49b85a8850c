"""The Greengrass v2 recipe of the edge runner, generated from code (tested in tests/stacks/test_edge_stack.py).

The artifact is the bundle zip ``python -m model_code.export --archive`` writes (one top folder ``bundle/``);
Greengrass unpacks it under ``{artifacts:decompressedPath}``. Install builds a venv from the bundle's pinned
requirements (``pipArguments`` lets an offline site point pip at a local wheelhouse); Run starts the runner,
which checks the bundle's checksums before it listens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

RECIPE_FORMAT_VERSION = "2020-01-25"
BUNDLE_ARCHIVE = "bundle.zip"
_BUNDLE = "{artifacts:decompressedPath}/bundle"
_VENV = "{work:path}/venv"
# Building the venv downloads and unpacks onnxruntime, numpy and highdicom: minutes on a small ARM board.
INSTALL_TIMEOUT_S = 1800


@dataclass(frozen=True)
class RunnerSettings:
    """The component's default configuration; a deployment may merge other values per thing group."""

    port: int
    threads: int
    queue: int
    max_request_mb: int
    host: str = "127.0.0.1"  # loopback unless a site opts in: the runner has no authentication of its own
    workers: int = 0  # 0: the runner derives it from the device's CPUs (model_code/core/threads.py)
    pip_arguments: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "port": self.port,
            "threads": self.threads,
            "workers": self.workers,
            "queue": self.queue,
            "maxRequestMb": self.max_request_mb,
            "pipArguments": self.pip_arguments,
        }


def artifact_key(prefix: str, version: str) -> str:
    """Where a component version's bundle lives in the model-artifacts bucket."""
    return f"{prefix}{version}/{BUNDLE_ARCHIVE}"


def build_recipe(
    *, component_name: str, component_version: str, artifact_uri: str, settings: RunnerSettings, description: str
) -> dict[str, Any]:
    """The recipe as a JSON-ready dict; ``artifact_uri`` may hold CDK tokens (the stack serialises it)."""
    run = (
        f"exec {_VENV}/bin/python -m model_code.edge.runner --bundle {_BUNDLE}"
        " --host {configuration:/host} --port {configuration:/port} --threads {configuration:/threads}"
        " --workers {configuration:/workers} --queue {configuration:/queue}"
        " --max-request-mb {configuration:/maxRequestMb}"
    )
    install = (
        f"python3 -m venv {_VENV} && {_VENV}/bin/pip install --no-input --disable-pip-version-check"
        f" {{configuration:/pipArguments}} -r {_BUNDLE}/runner/requirements.txt"
    )
    return {
        "RecipeFormatVersion": RECIPE_FORMAT_VERSION,
        "ComponentName": component_name,
        "ComponentVersion": component_version,
        "ComponentDescription": description,
        "ComponentPublisher": "MONAI Imaging Platform",
        "ComponentConfiguration": {"DefaultConfiguration": settings.to_json()},
        "Manifests": [
            {
                # Linux on x86_64 and aarch64 alike: onnxruntime publishes CPU wheels for both.
                "Platform": {"os": "linux"},
                "Lifecycle": {
                    # Only the bundle's own model_code is importable: what was exported is what runs.
                    "Setenv": {"PYTHONPATH": f"{_BUNDLE}/runner", "PYTHONNOUSERSITE": "1"},
                    "Install": {"Script": install, "Timeout": INSTALL_TIMEOUT_S, "RequiresPrivilege": False},
                    "Run": {"Script": run, "RequiresPrivilege": False},
                },
                "Artifacts": [
                    {"Uri": artifact_uri, "Unarchive": "ZIP", "Permission": {"Read": "OWNER", "Execute": "NONE"}}
                ],
            }
        ],
    }
