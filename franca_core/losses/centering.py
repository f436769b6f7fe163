"""Softmax centering of the teacher with an EMA center, one center per Matryoshka level.

DINO (Caron et al., 2021, §3.1 "Avoiding collapse", eq. 4): teacher targets are
``softmax((t - c) / T)`` and the center follows ``c <- m c + (1 - m) mean_batch(t)`` over all ranks,
with ``m = 0.9``. DINOv2 and Franca keep this as the ``train.centering == "centering"`` alternative to
Sinkhorn-Knopp; no Franca config uses it (reference §4.1 item 4).

Fix over the official code (reference §9.14): the official loss keeps a single center of the finest
width, updated from level 0 only and broadcast against every level, which fails for nested levels.
Here every level ``l`` owns a buffer ``center_l`` of shape [1, K_l], saved in checkpoints.

Order per step, as in DINOv2: compute :meth:`SoftmaxCentering.targets` with the current centers, then
call :meth:`SoftmaxCentering.update` with the same teacher logits.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from franca_core.distributed import all_reduce_sum


class SoftmaxCentering(nn.Module):
    """EMA centers for the teacher logits of every nesting level.

    Args:
        n_prototypes: Prototypes per level ``K_l``, coarse to fine (``head.n_prototypes``).
        momentum: EMA momentum ``m`` of the center (official 0.9).
    """

    def __init__(self, n_prototypes: Sequence[int], momentum: float = 0.9) -> None:
        super().__init__()
        self.n_prototypes = tuple(n_prototypes)
        self.momentum = momentum
        for level, k in enumerate(self.n_prototypes):
            self.register_buffer(f"center_{level}", torch.zeros(1, k))

    @property
    def n_levels(self) -> int:
        return len(self.n_prototypes)

    def center(self, level: int) -> torch.Tensor:
        """The center of ``level``: [1, K_l]."""
        return self.get_buffer(f"center_{level}")

    @torch.no_grad()
    def targets(
        self, teacher_logits: Sequence[torch.Tensor], teacher_temp: float, n_valid: int | None = None
    ) -> tuple[torch.Tensor, ...]:
        """``softmax((t_l - c_l) / T)`` per level on the first ``n_valid`` rows: [n_valid, K_l] in fp32."""
        self._check_levels(teacher_logits)
        return tuple(
            torch.softmax((logits[:n_valid].float() - self.center(level)) / teacher_temp, dim=-1)
            for level, logits in enumerate(teacher_logits)
        )

    @torch.no_grad()
    def update(self, teacher_logits: Sequence[torch.Tensor], n_valid: int | None = None) -> None:
        """EMA update of every level's center from the batch mean over all ranks (valid rows only).

        A step where no rank has a valid row leaves the centers unchanged.
        """
        self._check_levels(teacher_logits)
        rows = teacher_logits[0].shape[0] if n_valid is None else n_valid
        count = all_reduce_sum(torch.full((), float(rows), device=teacher_logits[0].device))  # no host sync
        for level, logits in enumerate(teacher_logits):
            center = self.center(level)
            batch_sum = all_reduce_sum(logits[:n_valid].float().sum(dim=0, keepdim=True))  # [1, K_l]
            batch_mean = batch_sum / count.clamp_min(1.0)
            new_center = center * self.momentum + batch_mean * (1.0 - self.momentum)
            center.copy_(torch.where(count > 0, new_center, center))

    def _check_levels(self, teacher_logits: Sequence[torch.Tensor]) -> None:
        widths = tuple(t.shape[-1] for t in teacher_logits)
        if widths != self.n_prototypes:
            raise ValueError(f"teacher levels have widths {widths}, centers expect {self.n_prototypes}")
