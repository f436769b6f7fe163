"""Stochastic depth (Huang et al., 2016), as used by DINOv2/Franca students (Franca §3, reference §1.1).

Two forms, both unbiased (the expected residual is unchanged):

- per sample (:func:`drop_path`): the branch runs on every sample; each sample's output is zeroed with
  probability ``p`` and the others are rescaled by ``1 / (1 - p)``.
- batch subset (:func:`add_residual_batch_subset`, DINOv2's form, which the official block uses for
  rates above 0.1): exactly ``max(int(B (1 - p)), 1)`` samples, drawn without replacement, run the
  branch at all; their residual is scaled by ``B / kept`` and the others keep ``x`` unchanged. At
  ViT-L's rate 0.4 this skips 40% of the student's block compute.

The teacher is built with rate 0 and both forms are then the identity.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor, nn

DropPathMode = Literal["official", "per_sample", "batch_subset"]
"""``official``: batch subset above rate 0.1, per sample at or below (reference §1.1)."""

OFFICIAL_SUBSET_ABOVE = 0.1


def drop_path(x: Tensor, drop_prob: float, training: bool) -> Tensor:
    """Zero whole samples of ``x`` ([B, ...]) with probability ``drop_prob``; rescale the rest by 1/keep."""
    if drop_prob == 0.0 or not training:
        return x
    keep_prob = 1.0 - drop_prob
    # One Bernoulli draw per sample, broadcast over every other dimension: shape [B, 1, ..., 1].
    shape = (x.shape[0],) + (1,) * (x.ndim - 1)
    keep = x.new_empty(shape).bernoulli_(keep_prob)
    if keep_prob > 0.0:
        keep.div_(keep_prob)
    return x * keep


def subset_size(batch: int, drop_prob: float) -> int:
    """How many samples run the branch under batch-subset stochastic depth (at least one)."""
    return max(int(batch * (1.0 - drop_prob)), 1)


def add_residual_batch_subset(x: Tensor, branch: Callable[[Tensor], Tensor], drop_prob: float) -> Tensor:
    """``x + branch(x)`` with the branch run on a random subset of the batch and rescaled by B / kept.

    ``x`` is ``[B, ...]``; ``branch`` maps ``[b, ...]`` to the same shape for any ``b``. Returns a new
    tensor (``x`` is not modified), differentiable through both ``x`` and the branch.
    """
    batch = x.shape[0]
    kept = subset_size(batch, drop_prob)
    rows = torch.randperm(batch, device=x.device)[:kept]  # [kept]
    residual = branch(x[rows])  # [kept, ...]
    flat = torch.index_add(x.flatten(1), 0, rows, residual.flatten(1).to(x.dtype), alpha=batch / kept)
    return flat.view_as(x)


class DropPath(nn.Module):
    """Stochastic depth on a residual branch. Identity in eval mode or at rate 0.

    ``forward`` is the per-sample form, applied to a branch's output. :meth:`add_residual` computes
    ``x + drop(branch(x))`` and, with ``batch_subset``, runs the branch on the kept samples only.
    """

    def __init__(self, drop_prob: float = 0.0, batch_subset: bool = False) -> None:
        super().__init__()
        if not 0.0 <= drop_prob < 1.0:
            raise ValueError(f"drop_prob must be in [0, 1), got {drop_prob}")
        self.drop_prob = drop_prob
        self.batch_subset = batch_subset

    def forward(self, x: Tensor) -> Tensor:
        return drop_path(x, self.drop_prob, self.training)

    def add_residual(self, x: Tensor, branch: Callable[[Tensor], Tensor]) -> Tensor:
        """``x`` plus the branch's residual under this module's form of stochastic depth."""
        if self.batch_subset and self.training and self.drop_prob > 0.0:
            return add_residual_batch_subset(x, branch, self.drop_prob)
        return x + self(branch(x))

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob}, batch_subset={self.batch_subset}"


def uses_batch_subset(mode: DropPathMode, drop_prob: float) -> bool:
    """Whether a block with this rate uses the batch-subset form under ``mode``."""
    if mode == "official":
        return drop_prob > OFFICIAL_SUBSET_ABOVE
    return mode == "batch_subset"


__all__ = [
    "OFFICIAL_SUBSET_ABOVE",
    "DropPath",
    "DropPathMode",
    "add_residual_batch_subset",
    "drop_path",
    "subset_size",
    "uses_batch_subset",
]
