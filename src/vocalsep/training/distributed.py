"""One process or many (torchrun): device choice, process group, and each rank's share of a batch.

The global batch is `train.batch_size` whatever the world size: each of the
`W` ranks takes `batch_size / W` examples of every step, and DDP averages the
gradients, so a step sees the same examples and the run takes the same number
of optimizer steps as a single process.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.utils.data import Sampler

from vocalsep.devices import pick_device
from vocalsep.errors import VocalsepError


@dataclass(frozen=True)
class Context:
    """Where this process runs: rank among `world_size` processes and its device."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup(device_choice: str) -> Context:
    """Join the torchrun process group when WORLD_SIZE > 1 (NCCL on CUDA, gloo on CPU)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(device_choice, "train.device", local_rank)
    if world_size == 1:
        return Context(0, 1, device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Context(dist.get_rank(), world_size, device)


def teardown(ctx: Context) -> None:
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()


def local_batch_size(batch_size: int, world_size: int) -> int:
    if batch_size % world_size:
        raise VocalsepError(f"train.batch_size {batch_size} is not divisible by the {world_size} torchrun "
                            "processes; the global batch is split evenly across them")
    return batch_size // world_size


class StepBatches(Sampler[list[int]]):
    """This rank's example indices for steps `first_step .. steps-1` of one epoch.

    Step s covers epoch examples `[s * batch_size, (s + 1) * batch_size)`; rank r
    takes the r-th contiguous share of them.
    """

    def __init__(self, steps: int, batch_size: int, rank: int = 0, world_size: int = 1, first_step: int = 0):
        self.steps, self.first_step = steps, first_step
        self.batch_size, self.rank = batch_size, rank
        self.local = local_batch_size(batch_size, world_size)

    def __iter__(self) -> Iterator[list[int]]:
        for step in range(self.first_step, self.steps):
            start = step * self.batch_size + self.rank * self.local
            yield list(range(start, start + self.local))

    def __len__(self) -> int:
        return self.steps - self.first_step


def mean_across_ranks(value: float, ctx: Context) -> float:
    """The mean of a scalar over all ranks (the value itself in one process)."""
    if not ctx.distributed:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=ctx.device)
    dist.all_reduce(tensor)
    return float(tensor.item()) / ctx.world_size


def broadcast_flag(flag: bool, ctx: Context) -> bool:
    """Rank 0's decision (e.g. early stop) given to every rank."""
    if not ctx.distributed:
        return flag
    tensor = torch.tensor([int(flag)], device=ctx.device)
    dist.broadcast(tensor, src=0)
    return bool(tensor.item())
