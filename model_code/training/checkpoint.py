"""Spot-safe checkpoints: one file per finished epoch, written then renamed, newest valid one wins.

SageMaker syncs ``/opt/ml/checkpoints`` to S3 while the job runs and restores it when a spot job
restarts. An interruption can land mid-write, so a file only takes its final name once it is
complete (``os.replace`` is atomic on one file system), and on resume a file that does not load
or lacks a key is skipped with a warning in favour of the one before it.
"""

from __future__ import annotations

import logging
import os
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

FORMAT_VERSION = 1
KEEP_LAST = 2  # the newest plus one fallback, in case the newest turns out unreadable
_NAME = re.compile(r"^checkpoint-epoch(\d{5})\.pt$")
REQUIRED_KEYS = frozenset({"format_version", "task", "epoch", "model", "optimizer", "scheduler", "rng", "history"})

log = logging.getLogger(__name__)


class CheckpointMismatchError(RuntimeError):
    """The checkpoint directory holds a valid checkpoint of a different run."""


def checkpoint_name(epoch: int) -> str:
    return f"checkpoint-epoch{epoch:05d}.pt"


def rng_states() -> dict[str, Any]:
    """Global generators as plain tensors and ints, so ``torch.load(weights_only=True)`` reads them."""
    kind, keys, position, has_gauss, cached = np.random.get_state()
    version, python_state, gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(np.asarray(keys).astype(np.int64)), "pos": int(position),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": {"version": version, "state": list(python_state), "gauss": gauss},
    }


def restore_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    numpy = states["numpy"]
    np.random.set_state(
        (numpy["kind"], numpy["keys"].numpy().astype(np.uint32), numpy["pos"], numpy["has_gauss"], numpy["cached"])
    )
    python = states["python"]
    random.setstate((python["version"], tuple(python["state"]), python["gauss"]))


def save_checkpoint(directory: Path, state: dict[str, Any]) -> Path:
    """Write ``state`` for epoch ``state['epoch']`` atomically, then prune older checkpoints."""
    missing = REQUIRED_KEYS - {"format_version"} - set(state)
    if missing:
        raise ValueError(f"a checkpoint needs {sorted(missing)} as well")
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / checkpoint_name(int(state["epoch"]))
    # A dot-name never matches _NAME, so a half-written file is invisible to resume.
    partial = directory / f".{final.name}.partial-{os.getpid()}"
    with partial.open("wb") as handle:
        torch.save({**state, "format_version": FORMAT_VERSION}, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, final)
    for old in list_checkpoints(directory)[KEEP_LAST:]:
        old.unlink(missing_ok=True)
    return final


def list_checkpoints(directory: Path) -> list[Path]:
    """Checkpoint files, newest epoch first."""
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := _NAME.match(p.name)) and p.is_file()]
    return [path for _, path in sorted(found, reverse=True)]


def load_latest(directory: Path, *, task: str) -> dict[str, Any] | None:
    """The newest checkpoint that loads and is complete, or None when there is none."""
    for path in list_checkpoints(directory):
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # a truncated zip, a pickle error, an empty file: all mean "not valid"
            log.warning("skipping checkpoint %s: it does not load (%s: %s)", path, type(error).__name__, error)
            continue
        problem = _problem(state, path)
        if problem:
            log.warning("skipping checkpoint %s: %s", path, problem)
            continue
        if state["task"] != task:
            raise CheckpointMismatchError(
                f"{path} is a {state['task']!r} checkpoint but this run trains {task!r}: "
                "give this job its own --checkpoint-dir (or empty the directory)"
            )
        return dict(state)
    return None


def _problem(state: object, path: Path) -> str | None:
    if not isinstance(state, dict):
        return f"it holds a {type(state).__name__}, not a checkpoint dictionary"
    missing = REQUIRED_KEYS - set(state)
    if missing:
        return f"it lacks {sorted(missing)}"
    if state["format_version"] != FORMAT_VERSION:
        return f"format version {state['format_version']} is not {FORMAT_VERSION}"
    match = _NAME.match(path.name)
    if match and int(match.group(1)) != state["epoch"]:
        return f"its name says epoch {int(match.group(1))} but it holds epoch {state['epoch']}"
    return None
