"""Typed per-level loss values, so the training step can log every Matryoshka level.

Franca (arXiv 2507.14137, §3.2) sums the DINO and iBOT losses over the nesting levels with no level
weights (reference §4.3, §4.5). These containers keep the per-level terms next to the total.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class LevelLoss:
    """Scalar loss per nesting level (coarse to fine) and their weighted sum.

    Attributes:
        levels: One 0-dim tensor per level, unweighted.
        total: ``sum_l w_l * levels[l]`` (``w_l = 1`` in the official code); carries the graph.
    """

    levels: tuple[torch.Tensor, ...]
    total: torch.Tensor

    @classmethod
    def from_levels(cls, levels: Sequence[torch.Tensor], weights: Sequence[float] | None = None) -> LevelLoss:
        """Sum ``levels`` with ``weights`` (default: all 1, the official unweighted sum)."""
        if not levels:
            raise ValueError("at least one level is required")
        if weights is not None and len(weights) != len(levels):
            raise ValueError(f"{len(weights)} level weights for {len(levels)} levels")
        ws = [1.0] * len(levels) if weights is None else list(weights)
        total = sum((w * loss for w, loss in zip(ws, levels)), start=torch.zeros_like(levels[0]))
        return cls(levels=tuple(levels), total=total)

    def detached(self) -> LevelLoss:
        """A copy without autograd history, for logging."""
        return LevelLoss(tuple(x.detach() for x in self.levels), self.total.detach())


@dataclass(frozen=True)
class DinoLoss:
    """The DINO CLS loss split into its local-crop and global-crop terms, each already scaled.

    ``total = local_crops.total + global_crops.total`` equals the official
    ``dino_local_crops_loss + dino_global_crops_loss`` (reference §4.3).
    """

    local_crops: LevelLoss
    global_crops: LevelLoss

    @property
    def total(self) -> torch.Tensor:
        return self.local_crops.total + self.global_crops.total

    @property
    def levels(self) -> tuple[torch.Tensor, ...]:
        """Local plus global term per level."""
        return tuple(a + b for a, b in zip(self.local_crops.levels, self.global_crops.levels))

    def detached(self) -> DinoLoss:
        return DinoLoss(self.local_crops.detached(), self.global_crops.detached())
