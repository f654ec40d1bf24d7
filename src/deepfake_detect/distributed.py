"""Multi-process training and prediction under ``torchrun``: process group setup, small
collectives, and the per-process device and thread count."""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from .errors import DeepfakeDetectError

__all__ = [
    "DistContext",
    "is_main_process",
    "check_device",
    "local_device",
    "threads_per_process",
    "cores_per_process",
    "available_cores",
]


def is_main_process() -> bool:
    """True unless this is a process of rank 1 or more under ``torchrun`` (``RANK``)."""
    return int(os.environ.get("RANK", "0")) == 0


def _parse_device(device: str | torch.device) -> torch.device:
    try:
        return torch.device(device)
    except (RuntimeError, TypeError):
        raise DeepfakeDetectError(
            f"device={device!r}: not a device; use 'cpu', 'cuda', 'cuda:N' or a torch.device"
        ) from None


def check_device(device: str | torch.device) -> torch.device:
    """``device`` as a ``torch.device``, or a :class:`DeepfakeDetectError` that says what is
    wrong: a name torch does not know, or CUDA asked for where torch sees no GPU (a
    CPU-only build, or no driver)."""
    dev = _parse_device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DeepfakeDetectError(
                f"device={device!r}: torch sees no CUDA GPU here (torch {torch.__version__}, "
                f"{'a CPU-only build' if torch.version.cuda is None else 'no GPU or driver found'}); use device='cpu'"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeepfakeDetectError(f"device={device!r}: there are only {torch.cuda.device_count()} CUDA device(s)")
    return dev


def local_device(device: str | torch.device) -> torch.device:
    """``device``; a CUDA device without an index becomes this process's own GPU,
    ``cuda:LOCAL_RANK``, under ``torchrun``.

    Raises:
        DeepfakeDetectError: a name torch does not know (whether the device is there is
            for :func:`check_device` to say).
    """
    dev = _parse_device(device)
    if dev.type == "cuda" and dev.index is None and os.environ.get("LOCAL_RANK"):
        return torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    return dev


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def cores_per_process() -> int:
    """This process's share of :func:`available_cores`, when ``LOCAL_WORLD_SIZE`` processes
    share the machine (at least 1)."""
    return max(1, available_cores() // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))


def threads_per_process() -> int | None:
    """Torch threads for each of several processes on one machine: :func:`cores_per_process`;
    None (keep torch's own setting) for a single process, or when ``OMP_NUM_THREADS`` is set
    (by the user, or by ``torchrun``, which sets 1 when it is unset)."""
    if os.environ.get("OMP_NUM_THREADS") or int(os.environ.get("LOCAL_WORLD_SIZE", "1")) <= 1:
        return None
    return cores_per_process()


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
    def from_env(cls, device: torch.device | None = None) -> DistContext:
        """Join the process group torchrun describes in the environment (gloo on CPU, nccl on
        CUDA), or use the one already set up; :meth:`close` destroys only a group made here."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        local = int(os.environ.get("LOCAL_RANK", "0"))
        owns = False
        if not dist.is_initialized():
            backend = "nccl" if (device is not None and device.type == "cuda") else "gloo"
            dist.init_process_group(backend=backend, **_fresh_store())
            owns = True
        return cls(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=local, owns_group=owns)

    def shard(self, indices: list[Any], *, pad: bool = True) -> list[Any]:
        """This rank's part of ``indices`` (every ``world_size``-th, from ``rank``). With
        ``pad``, padded by wrapping around so every rank gets as many (training steps must
        line up); without it, the parts are disjoint and differ in length by at most one."""
        if not self.enabled:
            return indices
        if pad and indices:
            n = -(-len(indices) // self.world_size) * self.world_size
            indices = [indices[i % len(indices)] for i in range(n)]
        return indices[self.rank :: self.world_size]

    def broadcast_buffers(self, module: torch.nn.Module) -> None:
        """Give every rank rank 0's buffers of ``module`` (BatchNorm running statistics): each
        rank's last training forward updated them from its own batch, so without this each
        rank would validate a slightly different model, and not the one rank 0 saves."""
        if not self.enabled:
            return
        for buffer in module.buffers():
            dist.broadcast(buffer, src=0)

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, in rank order, on every rank."""
        if not self.enabled:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def raise_if_any(self, error: BaseException | None) -> None:
        """A collective: raise on every rank when ``error`` is set on any, so that no rank is
        left waiting in a later collective. Every rank raises the lowest failing rank's
        exception (that rank its own; the others a copy, or a :class:`DeepfakeDetectError`
        with its message when it cannot be pickled)."""
        if not self.enabled:
            if error is not None:
                raise error
            return
        sent = None if error is None else _portable(error, self.rank)
        for rank, err in enumerate(self.gather(sent)):
            if err is not None:
                if rank == self.rank:
                    raise error  # type: ignore[misc]
                raise err

    def raise_if_any_failed(self, error: BaseException | None) -> None:
        """:meth:`raise_if_any` at the cost of one small all-reduce when no rank failed (for
        every training step): the errors are gathered only when one did."""
        if not self.enabled:
            if error is not None:
                raise error
            return
        failed = torch.tensor([0 if error is None else 1], dtype=torch.int32, device=_collective_device())
        dist.all_reduce(failed, op=dist.ReduceOp.MAX)
        if failed.item():
            self.raise_if_any(error)

    def all_reduce_mean(self, value: float) -> float:
        if not self.enabled:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=_collective_device())
        dist.all_reduce(t)
        return float(t.item()) / self.world_size

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def close(self) -> None:
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()


def _fresh_store() -> dict[str, Any]:
    """``store``, ``rank`` and ``world_size`` for ``init_process_group``: the ``env://``
    rendezvous store, under a prefix of its own for each process group made in a run.

    torch names the keys of a process group made after one was destroyed (predict, then
    predict or finetune again, in one process) as it named the first one's, so a process
    could read a peer's old address from the store and fail to connect. Every rank counts
    the groups it makes with the same shared counter: the k-th group of every rank gets
    the prefix k (no rank can start its group k+1 before every rank joined group k)."""
    store, rank, world = next(dist.rendezvous("env://"))
    restart = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    generation = (store.add(f"deepfake_detect/groups/{restart}", 1) - 1) // world
    return {
        "store": dist.PrefixStore(f"deepfake_detect/{restart}/{generation}", store),
        "rank": rank,
        "world_size": world,
    }


def _portable(error: BaseException, rank: int) -> BaseException:
    """``error`` when it survives pickling (all_gather_object sends it), else a
    :class:`DeepfakeDetectError` carrying its message."""
    try:
        pickle.loads(pickle.dumps(error))
        return error
    except Exception:
        return DeepfakeDetectError(f"on rank {rank}: {type(error).__name__}: {error}")


def _collective_device() -> torch.device:
    """Where a tensor for a collective lives: nccl reduces CUDA tensors only (set_device has
    chosen this rank's GPU), gloo CPU ones."""
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
