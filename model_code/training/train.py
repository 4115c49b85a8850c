"""SageMaker script-mode entry: ``python -m model_code.training.train [--task ...] [--epochs ...]``.

The same command runs locally (defaults beneath data/, model/, output/), in the training image,
and under ``torchrun --nproc_per_node N`` for data-parallel training.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence

from model_code.training.checkpoint import CheckpointMismatchError
from model_code.training.config import parse_config
from model_code.training.data_errors import TrainingDataError
from model_code.training.environment import TrainingEnvironment
from model_code.training.loop import TrainingResult, run_training

log = logging.getLogger("model_code.training")


def configure_logging(*, rank: int) -> None:
    # Plain message lines on stdout: SageMaker's metric regexes and CloudWatch read them as is.
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    package = logging.getLogger("model_code.training")
    package.handlers[:] = [handler]
    package.propagate = False
    package.setLevel(logging.INFO if rank == 0 else logging.WARNING)


def main(
    argv: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    on_epoch_end: Callable[[int, dict[str, float]], bool | None] | None = None,
) -> TrainingResult:
    """Parse flags and environment, then train. ``on_epoch_end`` lets tests stop a run mid-way."""
    environment = TrainingEnvironment.from_environ(os.environ if environ is None else environ)
    config = parse_config(argv, environment)
    configure_logging(rank=config.rank)
    return run_training(config, on_epoch_end=on_epoch_end)


def cli() -> int:
    try:
        main()
    except (TrainingDataError, CheckpointMismatchError, ValueError) as error:
        # SageMaker shows the last lines of a failed job; make the first of them the reason.
        print(f"training failed: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(cli())
