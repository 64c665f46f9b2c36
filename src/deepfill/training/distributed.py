"""DDP without a framework: ``torchrun`` sets ``RANK``; every rank reads its own share of the
data, rank 0 logs, validates and saves (NCCL on GPUs, gloo on CPU)."""

from __future__ import annotations

import dataclasses
import os

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel


@dataclasses.dataclass(frozen=True)
class Dist:
    """This process's place in the run: its rank, the number of ranks, its local GPU index."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_distributed() -> tuple[Dist, torch.device]:
    """Join the process group when launched by ``torchrun`` (``RANK`` set); else single process."""
    if "RANK" not in os.environ:
        return Dist(), torch.device("cuda" if torch.cuda.is_available() else "cpu")
    info = Dist(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0)))
    if torch.cuda.is_available():
        torch.cuda.set_device(info.local_rank)
        dist.init_process_group("nccl")
        return info, torch.device("cuda", info.local_rank)
    dist.init_process_group("gloo")
    return info, torch.device("cpu")


def wrap(module: torch.nn.Module, device: torch.device, find_unused_parameters: bool = False) -> DistributedDataParallel:
    """``module`` under DDP, on this rank's GPU or the CPU."""
    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids, find_unused_parameters=find_unused_parameters)


def unwrap(module: torch.nn.Module) -> torch.nn.Module:
    """The module inside a DDP wrapper (or the module itself)."""
    return module.module if isinstance(module, DistributedDataParallel) else module


def all_ranks(flag: bool, info: Dist, device: torch.device) -> bool:
    """Whether ``flag`` holds on every rank (an all-reduce; just ``flag`` in a single process)."""
    if info.world == 1:
        return flag
    failed = torch.tensor([0.0 if flag else 1.0], device=device)
    dist.all_reduce(failed)
    return failed.item() == 0
