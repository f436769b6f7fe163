"""Soft-target cross-entropy between teacher probabilities and a tempered student softmax.

The common term of the DINO (Caron et al., 2021, eq. 1) and iBOT (Zhou et al., 2022, eq. 2) losses:
``H(t, s) = -sum_k t_k log softmax(s / tau)_k``, computed in fp32 as in DINOv2 / Franca (reference §4.5).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def student_log_probs(student_logits: torch.Tensor, student_temp: float) -> torch.Tensor:
    """``log_softmax(s / tau)`` over the last dim, in fp32: [..., K] -> [..., K]."""
    return F.log_softmax(student_logits.float() / student_temp, dim=-1)


def soft_cross_entropy(
    student_logits: torch.Tensor, teacher_probs: torch.Tensor, student_temp: float
) -> torch.Tensor:
    """Per-row ``-sum_k t log softmax(s / tau)``: [..., K], [..., K] -> [...] (fp32)."""
    if student_logits.shape != teacher_probs.shape:
        raise ValueError(f"shape mismatch: {tuple(student_logits.shape)} vs {tuple(teacher_probs.shape)}")
    return -(teacher_probs.float() * student_log_probs(student_logits, student_temp)).sum(dim=-1)
