"""How many requests a server runs at once and how many threads each gets: workers x threads <= vCPUs.

Measured on a 2-core machine (issue 19): with one TorchServe worker per core and torch's default of one
intra-op thread per core, every worker's OpenMP pool spins on every core; with other work on the machine a
threshold-model request went from 0.33 s to 8.9 s, against 2.2 s with one thread. So by default the threads
of all workers together never exceed the vCPUs: on CPU two threads per worker from 4 vCPUs up (the sliding
window still gains from a second thread; more workers serve concurrent requests better than more threads),
one below; on a GPU one worker per GPU with the vCPUs shared among them (the CPU does decode and the SEG).

The stacks derive vCPUs and GPUs from the instance type (``stacks/components/instance_types.py``) and set
the result in the container's environment; a server started without it derives them from this machine.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from model_code.core.settings import ServerSettings

# From this many vCPUs a CPU worker gets two threads.
TWO_THREADS_FROM_VCPUS = 4


@dataclass(frozen=True)
class ThreadPlan:
    workers: int
    threads: int

    def __post_init__(self) -> None:
        if self.workers < 1 or self.threads < 1:
            raise ValueError(f"workers and threads must be >= 1, got {self.workers} and {self.threads}")


def plan_threads(vcpus: int, gpus: int = 0, *, workers: int | None = None, threads: int | None = None) -> ThreadPlan:
    """The default plan for ``vcpus`` and ``gpus``; a given ``workers`` or ``threads`` wins, the other is derived
    so that the product stays within the vCPUs (both given: taken as they are, the caller's choice)."""
    if vcpus < 1 or gpus < 0:
        raise ValueError(f"vcpus must be >= 1 and gpus >= 0, got {vcpus} and {gpus}")
    if workers is None and threads is None:
        if gpus:
            workers = min(gpus, vcpus)
        else:
            threads = 2 if vcpus >= TWO_THREADS_FROM_VCPUS else 1
    if workers is None:
        assert threads is not None
        workers = max(1, vcpus // threads)
    if threads is None:
        threads = max(1, vcpus // workers)
    return ThreadPlan(workers=workers, threads=threads)


def machine_vcpus() -> int:
    """The CPUs this process may run on (a container's cpuset, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def server_plan(settings: ServerSettings, *, gpus: int, workers: int | None = None) -> ThreadPlan:
    """A model server's plan on this machine from its settings: ``workers`` where the server knows its own count
    (Triton's instance group), else the settings'; no GPUs counted when the settings pin the CPU. The torch
    servers count ``gpus`` with torch (model_code.segmentation.threads); the core never imports it."""
    pinned_cpu = (settings.device or "").startswith("cpu")
    return plan_threads(
        machine_vcpus(),
        0 if pinned_cpu else gpus,
        workers=workers if workers is not None else settings.workers,
        threads=settings.intra_op_threads,
    )

