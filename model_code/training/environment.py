"""Every environment variable the trainer reads, named once and parsed once.

SageMaker script mode passes its contract through ``SM_*`` variables (sagemaker-training toolkit);
``torchrun`` (what the ``torch_distributed`` distribution starts on each instance) passes rank and
world size. Outside SageMaker the variables are absent and local defaults apply.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SM_HPS = "SM_HPS"
SM_CHANNEL_TRAINING = "SM_CHANNEL_TRAINING"
SM_CHANNEL_VALIDATION = "SM_CHANNEL_VALIDATION"
SM_MODEL_DIR = "SM_MODEL_DIR"
SM_OUTPUT_DATA_DIR = "SM_OUTPUT_DATA_DIR"
TORCHRUN_RANK = "RANK"
TORCHRUN_LOCAL_RANK = "LOCAL_RANK"
TORCHRUN_WORLD_SIZE = "WORLD_SIZE"

# Local defaults, relative to the working directory, for runs outside SageMaker.
LOCAL_TRAINING_DIR = Path("data/training")
LOCAL_MODEL_DIR = Path("model")
LOCAL_OUTPUT_DIR = Path("output")
DEFAULT_CHECKPOINT_DIR = Path("/opt/ml/checkpoints")


@dataclass(frozen=True)
class TrainingEnvironment:
    """The parsed environment: SageMaker paths, hyperparameters and the torchrun rank."""

    training_dir: Path = LOCAL_TRAINING_DIR
    validation_dir: Path | None = None
    model_dir: Path = LOCAL_MODEL_DIR
    output_dir: Path = LOCAL_OUTPUT_DIR
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> TrainingEnvironment:
        hyperparameters: dict[str, Any] = {}
        raw_hps = environ.get(SM_HPS, "").strip()
        if raw_hps:
            try:
                hyperparameters = json.loads(raw_hps)
            except json.JSONDecodeError as error:
                raise ValueError(
                    f"{SM_HPS} must be a JSON object of hyperparameters, got {raw_hps!r}: {error}"
                ) from error
            if not isinstance(hyperparameters, dict):
                raise ValueError(f"{SM_HPS} must be a JSON object of hyperparameters, got {raw_hps!r}")
        validation = environ.get(SM_CHANNEL_VALIDATION, "").strip()
        rank = _int(environ, TORCHRUN_RANK, 0)
        world_size = _int(environ, TORCHRUN_WORLD_SIZE, 1)
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"{TORCHRUN_RANK}={rank} and {TORCHRUN_WORLD_SIZE}={world_size} are inconsistent")
        return cls(
            training_dir=Path(environ.get(SM_CHANNEL_TRAINING) or LOCAL_TRAINING_DIR),
            validation_dir=Path(validation) if validation else None,
            model_dir=Path(environ.get(SM_MODEL_DIR) or LOCAL_MODEL_DIR),
            output_dir=Path(environ.get(SM_OUTPUT_DATA_DIR) or LOCAL_OUTPUT_DIR),
            hyperparameters=hyperparameters,
            rank=rank,
            local_rank=_int(environ, TORCHRUN_LOCAL_RANK, 0),
            world_size=world_size,
        )


def _int(environ: Mapping[str, str], name: str, default: int) -> int:
    value = environ.get(name, "").strip()
    if not value:
        return default
    try:
        return int(value)
    except ValueError as error:
        raise ValueError(f"environment variable {name} must be an integer, got {value!r}") from error
