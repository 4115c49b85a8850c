"""Torch's thread pools sized by the core's rule (model_code/core/threads.py): workers x threads <= vCPUs."""

from __future__ import annotations

import contextlib

import torch

from model_code.core.settings import ServerSettings
from model_code.core.threads import ThreadPlan, server_plan


def machine_gpus() -> int:
    """CUDA devices torch sees here (0 without CUDA)."""
    return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0


def size_torch_threads(settings: ServerSettings, *, workers: int | None = None) -> ThreadPlan:
    """Size this process's torch pools for one of the server's workers, before the model loads (torch sizes
    its pools on first use): the plan's intra-op threads, one inter-op thread (the pipeline runs no parallel
    graph branches; each extra pool thread would only spin on a core another worker needs)."""
    plan = server_plan(settings, gpus=machine_gpus(), workers=workers)
    torch.set_num_threads(plan.threads)
    # Allowed once per process and only before any inter-op work: a second model load keeps the first setting.
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(1)
    return plan
