"""The model directory contract: ``model.ts`` (TorchScript) beside ``metadata.json``.

Every serving path (CLI, async handler, Triton model, edge runner) and the trainer read and write
model directories through this module, so the file names and the metadata schema live in one place.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from model_code.core.errors import ModelDirectoryError
from model_code.core.segment_codes import SegmentCode

MODEL_FILE = "model.ts"
METADATA_FILE = "metadata.json"
STATE_DICT_FILE = "model.pt"


def _floats(values: Any) -> tuple[float, ...]:
    return tuple(float(v) for v in values)


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
    # A SNOMED CT code per foreground channel, resolved when a bundle is loaded (model_code.core.segment_codes);
    # empty: the SEG writer looks the labels up in the table of common structures.
    segment_codes: dict[int, SegmentCode] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        document = asdict(self)
        document.pop("segment_codes")  # a bundle carries them in its own metadata key (segment_codes.CODES_KEY)
        extra = document.pop("extra")
        document["labels"] = {str(k): v for k, v in self.labels.items()}
        return {**extra, **document}

    @classmethod
    def from_json(cls, document: dict[str, Any], *, source: str = METADATA_FILE) -> ModelMetadata:
        # Absent pre-processing and inference keys take the dataclasses' own defaults (one place for them).
        pre_default, inf_default = Preprocessing(), InferenceSpec()
        try:
            known = {f.name for f in fields(cls)} - {"extra", "segment_codes"}
            pre = document.get("preprocessing", {})
            inf = document.get("inference", {})
            return cls(
                name=str(document["name"]),
                version=str(document["version"]),
                task=str(document["task"]),
                network=NetworkSpec(name=str(document["network"]["name"]), args=dict(document["network"]["args"])),
                labels={int(k): str(v) for k, v in document["labels"].items()},
                preprocessing=Preprocessing(
                    orientation=str(pre.get("orientation", pre_default.orientation)),
                    spacing_mm=_floats(pre.get("spacing_mm", pre_default.spacing_mm)),  # type: ignore[arg-type]
                    intensity_window=_floats(pre.get("intensity_window", pre_default.intensity_window)),  # type: ignore[arg-type]
                    scaled_range=_floats(pre.get("scaled_range", pre_default.scaled_range)),  # type: ignore[arg-type]
                    clip=bool(pre.get("clip", pre_default.clip)),
                ),
                inference=InferenceSpec(
                    roi_size=tuple(int(v) for v in inf.get("roi_size", inf_default.roi_size)),  # type: ignore[arg-type]
                    overlap=float(inf.get("overlap", inf_default.overlap)),
                    sw_batch_size=int(inf.get("sw_batch_size", inf_default.sw_batch_size)),
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
