"""Hyperparameters: argparse flags, with SageMaker's ``SM_HPS`` as defaults beneath the command line.

Precedence, lowest first: built-in defaults, the environment (``SM_CHANNEL_*``, ``SM_MODEL_DIR``...),
``SM_HPS``, then flags given on the command line. SageMaker passes hyperparameters both ways; the
two agree, and a flag typed by a user running locally wins.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from model_code.training.environment import DEFAULT_CHECKPOINT_DIR, TrainingEnvironment


class Task(StrEnum):
    SEGMENTATION = "segmentation"
    CLASSIFICATION = "classification"


@dataclass(frozen=True)
class TrainConfig:
    """One training run, fully resolved."""

    task: Task
    epochs: int
    batch_size: int
    learning_rate: float
    seed: int
    cache_rate: float
    checkpoint_dir: Path
    training_dir: Path
    validation_dir: Path | None
    model_dir: Path
    output_dir: Path
    val_fraction: float
    num_workers: int
    roi_size: int
    samples_per_volume: int
    image_size: int
    occlusion_map: Path | None
    model_version: str
    init_bundle: Path | None
    rank: int
    local_rank: int
    world_size: int

    def hyperparameters(self) -> dict[str, Any]:
        """The knobs that shape the model, for the bundle's configs/metadata.json (paths and ranks left out)."""
        return {
            "task": self.task.value,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "learning_rate": self.learning_rate,
            "seed": self.seed,
            "roi_size": self.roi_size,
            "samples_per_volume": self.samples_per_volume,
            "image_size": self.image_size,
            "world_size": self.world_size,
            "init_bundle": None if self.init_bundle is None else str(self.init_bundle),
        }


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be within 0..1, got {value}")
    return value


def _roi(text: str) -> int:
    value = int(text)
    # The contract UNet halves the grid four times: a patch side must divide by 16.
    if value < 16 or value % 16:
        raise argparse.ArgumentTypeError(f"must be a multiple of 16 (the UNet downsamples 4x by 2), got {value}")
    return value


def build_parser(environment: TrainingEnvironment) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m model_code.training.train",
        description="Train the spleen UNet (segmentation) or a DenseNet121 (classification), SageMaker script mode.",
    )
    add = parser.add_argument
    add("--task", type=Task, choices=list(Task), default=Task.SEGMENTATION, help="what to train")
    add("--epochs", type=_positive_int, default=10, help="total epochs; a resumed run trains only the rest")
    add("--batch-size", type=_positive_int, default=2, help="volumes (or images) per step and rank")
    add("--learning-rate", type=float, default=1e-4, help="Adam learning rate (the bundle's 1e-4)")
    add("--seed", type=int, default=0, help="seeds weights, split, shuffling and augmentation")
    add("--cache-rate", type=_fraction, default=1.0, help="share of the data CacheDataset keeps in memory")
    add("--checkpoint-dir", type=Path, default=DEFAULT_CHECKPOINT_DIR, help="spot checkpoints (synced to S3)")
    add("--train-channel", type=Path, default=environment.training_dir, help="training data (SM_CHANNEL_TRAINING)")
    add(
        "--validation-channel",
        type=Path,
        default=environment.validation_dir,
        help="validation data (SM_CHANNEL_VALIDATION); default: --val-fraction of the training data",
    )
    add("--model-dir", type=Path, default=environment.model_dir, help="where the model goes (SM_MODEL_DIR)")
    add("--output-dir", type=Path, default=environment.output_dir, help="curves, logs (SM_OUTPUT_DATA_DIR)")
    add("--val-fraction", type=_fraction, default=0.2, help="split of training used for validation")
    add("--num-workers", type=int, default=0, help="DataLoader worker processes (0: load in the main process)")
    add("--roi-size", type=_roi, default=96, help="segmentation patch side (train crops, validation windows)")
    add("--samples-per-volume", type=_positive_int, default=4, help="random patches per volume per step")
    add("--image-size", type=_positive_int, default=64, help="classification: images resized to this side")
    add("--occlusion-map", type=Path, default=None, help="classification: write an occlusion PNG for IMAGE")
    add("--model-version", default="0.1.0", help="version written to the bundle's configs/metadata.json")
    add(
        "--init-bundle",
        type=Path,
        default=None,
        help="start from this MONAI bundle's weights (directory, .zip or model.tar.gz; its network_def must be "
        "this task's network), e.g. the zoo's spleen_ct_segmentation to fine-tune",
    )
    return parser


def parse_config(argv: Sequence[str] | None, environment: TrainingEnvironment) -> TrainConfig:
    parser = build_parser(environment)
    parser.set_defaults(**_hps_defaults(parser, environment.hyperparameters))
    args = parser.parse_args(argv)
    if args.occlusion_map is not None and Task(args.task) is not Task.CLASSIFICATION:
        # Refused before any training, not after an expensive run.
        raise ValueError("--occlusion-map applies to --task classification only")
    return TrainConfig(
        task=Task(args.task),
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        seed=args.seed,
        cache_rate=args.cache_rate,
        checkpoint_dir=args.checkpoint_dir,
        training_dir=args.train_channel,
        validation_dir=args.validation_channel,
        model_dir=args.model_dir,
        output_dir=args.output_dir,
        val_fraction=args.val_fraction,
        num_workers=args.num_workers,
        roi_size=args.roi_size,
        samples_per_volume=args.samples_per_volume,
        image_size=args.image_size,
        occlusion_map=args.occlusion_map,
        model_version=args.model_version,
        init_bundle=args.init_bundle,
        rank=environment.rank,
        local_rank=environment.local_rank,
        world_size=environment.world_size,
    )


def _hps_defaults(parser: argparse.ArgumentParser, hyperparameters: dict[str, Any]) -> dict[str, Any]:
    """SM_HPS values converted with each flag's own type, so "3" and 3 both mean 3 epochs."""
    actions = {action.dest: action for action in parser._actions if action.dest != "help"}
    defaults: dict[str, Any] = {}
    for key, value in hyperparameters.items():
        # The SageMaker SDK adds its own sagemaker_* entries (program, submit directory, region).
        if key.startswith("sagemaker_"):
            continue
        dest = key.replace("-", "_")
        if dest == "training_dir":  # tolerate the obvious alias
            dest = "train_channel"
        action = actions.get(dest)
        if action is None:
            known = ", ".join(sorted(a.option_strings[0] for a in actions.values() if a.option_strings))
            raise ValueError(f"SM_HPS hyperparameter {key!r} is not a trainer flag; known flags: {known}")
        convert = action.type if callable(action.type) else str
        try:
            converted = convert(str(value))
        except (argparse.ArgumentTypeError, ValueError) as error:
            raise ValueError(f"SM_HPS hyperparameter {key!r}={value!r} is invalid: {error}") from error
        if action.choices is not None and converted not in action.choices:
            raise ValueError(f"SM_HPS hyperparameter {key!r}={value!r} must be one of {list(action.choices)}")
        defaults[dest] = converted
    return defaults
