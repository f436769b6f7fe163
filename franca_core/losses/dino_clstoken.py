"""DINO self-distillation loss on the CLS token, per Matryoshka level.

DINO (Caron et al., 2021, §3.1, eq. 3): the student's tempered softmax of every crop is trained to match
the teacher's targets of every *other* global view, ``-sum_k t_k log softmax(s / tau_s)_k`` averaged over
images. Franca (arXiv 2507.14137, §3.2) applies it to each nesting level and sums the levels without
weights (reference §4.3, official ``MRLDINOLoss``).

Scaling. With ``n_g`` global and ``n_l`` local crops there are ``N = n_g n_l + n_g (n_g - 1)``
(teacher view, student view) pairs with different views. The official code computes

- ``local = sum over the n_l x n_g (local chunk, teacher chunk) pairs of mean_b H`` and divides it by N;
- ``global = mean over the 2B rows of H(swapped teacher row r, student row r)`` and multiplies it by 2/N.

For ``n_g = 2`` the mean over 2B swapped rows is half the sum of the two cross-view pair means, so
``2 · global = sum over ordered pairs i != j of mean_b H(t_j, s_i)``. Both terms therefore share the
denominator N, and the DINO loss is the mean over all N cross-view pairs (N = 18 for 2 + 8 crops).
This module computes the cross-view sum for any ``n_g`` and divides by N; for ``n_g = 2`` that is
exactly the official ``local / 18 + global · 2 / 18``.

Crop order. The teacher targets are given in the SAME crop order as the student global crops (crop-major,
not swapped); the loss pairs different views itself. Do not swap the teacher before calling.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from franca_core.losses.cross_entropy import student_log_probs
from franca_core.losses.result import DinoLoss, LevelLoss


def n_dino_terms(n_global_crops: int, n_local_crops: int) -> int:
    """Cross-view (teacher, student) pairs ``n_g n_l + n_g (n_g - 1)``: the official divisor (18)."""
    return n_global_crops * n_local_crops + n_global_crops * (n_global_crops - 1)


def dino_cls_loss_level(
    student_global: torch.Tensor,
    student_local: torch.Tensor,
    teacher_global: torch.Tensor,
    n_global_crops: int = 2,
    student_temp: float = 0.1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """DINO loss of one level, returned as its scaled ``(local, global)`` terms (fp32 scalars).

    Args:
        student_global: Student logits of the global crops [n_g * B, K], crop-major.
        student_local: Student logits of the local crops [n_l * B, K], crop-major (n_l may be 0).
        teacher_global: Teacher targets [n_g * B, K] (probabilities, e.g. from Sinkhorn-Knopp) in the
            same crop order as ``student_global``; NOT swapped.
        n_global_crops: n_g.
        student_temp: Student temperature tau_s (official 0.1).
    """
    n_rows, n_protos = teacher_global.shape
    if student_global.shape != teacher_global.shape or n_rows % n_global_crops:
        raise ValueError(f"global shapes {tuple(student_global.shape)} vs {tuple(teacher_global.shape)}")
    batch = n_rows // n_global_crops
    if student_local.shape[1] != n_protos or student_local.shape[0] % batch:
        raise ValueError(f"local logits {tuple(student_local.shape)} vs batch {batch}, K {n_protos}")
    n_terms = n_dino_terms(n_global_crops, student_local.shape[0] // batch)
    if n_terms == 0:
        raise ValueError("no cross-view pairs: need 2 global crops or local crops")

    teacher = teacher_global.float().reshape(n_global_crops, batch, n_protos)  # [n_g, B, K]
    teacher_sum = teacher.sum(dim=0)  # [B, K]: summing targets over views == summing over pairs
    log_p_local = student_log_probs(student_local, student_temp).reshape(-1, batch, n_protos)  # [n_l, B, K]
    log_p_global = student_log_probs(student_global, student_temp).reshape(teacher.shape)  # [n_g, B, K]

    # sum_{i, j} sum_b sum_k t_j log p_i factorises into (sum_j t_j) . (sum_i log p_i).
    local = -(teacher_sum * log_p_local.sum(dim=0)).sum() / batch
    # Ordered pairs i != j: all pairs minus the same-view ones.
    all_pairs = (teacher_sum * log_p_global.sum(dim=0)).sum()
    same_view = (teacher * log_p_global).sum()
    global_ = -(all_pairs - same_view) / batch
    return local / n_terms, global_ / n_terms


def dino_cls_loss(
    student_global: Sequence[torch.Tensor],
    student_local: Sequence[torch.Tensor],
    teacher_global: Sequence[torch.Tensor],
    n_global_crops: int = 2,
    student_temp: float = 0.1,
    level_weights: Sequence[float] | None = None,
) -> DinoLoss:
    """DINO CLS loss summed over the nesting levels (official: no level weights).

    Each argument holds one tensor per level, coarse to fine, shaped as in :func:`dino_cls_loss_level`.
    """
    if not len(student_global) == len(student_local) == len(teacher_global):
        raise ValueError("every argument needs one tensor per nesting level")
    terms = [
        dino_cls_loss_level(s_g, s_l, t_g, n_global_crops, student_temp)
        for s_g, s_l, t_g in zip(student_global, student_local, teacher_global)
    ]
    return DinoLoss(
        local_crops=LevelLoss.from_levels([local for local, _ in terms], level_weights),
        global_crops=LevelLoss.from_levels([global_ for _, global_ in terms], level_weights),
    )
