"""Processes, devices and parallel wrappers, kept apart from the single-device model code (torchtitan).

``torchrun`` starts one process per device and sets ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE`` and the
rendezvous; :func:`init_distributed` reads them (NCCL on CUDA, gloo on CPU). Nothing here is
SLURM-specific: under SLURM, ``srun`` starts one ``torchrun`` per node (README).

Two data-parallel modes wrap the student after it is built:

- ``ddp``: ``DistributedDataParallel`` around ``objective.student`` (gradients all-reduced, averaged);
- ``fsdp``: FSDP2 ``fully_shard`` on every transformer block, each head and the network root, for the
  student *and* the teacher (as the official code wraps both, reference §3.2 'Compute precision'), so
  the EMA update runs shard against shard.

Checkpoints use full (unsharded) state dicts with parameter names as keys
(``torch.distributed.checkpoint.state_dict``), so a checkpoint written under one mode and world size
loads under any other.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)

from franca_core.train.objective import FrancaObjective, SSLNetwork, unwrap

ParallelMode = Literal["none", "ddp", "fsdp"]
_SAVE = StateDictOptions(full_state_dict=True, cpu_offload=True)
_LOAD = StateDictOptions(full_state_dict=True)


@dataclass(frozen=True)
class DistEnv:
    """This process's place in the job."""

    rank: int
    local_rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: Literal["auto", "cpu", "cuda"] = "auto") -> DistEnv:
    """Join the torchrun process group and pick the device.

    The group is joined with more than one process, or under ``torchrun`` with one (so that an explicit
    ``runtime.distributed=ddp|fsdp`` can be exercised on a single GPU).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("runtime.device=cuda but CUDA is not available")
    dev = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(dev)
    launched = world > 1 or "TORCHELASTIC_RUN_ID" in os.environ
    if launched and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo", device_id=dev if use_cuda else None)
    return DistEnv(rank=rank, local_rank=local_rank, world_size=world, device=dev)


def shutdown() -> None:
    """Leave the process group (if any)."""
    if dist.is_initialized():
        dist.destroy_process_group()


def resolve_mode(requested: Literal["auto", "none", "ddp", "fsdp"], world_size: int) -> ParallelMode:
    """``auto`` means DDP with more than one process; a single process wraps only when asked explicitly
    and it is part of a process group (``torchrun --nproc-per-node 1``)."""
    if world_size == 1 and not (requested in ("ddp", "fsdp") and dist.is_initialized()):
        return "none"
    return "fsdp" if requested == "fsdp" else "ddp"


def _shard_network(net: SSLNetwork, mesh: Any) -> None:
    from torch.distributed.fsdp import fully_shard

    for block in net.backbone.blocks:
        fully_shard(block, mesh=mesh)
    fully_shard(net.dino_head, mesh=mesh)
    fully_shard(net.ibot_head, mesh=mesh)
    fully_shard(net, mesh=mesh)


def _reshard_after_forward(module: nn.Module, inputs: object, output: object) -> None:
    module.reshard()  # type: ignore[operator]


def parallelize(objective: FrancaObjective, mode: ParallelMode, env: DistEnv) -> None:
    """Wrap or shard ``objective``'s networks in place for ``mode``."""
    if mode == "ddp":
        device_ids = [env.local_rank] if env.device.type == "cuda" else None
        objective.student = nn.parallel.DistributedDataParallel(objective.student, device_ids=device_ids)
    elif mode == "fsdp":
        from torch.distributed.device_mesh import init_device_mesh

        mesh = init_device_mesh(env.device.type, (env.world_size,))
        _shard_network(student_network(objective), mesh)
        _shard_network(objective.teacher, mesh)
        # FSDP2 keeps the root's parameters gathered after forward, expecting a backward. The teacher
        # has none, so reshard it explicitly: the EMA update then runs shard against shard.
        objective.teacher.register_forward_hook(_reshard_after_forward)


def compile_networks(objective: FrancaObjective, scope: Literal["blocks", "all"] = "blocks") -> None:
    """``torch.compile`` the blocks of both networks, or (``all``) also their heads and the loss terms.

    Everything else stays eager; state-dict keys do not change (modules are compiled in place).
    """
    for net in (unwrap(objective.student), objective.teacher):
        assert isinstance(net, SSLNetwork)
        for block in net.backbone.blocks:
            block.compile()
        if scope == "all":
            net.dino_head.compile()
            net.ibot_head.compile()
    if scope == "all":
        objective.compile_losses()


def student_network(objective: FrancaObjective) -> SSLNetwork:
    """The student without its DDP wrapper (FSDP2 modules are the network itself)."""
    net = unwrap(objective.student)
    assert isinstance(net, SSLNetwork)
    return net


def full_model_state(module: nn.Module) -> dict[str, Tensor]:
    """Unsharded CPU state dict (every rank must call; under FSDP2 only rank 0 receives tensors)."""
    state = get_model_state_dict(module, options=_SAVE)
    return {k: v for k, v in state.items() if isinstance(v, Tensor)}


def load_full_model_state(module: nn.Module, state: dict[str, Tensor]) -> None:
    """Load an unsharded state dict on every rank (sharded again under FSDP2)."""
    set_model_state_dict(module, dict(state), options=_LOAD)


def full_optimizer_state(module: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Unsharded optimizer state keyed by parameter name (rank 0 receives it)."""
    return dict(get_optimizer_state_dict(module, optimizer, options=_SAVE))


def load_full_optimizer_state(
    module: nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any]
) -> None:
    set_optimizer_state_dict(module, optimizer, state, options=_LOAD)


def to_float(value: Tensor) -> float:
    """A scalar tensor (plain or DTensor) as a Python float."""
    full = value.full_tensor() if hasattr(value, "full_tensor") else value
    return float(full.detach().float().cpu())
