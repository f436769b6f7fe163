"""Collectives that degrade to no-ops in a single process.

The official code calls ``dist.all_reduce`` unconditionally inside its losses, so it cannot run
without an initialised process group (reference §9, item 13). Every collective in this project
goes through these helpers instead: with no process group they return their input unchanged.
"""

from __future__ import annotations

import torch
import torch.distributed as dist


def is_enabled() -> bool:
    """True when a torch.distributed process group is initialised."""
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    """Number of processes in the default group (1 without a group)."""
    return dist.get_world_size() if is_enabled() else 1


def rank() -> int:
    """Rank of this process in the default group (0 without a group)."""
    return dist.get_rank() if is_enabled() else 0


def is_main_process() -> bool:
    """True on rank 0 (and in a single process)."""
    return rank() == 0


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over all ranks, in place, and return it. No-op in a single process."""
    if is_enabled() and world_size() > 1:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    """Average ``tensor`` over all ranks, in place, and return it. No-op in a single process."""
    if is_enabled() and world_size() > 1:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        tensor.div_(world_size())
    return tensor


def all_gather_cat(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate ``tensor`` from all ranks along dim 0 (equal shapes). Identity in one process."""
    if not (is_enabled() and world_size() > 1):
        return tensor
    parts = [torch.empty_like(tensor) for _ in range(world_size())]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts, dim=0)


def all_reduce_max(tensor: torch.Tensor) -> torch.Tensor:
    """Element-wise maximum of ``tensor`` over all ranks, in place, and return it. No-op in one process."""
    if is_enabled() and world_size() > 1:
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return tensor


def barrier() -> None:
    """Wait for every rank. No-op in a single process."""
    if is_enabled() and world_size() > 1:
        dist.barrier()


def all_gather_objects(obj: object) -> list[object]:
    """Every rank's ``obj`` (picklable), indexed by rank. ``[obj]`` in a single process."""
    if not (is_enabled() and world_size() > 1):
        return [obj]
    gathered: list[object] = [None] * world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def broadcast_object(obj: object, src: int = 0) -> object:
    """Rank ``src``'s ``obj`` on every rank. ``obj`` itself in a single process."""
    if not (is_enabled() and world_size() > 1):
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]
