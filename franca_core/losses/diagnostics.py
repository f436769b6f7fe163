"""Collapse monitors for the teacher targets, logged beside the losses.

DINO-style training has two failure modes that the losses alone hide (DINO, Caron et al., 2021): every
image sent to one prototype (targets one-hot on the same column), or every target flat (the heads
drift to uniform outputs; the loss then sits near ln K_l and the backbone stops learning). The mean
entropy of the teacher's target distributions, divided by ln K_l, tells them apart: near 1 the
targets are flat, near 0 each image has one prototype. Sinkhorn-Knopp makes the column sums (nearly)
equal, so with it a value near 0 means confident, balanced assignments; at B < K_l it is bounded
below by ln(K_l / B) / ln K_l.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch


def normalized_entropy(probs: torch.Tensor) -> torch.Tensor:
    """Mean over rows of H(p) / ln K for a [N, K] tensor of distributions; 0-dim, no autograd history.

    ``0 * log 0`` counts as 0. K = 1 has only one distribution, which counts as entropy 0.
    """
    k = probs.shape[-1]
    if k < 2:
        return probs.new_zeros(())
    p = probs.detach().float()
    entropy = -(p * torch.log(p.clamp_min(torch.finfo(p.dtype).tiny))).sum(-1)  # [N]
    return entropy.mean() / math.log(k)


def target_entropies(targets: Sequence[torch.Tensor], n_rows: int | None = None) -> tuple[torch.Tensor, ...]:
    """:func:`normalized_entropy` per Matryoshka level, over the first ``n_rows`` rows (all by default)."""
    return tuple(normalized_entropy(t if n_rows is None else t[:n_rows]) for t in targets)
