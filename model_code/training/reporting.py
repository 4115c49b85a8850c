"""What a run tells people: metric lines (for SageMaker), TensorBoard, a progress bar, a curve PNG.

Only rank 0 reports; the loop never builds a Reporter on other ranks.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from model_code.training.metrics import format_metric_line

log = logging.getLogger("model_code.training")
T = TypeVar("T")

CURVE_FILE = "training_curve.png"
TENSORBOARD_DIR = "tensorboard"


class Reporter:
    def __init__(self, output_dir: Path) -> None:
        self.output_dir = output_dir
        output_dir.mkdir(parents=True, exist_ok=True)
        from torch.utils.tensorboard import SummaryWriter

        self._writer = SummaryWriter(log_dir=str(output_dir / TENSORBOARD_DIR))

    def progress(self, items: Iterable[T], *, epoch: int, total: int | None = None) -> Iterable[T]:
        """A tqdm bar on an interactive terminal; the plain iterable in a log (SageMaker, CI)."""
        if not sys.stderr.isatty():
            return items
        from tqdm import tqdm

        return tqdm(items, total=total, desc=f"epoch {epoch}", leave=False, unit="batch")

    def epoch(self, epoch: int, metrics: dict[str, float]) -> None:
        log.info(format_metric_line(epoch, metrics))
        for key, value in metrics.items():
            self._writer.add_scalar(key, value, epoch)
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


def plot_curve(history: Sequence[dict[str, Any]], path: Path) -> Path:
    """Training loss and validation metrics per epoch (the whole run, resumed parts included)."""
    import matplotlib

    matplotlib.use("Agg")  # no display on a training instance
    import matplotlib.pyplot as plt

    epochs = [int(row["epoch"]) for row in history]
    figure, loss_axis = plt.subplots(figsize=(6, 4), dpi=100)
    loss_axis.plot(epochs, [row["train_loss"] for row in history], "o-", color="tab:red", label="train_loss")
    loss_axis.set_xlabel("epoch")
    loss_axis.set_ylabel("training loss")
    metric_axis = loss_axis.twinx()
    for key in sorted({k for row in history for k in row if k.startswith("val_")}):
        metric_axis.plot(epochs, [row.get(key, float("nan")) for row in history], "s-", label=key)
    metric_axis.set_ylabel("validation metric")
    metric_axis.set_ylim(0.0, 1.0)
    handles = loss_axis.get_legend_handles_labels()[0] + metric_axis.get_legend_handles_labels()[0]
    loss_axis.legend(handles, [str(h.get_label()) for h in handles], loc="center right")
    loss_axis.set_title("training curve")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path
