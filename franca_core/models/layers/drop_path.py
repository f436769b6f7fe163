"""Stochastic depth (Huang et al., 2016), as used by DINOv2/Franca students (Franca §3, reference §1.1).

A residual branch is zeroed for a random subset of samples and rescaled by 1/keep for the others, so
its expectation is unchanged. The teacher is built with rate 0 and this module is then the identity.
"""

from __future__ import annotations

from torch import Tensor, nn


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


class DropPath(nn.Module):
    """Per-sample stochastic depth on a residual branch. Identity in eval mode or at rate 0."""

    def __init__(self, drop_prob: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= drop_prob < 1.0:
            raise ValueError(f"drop_prob must be in [0, 1), got {drop_prob}")
        self.drop_prob = drop_prob

    def forward(self, x: Tensor) -> Tensor:
        return drop_path(x, self.drop_prob, self.training)

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob}"


__all__ = ["DropPath", "drop_path"]
