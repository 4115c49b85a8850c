"""Deterministic randomness, reseeded at the start of every epoch.

Each epoch's generators are derived from (seed, epoch, rank) alone, so a run resumed at epoch N
draws exactly what an uninterrupted run drew at epoch N: global torch/numpy/python generators,
the MONAI transforms' own RandomStates and the loader's shuffle. That is what makes resume
bit-identical; the RNG states kept in the checkpoint are restored too, for anything between.
"""

from __future__ import annotations

import random

import numpy as np
import torch

_MAX_SEED = 2**31 - 1


def epoch_seed(seed: int, *, epoch: int, rank: int = 0) -> int:
    # Distinct, well-spread seeds per (epoch, rank): rank r must not augment like rank 0.
    return int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1)[0]) % _MAX_SEED


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def enable_determinism() -> None:
    # warn_only: a kernel without a deterministic variant warns instead of aborting a paid job.
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
