"""The pretraining loop (Franca arXiv 2507.14137 §4; reference §6 'Step').

One iteration, top to bottom (:func:`train_step`): set this step's lr and weight decay (cosine
schedules, prototypes frozen at the start), zero the gradients, run the objective (teacher targets by
Sinkhorn-Knopp, student DINO + iBOT + KoLeo) under bf16 autocast on CUDA, backpropagate, clip the
gradient norm of backbone and heads separately, AdamW step, EMA update of the teacher.

Around it, :func:`run_loop` logs averaged metrics every ``log_every`` steps, checkpoints every
``checkpoint_every`` steps and at the end, shows a progress bar with throughput, and stops cleanly
(checkpoint first) on SIGTERM/SIGUSR1, which SLURM sends before a job's time limit.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType

import torch
from torch import Tensor
from torch.profiler import record_function
from tqdm import tqdm

from franca_core import distributed
from franca_core.data.collate import MultiCropBatch
from franca_core.tracking import MetricSink
from franca_core.train.checkpoint import (
    CheckpointMeta,
    TrainingState,
    apply_retention,
    capture_rng,
    save_checkpoint,
)
from franca_core.train.objective import LossBreakdown, SSLNetwork
from franca_core.train.parallel import full_model_state, full_optimizer_state, student_network, to_float
from franca_core.train.param_groups import apply_step_values
from franca_core.train.schedules import StepValues
from franca_core.train.setup import Run, objective_buffers, student_module


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite (the official loop raises too)."""


@dataclass(frozen=True)
class StepMetrics:
    """What is logged for one step: losses averaged over ranks, schedule values, throughput."""

    loss: float
    dino: float
    ibot: float
    koleo: float
    grad_norm: float
    lr: float
    weight_decay: float
    momentum: float
    teacher_temp: float
    images_per_s: float
    dino_levels: tuple[float, ...]
    ibot_levels: tuple[float, ...]
    dino_target_entropy: tuple[float, ...] = ()  # per level, H / ln K_l (losses.diagnostics)
    ibot_target_entropy: tuple[float, ...] = ()

    def as_dict(self) -> dict[str, float]:
        flat = {k: v for k, v in asdict(self).items() if not isinstance(v, tuple)}
        for prefix, values in (
            ("dino_l", self.dino_levels),
            ("ibot_l", self.ibot_levels),
            ("dino_target_entropy_l", self.dino_target_entropy),
            ("ibot_target_entropy_l", self.ibot_target_entropy),
        ):
            flat.update({f"{prefix}{i}": v for i, v in enumerate(values)})
        return flat

    def losses(self) -> dict[str, float]:
        return {"total": self.loss, "dino": self.dino, "ibot": self.ibot, "koleo": self.koleo}


@dataclass(frozen=True)
class LoopOutcome:
    """How the loop ended."""

    step: int
    stopped: bool
    wall_time_s: float
    last_metrics: StepMetrics | None
    last_checkpoint: CheckpointMeta | None


def _autocast(run: Run) -> AbstractContextManager[None]:
    dtype = run.autocast_dtype
    return torch.autocast(run.env.device.type, dtype=dtype or torch.float32, enabled=dtype is not None)


def clip_gradients(student: SSLNetwork, max_norm: float | None) -> Tensor:
    """Clip backbone, DINO head and iBOT head separately (reference §6 step 3); backbone norm returned."""
    limit = float("inf") if max_norm is None else max_norm
    norms = []
    for part in (student.backbone, student.dino_head, student.ibot_head):
        params = [p for p in part.parameters() if p.grad is not None]
        norms.append(torch.nn.utils.clip_grad_norm_(params, limit))
    return norms[0]


def train_step(run: Run, batch: MultiCropBatch, values: StepValues) -> tuple[LossBreakdown, Tensor]:
    """One Franca iteration; returns the loss terms and the backbone gradient norm.

    The phases are named ``franca.*`` profiler ranges (``benchmarks/train_step/profile_step.py``).
    """
    apply_step_values(run.optimizer, values.lr, values.last_layer_lr, values.weight_decay)
    run.optimizer.zero_grad(set_to_none=True)
    with _autocast(run):
        losses = run.objective(batch, values.teacher_temp)
    with record_function("franca.backward"):
        losses.total.backward()
    with record_function("franca.clip"):
        grad_norm = clip_gradients(student_network(run.objective), run.cfg.optim.clip_grad)
    with record_function("franca.optimizer"):
        run.optimizer.step()
    with record_function("franca.ema"):
        run.objective.update_teacher(values.momentum)
    return losses, grad_norm


def step_metrics(
    losses: LossBreakdown, grad_norm: Tensor, values: StepValues, images_per_s: float
) -> StepMetrics:
    """Average the loss terms over ranks (a collective: every rank calls it)."""
    per_level = (
        losses.dino.levels,
        losses.ibot.levels,
        losses.dino_target_entropy,
        losses.ibot_target_entropy,
    )
    terms = [
        losses.total,
        losses.dino.total,
        losses.ibot.total,
        losses.koleo,
        *(t for ts in per_level for t in ts),
    ]
    mean = distributed.all_reduce_mean(torch.stack([t.detach().float() for t in terms])).tolist()
    groups, start = [], 4
    for ts in per_level:
        groups.append(tuple(mean[start : start + len(ts)]))
        start += len(ts)
    return StepMetrics(
        loss=mean[0],
        dino=mean[1],
        ibot=mean[2],
        koleo=mean[3],
        grad_norm=to_float(grad_norm),
        lr=values.lr,
        weight_decay=values.weight_decay,
        momentum=values.momentum,
        teacher_temp=values.teacher_temp,
        images_per_s=images_per_s,
        dino_levels=groups[0],
        ibot_levels=groups[1],
        dino_target_entropy=groups[2],
        ibot_target_entropy=groups[3],
    )


def save_training_state(
    run: Run, run_dir: Path, step: int, wall_time_s: float, losses: dict[str, float]
) -> CheckpointMeta | None:
    """Gather the full state (collective) and write it on rank 0; returns the meta on rank 0."""
    student = full_model_state(student_module(run.objective, run.mode))
    teacher = full_model_state(run.objective.teacher)
    optimizer = full_optimizer_state(student_module(run.objective, run.mode), run.optimizer)
    rng = distributed.all_gather_objects(capture_rng())
    meta = None
    if run.env.is_main:
        state = TrainingState(
            step=step,
            student=student,
            teacher=teacher,
            objective=objective_buffers(run.objective),
            optimizer=optimizer,
            data=run.start.data.advanced_to(step),
            rng=[r for r in rng if isinstance(r, dict)],
            wall_time_s=wall_time_s,
            config_json=run.cfg.model_dump_json(),
        )
        meta = save_checkpoint(
            run_dir, state, world_size=run.env.world_size, parallel=run.mode, losses=losses
        )
        apply_retention(run_dir, run.cfg.runtime.keep_last)
    distributed.barrier()
    return meta


class StopRequest:
    """Set by SIGTERM/SIGUSR1; the loop checkpoints and stops at the next step boundary."""

    def __init__(self) -> None:
        self.flag = False
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopRequest:
        for sig in (signal.SIGTERM, signal.SIGUSR1):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: no handler, the loop just runs
                break
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.flag = True

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]


def stop_or_diverged(stop: bool, loss: Tensor) -> tuple[bool, bool]:
    """(a stop was requested, the loss is not finite), each OR-ed over all ranks.

    One collective and the step's only host synchronisation: the flags are built on the loss's device
    (``torch.full`` launches a kernel, where ``torch.tensor(..., device=cuda)`` would wait for the GPU).
    """
    flags = torch.stack([torch.full((), float(stop), device=loss.device), (~torch.isfinite(loss)).float()])
    stopping, diverged = distributed.all_reduce_max(flags).tolist()
    return bool(stopping), bool(diverged)


def run_loop(
    run: Run, batches: Iterator[MultiCropBatch], run_dir: Path, sink: MetricSink, progress: bool
) -> LoopOutcome:
    """Train from ``run.start.step`` to ``derived.max_steps``, logging and checkpointing."""
    cfg, env, max_steps = run.cfg, run.env, run.derived.max_steps
    step, began = run.start.step, time.perf_counter()
    metrics: StepMetrics | None = None
    last_ckpt: CheckpointMeta | None = None
    window_start, window_steps = time.perf_counter(), 0
    bar = tqdm(
        total=max_steps, initial=step, disable=not (progress and env.is_main), unit="step", dynamic_ncols=True
    )
    with StopRequest() as stop, bar:
        while step < max_steps:
            batch = next(batches).to(env.device, non_blocking=True)
            values = run.schedules.at(step)
            losses, grad_norm = train_step(run, batch, values)
            step, window_steps = step + 1, window_steps + 1
            stopping, diverged = stop_or_diverged(stop.flag, losses.total.detach())
            if diverged:  # on every rank, so none is left waiting in a collective
                raise NonFiniteLossError(f"loss is {losses.total.item()} on some rank at step {step}")
            save_now = step % cfg.runtime.checkpoint_every == 0 or step == max_steps or stopping
            if step % cfg.runtime.log_every == 0 or save_now:
                rate = run.derived.global_batch * window_steps / (time.perf_counter() - window_start)
                metrics = step_metrics(losses, grad_norm, values, rate)
                sink.log_metrics(step, metrics.as_dict())
                bar.set_postfix(loss=f"{metrics.loss:.3f}", lr=f"{values.lr:.2e}", img_s=f"{rate:.1f}")
                window_start, window_steps = time.perf_counter(), 0
            bar.update(1)
            if save_now:
                wall = run.start.wall_time_s + time.perf_counter() - began
                last_ckpt = save_training_state(run, run_dir, step, wall, metrics.losses() if metrics else {})
            if stopping:
                break
    wall = run.start.wall_time_s + time.perf_counter() - began
    return LoopOutcome(step, step < max_steps, wall, metrics, last_ckpt)
