"""Assemble a training run from a stage config: seeds, networks, parallelism, optimizer, resume point.

Order matters for exact resume: the model is built from ``runtime.seed`` on every launch (so the RNG
advances identically), then a checkpoint, if any, overwrites weights, optimizer state and every RNG
state. Everything else (schedules, data, masks) is a pure function of the step and the data position.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from franca_core import distributed
from franca_core.config.pretrain import Derived, PretrainConfig, derived
from franca_core.data.augment import derive_seed
from franca_core.data.position import DataPosition
from franca_core.models.vision_transformer import VisionTransformer
from franca_core.train.build import build_objective
from franca_core.train.checkpoint import latest_good_checkpoint, load_checkpoint, restore_rng
from franca_core.train.data import initial_position
from franca_core.train.objective import FrancaObjective
from franca_core.train.parallel import (
    DistEnv,
    ParallelMode,
    compile_networks,
    load_full_model_state,
    load_full_optimizer_state,
    parallelize,
    resolve_mode,
    student_network,
)
from franca_core.train.param_groups import build_param_groups
from franca_core.train.schedules import Schedules
from franca_core.train.weights import initial_backbone_state, load_initial_backbone

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StartPoint:
    """Where this launch starts: step 0 of a fresh run, or a checkpoint."""

    step: int
    wall_time_s: float
    data: DataPosition
    checkpoint: Path | None


@dataclass
class Run:
    """Everything the loop needs."""

    cfg: PretrainConfig
    env: DistEnv
    mode: ParallelMode
    derived: Derived
    objective: FrancaObjective
    optimizer: torch.optim.Optimizer
    schedules: Schedules
    start: StartPoint
    autocast_dtype: torch.dtype | None


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def build_schedules(cfg: PretrainConfig, d: Derived) -> Schedules:
    """The five schedules of reference §6 with the lr scaled to the global batch."""
    o, t = cfg.optim, cfg.teacher
    return Schedules(
        lr=d.lr,
        min_lr=d.min_lr,
        warmup_iters=o.warmup_iters,
        total_iters=o.total_iters,
        weight_decay=o.weight_decay,
        weight_decay_end=o.weight_decay_end,
        momentum=t.momentum,
        momentum_end=t.momentum_end,
        teacher_temp_warmup=t.temp_warmup,
        teacher_temp=t.temp,
        teacher_temp_warmup_iters=t.temp_warmup_iters,
        freeze_last_layer_iters=o.freeze_last_layer_iters,
    )


def build_optimizer(
    cfg: PretrainConfig, objective: FrancaObjective, mode: ParallelMode
) -> torch.optim.Optimizer:
    """AdamW over the student with layer-wise / patch-embed lr and no decay on norms and biases."""
    student = student_network(objective)
    groups = build_param_groups(
        student.named_parameters(),
        n_blocks=student.backbone.depth,
        layerwise_decay=cfg.optim.layerwise_decay,
        patch_embed_lr_mult=cfg.optim.patch_embed_lr_mult,
    )
    on_cuda = next(student.parameters()).is_cuda
    fused = True if on_cuda and mode != "fsdp" else None
    return torch.optim.AdamW(groups, lr=0.0, betas=cfg.optim.betas, weight_decay=0.0, fused=fused)


def autocast_dtype(cfg: PretrainConfig, device: torch.device) -> torch.dtype | None:
    """bf16 autocast on CUDA (``auto``/``bf16``), fp32 (no autocast) on CPU or with ``fp32``."""
    wanted = cfg.runtime.precision
    if wanted == "fp32" or (wanted == "auto" and device.type != "cuda"):
        return None
    return torch.bfloat16


def objective_buffers(objective: FrancaObjective) -> dict[str, torch.Tensor]:
    """State of the objective outside both networks (softmax-centering centres, if used)."""
    own = ("student.", "teacher.")
    return {k: v.detach().cpu().clone() for k, v in objective.state_dict().items() if not k.startswith(own)}


def _load_buffers(objective: FrancaObjective, buffers: dict[str, torch.Tensor]) -> None:
    with torch.no_grad():
        for name, value in buffers.items():
            objective.get_buffer(name).copy_(value)


def student_module(objective: FrancaObjective, mode: ParallelMode) -> nn.Module:
    """The module whose state dict is checkpointed: the FSDP2 root, or the network inside DDP."""
    return objective.student if mode == "fsdp" else student_network(objective)


def resume(run: Run, path: Path) -> StartPoint:
    """Load a checkpoint into ``run`` on every rank; returns where training continues."""
    state = load_checkpoint(path)
    student = student_module(run.objective, run.mode)
    load_full_model_state(student, state.student)
    load_full_model_state(run.objective.teacher, state.teacher)
    _load_buffers(run.objective, state.objective)
    load_full_optimizer_state(student, run.optimizer, state.optimizer)
    if len(state.rng) == run.env.world_size:
        restore_rng(state.rng[run.env.rank])
    else:  # another world size: still deterministic, though not the original sequence
        seed_everything(derive_seed(run.cfg.runtime.seed, state.step, run.env.rank) % 2**31)
    layout = initial_position(run.cfg, run.env.world_size)
    return StartPoint(state.step, state.wall_time_s, state.data.continued_as(layout), path)


def _init_weights(cfg: PretrainConfig, objective: FrancaObjective) -> None:
    if cfg.init_from is None:
        return
    state = initial_backbone_state(Path(cfg.init_from), cfg.crops.global_size, cfg.backbone.patch_size)
    load_initial_backbone([student_network(objective).backbone, objective.teacher.backbone], state)
    log.info("initialised student and teacher backbones from %s", cfg.init_from)


def initial_objective(cfg: PretrainConfig) -> FrancaObjective:
    """The networks exactly as a fresh run of ``cfg`` starts them (seeded, then ``init_from`` applied)."""
    seed_everything(cfg.runtime.seed)
    objective = build_objective(cfg)
    _init_weights(cfg, objective)
    return objective


def initial_teacher_backbone(cfg: PretrainConfig) -> VisionTransformer:
    """The teacher backbone at step 0 of a fresh run of ``cfg`` (the "random init" of learning tests)."""
    return initial_objective(cfg).teacher.backbone


def build_run(cfg: PretrainConfig, run_dir: Path, env: DistEnv) -> Run:
    """Networks, wrappers, optimizer and schedules for ``cfg``; resumes from ``run_dir`` when it can."""
    if env.device.type == "cuda":  # TF32 for any fp32 matmul left outside autocast (as officially)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    objective = initial_objective(cfg)
    objective.to(env.device)
    mode = resolve_mode(cfg.runtime.distributed, env.world_size)
    parallelize(objective, mode, env)
    student_network(objective).backbone.set_activation_checkpointing(cfg.runtime.activation_checkpointing)
    if cfg.runtime.compile != "off":
        compile_networks(objective, cfg.runtime.compile)
    d = derived(cfg, env.world_size)
    run = Run(
        cfg=cfg,
        env=env,
        mode=mode,
        derived=d,
        objective=objective,
        optimizer=build_optimizer(cfg, objective, mode),
        schedules=build_schedules(cfg, d),
        start=StartPoint(0, 0.0, initial_position(cfg, env.world_size), None),
        autocast_dtype=autocast_dtype(cfg, env.device),
    )
    found = latest_good_checkpoint(run_dir) if env.is_main else None
    checkpoint = distributed.broadcast_object(found)
    if isinstance(checkpoint, Path):
        run.start = resume(run, checkpoint)
    return run
