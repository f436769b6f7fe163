"""Per-iteration schedules of the Franca/DINOv2 recipe (reference §6, 'Schedules').

All schedules are pure functions of the step, so a resumed run recomputes exactly the values an
uninterrupted run would have used: no scheduler state needs saving.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def cosine(
    step: int, total: int, start: float, end: float, warmup: int = 0, warmup_start: float = 0.0
) -> float:
    """Linear warm-up from ``warmup_start`` to ``start`` over ``warmup`` steps, then cosine to ``end``.

    v = end + 0.5 (start - end) (1 + cos(pi t / T)) with t, T counted after the warm-up; steps
    at or beyond ``total`` return ``end``.
    """
    if step >= total:
        return end
    if step < warmup:
        return warmup_start + (start - warmup_start) * step / warmup
    t, span = step - warmup, max(1, total - warmup)
    return end + 0.5 * (start - end) * (1.0 + math.cos(math.pi * t / span))


def linear_warmup(step: int, warmup: int, start: float, end: float) -> float:
    """Linear ramp from ``start`` to ``end`` over ``warmup`` steps, then constant ``end``."""
    if step >= warmup or warmup == 0:
        return end
    return start + (end - start) * step / warmup


@dataclass(frozen=True)
class StepValues:
    """Everything the schedules set at one step."""

    lr: float
    last_layer_lr: float
    weight_decay: float
    momentum: float
    teacher_temp: float


@dataclass(frozen=True)
class Schedules:
    """The five schedules of one run; ``at(step)`` evaluates them all."""

    lr: float
    min_lr: float
    warmup_iters: int
    total_iters: int
    weight_decay: float
    weight_decay_end: float
    momentum: float
    momentum_end: float
    teacher_temp_warmup: float
    teacher_temp: float
    teacher_temp_warmup_iters: int
    freeze_last_layer_iters: int

    def at(self, step: int) -> StepValues:
        lr = cosine(step, self.total_iters, self.lr, self.min_lr, self.warmup_iters)
        return StepValues(
            lr=lr,
            # The prototypes are frozen at the start (DINO's trick against early collapse).
            last_layer_lr=0.0 if step < self.freeze_last_layer_iters else lr,
            weight_decay=cosine(step, self.total_iters, self.weight_decay, self.weight_decay_end),
            momentum=cosine(step, self.total_iters, self.momentum, self.momentum_end),
            teacher_temp=linear_warmup(
                step, self.teacher_temp_warmup_iters, self.teacher_temp_warmup, self.teacher_temp
            ),
        )
