"""iBOT masked-patch distillation loss, per Matryoshka level.

iBOT (Zhou et al., 2022, §3, eq. 2) trains the student's tokens at masked positions of a global crop to
match the teacher's targets for the same, unmasked tokens. DINOv2 (``iBOTPatchLoss.forward_masked``) and
Franca (arXiv 2507.14137, §3.2; official ``MRLiBOTPatchLoss``, reference §4.5) weight every masked token
by ``1 / (masked tokens in its image)`` and divide by the number of global-crop images, so each masked
image contributes the mean cross-entropy over its masked tokens and unmasked images contribute 0.
Levels are summed without weights.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from franca_core.losses.cross_entropy import soft_cross_entropy
from franca_core.losses.result import LevelLoss


def ibot_patch_loss_level(
    student_logits: torch.Tensor,
    teacher_probs: torch.Tensor,
    masks_weight: torch.Tensor,
    n_global_images: int,
    student_temp: float = 0.1,
) -> torch.Tensor:
    """``-sum_i w_i sum_k t_ik log softmax(s_i / tau_s)_k / n_global_images`` for one level (fp32 scalar).

    Args:
        student_logits: Student logits of the masked tokens [M, K]; extra trailing rows (the official
            zero-padded ``upperbound`` buffer) are ignored.
        teacher_probs: Teacher targets of the same tokens [M, K] (trailing extra rows ignored).
        masks_weight: Per-token weight [M], ``1 / (masked tokens in its image)``.
        n_global_images: Global-crop images on this rank (n_g * B), masked or not.
        student_temp: Student temperature tau_s (official 0.1).
    """
    n_masked = masks_weight.shape[0]
    if student_logits.shape[0] < n_masked or teacher_probs.shape[0] < n_masked:
        raise ValueError(f"{n_masked} mask weights for {student_logits.shape[0]} student rows")
    per_token = soft_cross_entropy(student_logits[:n_masked], teacher_probs[:n_masked], student_temp)  # [M]
    return (per_token * masks_weight.float()).sum() / n_global_images


def ibot_patch_loss(
    student_logits: Sequence[torch.Tensor],
    teacher_probs: Sequence[torch.Tensor],
    masks_weight: torch.Tensor,
    n_global_images: int,
    student_temp: float = 0.1,
    level_weights: Sequence[float] | None = None,
) -> LevelLoss:
    """iBOT loss summed over the nesting levels (official: no level weights); one tensor per level."""
    if len(student_logits) != len(teacher_probs):
        raise ValueError(f"{len(student_logits)} student levels vs {len(teacher_probs)} teacher levels")
    levels = [
        ibot_patch_loss_level(s, t, masks_weight, n_global_images, student_temp)
        for s, t in zip(student_logits, teacher_probs)
    ]
    return LevelLoss.from_levels(levels, level_weights)
