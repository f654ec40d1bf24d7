"""Multi-process training under ``torchrun``: process group setup and small collectives."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

__all__ = ["DistContext"]


@dataclass
class DistContext:
    """Rank and world size; ``world_size == 1`` when not launched by torchrun."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls, device: torch.device | None = None) -> "DistContext":
        """Join the process group torchrun describes in the environment (gloo on CPU, nccl on CUDA)."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
        owns = False
        if not dist.is_initialized():
            backend = "nccl" if (device is not None and device.type == "cuda") else "gloo"
            dist.init_process_group(backend=backend)
            owns = True
        return cls(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=local, owns_group=owns)

    def shard(self, indices: list[Any]) -> list[Any]:
        """This rank's part of ``indices``, padded by wrapping so every rank gets as many."""
        if not self.enabled:
            return indices
        n = -(-len(indices) // self.world_size) * self.world_size
        padded = indices + indices[: n - len(indices)]
        return padded[self.rank::self.world_size]

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, in rank order, on every rank."""
        if not self.enabled:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def all_reduce_mean(self, value: float) -> float:
        if not self.enabled:
            return value
        t = torch.tensor([value], dtype=torch.float64)
        dist.all_reduce(t)
        return float(t.item()) / self.world_size

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def close(self) -> None:
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()
