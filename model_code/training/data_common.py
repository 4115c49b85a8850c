"""Helpers shared by both tasks: a seeded train/validation split and the training-data hash."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TypeVar

from model_code.training.data_errors import TrainingDataError

T = TypeVar("T")


def split_items(items: Sequence[T], *, val_fraction: float, seed: int, source: Path) -> tuple[list[T], list[T]]:
    """A reproducible split of one channel into training and validation (at least one of each)."""
    if len(items) < 2:
        raise TrainingDataError(
            f"{source} holds {len(items)} case(s): splitting off validation needs at least 2, "
            "or give a validation channel (SM_CHANNEL_VALIDATION / --validation-channel)"
        )
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)  # noqa: S311 - a reproducible split, not a secret
    n_val = min(len(items) - 1, max(1, round(len(items) * val_fraction)))
    val = sorted(order[:n_val])
    train = sorted(order[n_val:])
    return [items[i] for i in train], [items[i] for i in val]


def data_hash(paths: Iterable[Path], *, root: Path) -> str:
    """sha256 over (relative path, content) of every file, in sorted order: names the training data."""
    digest = hashlib.sha256()
    for path in sorted({Path(p) for p in paths}):
        try:
            relative = path.relative_to(root)
        except ValueError:
            relative = path
        digest.update(str(relative).encode() + b"\0")
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        digest.update(b"\0")
    return digest.hexdigest()
