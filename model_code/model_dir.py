"""The model directory contract: ``model.ts`` (TorchScript) beside ``metadata.json``.

Every serving path (CLI, async handler, Triton model, edge runner) and the trainer read and write
model directories through this module, so the file names and the metadata schema live in one place.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

MODEL_FILE = "model.ts"
METADATA_FILE = "metadata.json"
STATE_DICT_FILE = "model.pt"


class ModelDirectoryError(ValueError):
    """A model directory is missing a file or carries metadata that breaks the contract."""


@dataclass(frozen=True)
class NetworkSpec:
    """How the network was built (MONAI class name and its constructor arguments)."""

    name: str
    args: dict[str, Any]


@dataclass(frozen=True)
class Preprocessing:
    """Pre-processing the model was trained with; inference must apply the same."""

    orientation: str = "RAS"
    spacing_mm: tuple[float, float, float] = (1.5, 1.5, 2.0)
    intensity_window: tuple[float, float] = (-57.0, 164.0)
    scaled_range: tuple[float, float] = (0.0, 1.0)
    clip: bool = True


@dataclass(frozen=True)
class InferenceSpec:
    """Sliding-window settings (the model zoo bundle's inference.json)."""

    roi_size: tuple[int, int, int] = (96, 96, 96)
    overlap: float = 0.5
    sw_batch_size: int = 4


@dataclass(frozen=True)
class ModelMetadata:
    """metadata.json, MONAI-bundle style. Unknown keys are kept in ``extra`` and written back."""

    name: str
    version: str
    task: str
    network: NetworkSpec
    labels: dict[int, str]
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    inference: InferenceSpec = field(default_factory=InferenceSpec)
    metrics: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        document = asdict(self)
        extra = document.pop("extra")
        document["labels"] = {str(k): v for k, v in self.labels.items()}
        return {**extra, **document}

    @classmethod
    def from_json(cls, document: dict[str, Any], *, source: str = METADATA_FILE) -> ModelMetadata:
        try:
            known = {"name", "version", "task", "network", "labels", "preprocessing", "inference", "metrics"}
            pre = document.get("preprocessing", {})
            inf = document.get("inference", {})
            return cls(
                name=str(document["name"]),
                version=str(document["version"]),
                task=str(document["task"]),
                network=NetworkSpec(name=str(document["network"]["name"]), args=dict(document["network"]["args"])),
                labels={int(k): str(v) for k, v in document["labels"].items()},
                preprocessing=Preprocessing(
                    orientation=str(pre.get("orientation", "RAS")),
                    spacing_mm=tuple(float(v) for v in pre.get("spacing_mm", (1.5, 1.5, 2.0))),  # type: ignore[arg-type]
                    intensity_window=tuple(float(v) for v in pre.get("intensity_window", (-57.0, 164.0))),  # type: ignore[arg-type]
                    scaled_range=tuple(float(v) for v in pre.get("scaled_range", (0.0, 1.0))),  # type: ignore[arg-type]
                    clip=bool(pre.get("clip", True)),
                ),
                inference=InferenceSpec(
                    roi_size=tuple(int(v) for v in inf.get("roi_size", (96, 96, 96))),  # type: ignore[arg-type]
                    overlap=float(inf.get("overlap", 0.5)),
                    sw_batch_size=int(inf.get("sw_batch_size", 4)),
                ),
                metrics={str(k): float(v) for k, v in document.get("metrics", {}).items()},
                extra={k: v for k, v in document.items() if k not in known},
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ModelDirectoryError(
                f"{source} does not follow the model contract ({type(error).__name__}: {error}); "
                "it needs name, version, task, network {name, args} and labels"
            ) from error

    def save(self, model_dir: Path) -> Path:
        path = Path(model_dir) / METADATA_FILE
        path.write_text(json.dumps(self.to_json(), indent=2, sort_keys=True) + "\n")
        return path

    @classmethod
    def load(cls, model_dir: Path) -> ModelMetadata:
        path = Path(model_dir) / METADATA_FILE
        if not path.is_file():
            raise ModelDirectoryError(f"{path} is missing: a model directory holds {MODEL_FILE} and {METADATA_FILE}")
        try:
            document = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise ModelDirectoryError(f"{path} is not valid JSON: {error}") from error
        return cls.from_json(document, source=str(path))


def model_file(model_dir: Path) -> Path:
    """The TorchScript file of a model directory, or a clear error when it is absent."""
    path = Path(model_dir) / MODEL_FILE
    if not path.is_file():
        raise ModelDirectoryError(f"{path} is missing: a model directory holds {MODEL_FILE} and {METADATA_FILE}")
    return path
