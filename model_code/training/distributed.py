"""torchrun integration: process group, device, and the few collectives the loop needs.

SageMaker's ``torch_distributed`` distribution runs ``torchrun`` on each instance, which sets RANK,
LOCAL_RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT (read once in environment.py). gloo on CPU,
nccl on CUDA. Without torchrun (WORLD_SIZE absent or 1) nothing is initialised.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistributedContext:
    rank: int
    local_rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1


def setup(*, rank: int, local_rank: int, world_size: int) -> DistributedContext:
    if torch.cuda.is_available():
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        device = torch.device("cpu")
        backend = "gloo"
    if world_size > 1 and not dist.is_initialized():
        # init_method env:// reads MASTER_ADDR/MASTER_PORT that torchrun exported.
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
    return DistributedContext(rank=rank, local_rank=local_rank, world_size=world_size, device=device)


def teardown(context: DistributedContext) -> None:
    if context.active and dist.is_initialized():
        dist.destroy_process_group()


def barrier(context: DistributedContext) -> None:
    if context.active:
        dist.barrier()


def sync_buffers(context: DistributedContext, model: torch.nn.Module) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) to every rank.

    DDP broadcasts buffers at the start of each forward, but the last step then updates them from
    each rank's own batch, so ranks end an epoch with slightly different statistics.
    """
    if context.active:
        for buffer in model.buffers():
            dist.broadcast(buffer, src=0)


def broadcast_from_main(context: DistributedContext, value: Any) -> Any:
    """Rank 0's value on every rank (e.g. the checkpoint only rank 0 read)."""
    if not context.active:
        return value
    box = [value if context.is_main else None]
    dist.broadcast_object_list(box, src=0, device=context.device if context.device.type == "cuda" else None)
    return box[0]


def mean_over_ranks(context: DistributedContext, total: float, count: int) -> float:
    """Mean of per-sample values summed on each rank, weighted by each rank's sample count."""
    if context.active:
        packed = torch.tensor([total, float(count)], dtype=torch.float64, device=context.device)
        dist.all_reduce(packed, op=dist.ReduceOp.SUM)
        total, count = float(packed[0]), int(packed[1])
    return total / max(count, 1)
