"""One code path for single-process and torchrun DistributedDataParallel runs (one process = one GPU)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from BrainTumorXAILib.runtime import resolve_device


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def setup(device_name: str, timeout_min: float = 120.0) -> tuple[Dist, torch.device]:
    """Reads torchrun's environment; NCCL on CUDA, Gloo on CPU.

    ``timeout_min`` bounds how long a collective (a barrier, an all-reduce) waits for the slowest rank.
    PyTorch's default (10 min for NCCL) is shorter than rank 0's checkpoint and log writing plus an uneven
    share of whole-case validation can take on large BraTS cases, so the default here is 2 hours.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist(), resolve_device(device_name)
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_name)
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=timedelta(minutes=timeout_min))
    return Dist(rank, world, local_rank), device


def mean_over_ranks(value: float, d: Dist, device: torch.device) -> float:
    if not d.active:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return float(t.item()) / d.world


def gather_objects(obj, d: Dist) -> list:
    """Every rank's ``obj`` (picklable), in rank order; ``[obj]`` in a single process."""
    if not d.active:
        return [obj]
    out = [None] * d.world
    dist.all_gather_object(out, obj)
    return out


def barrier(d: Dist) -> None:
    if d.active:
        dist.barrier()


def teardown(d: Dist) -> None:
    if d.active and dist.is_initialized():
        dist.destroy_process_group()
