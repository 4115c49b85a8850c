"""The model as the core describes it, MONAI-free: name, version, task, labels, pre-processing, sliding window.

A model is a MONAI bundle (``model_code.core.bundle_layout``); ``model_code.segmentation.bundle.ModelBundle``
reads one with MONAI's ``ConfigParser`` into this description, which the core (SEG writer, summaries, the numpy
transforms) works from. ``to_json`` / ``from_json`` carry it where MONAI is absent (the edge bundle's edge.json).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from model_code.core.errors import ModelDirectoryError
from model_code.core.segment_codes import SegmentCode

DESCRIPTION = "the model description"


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
    """The model, described (from a bundle's configs). Unknown keys are kept in ``extra`` and written back."""

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
    def from_json(cls, document: dict[str, Any], *, source: str = DESCRIPTION) -> ModelMetadata:
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
