"""LayerScale (Touvron et al., CaiT 2021): a learned per-channel gain on each residual branch.

State-dict key ``gamma`` of shape [D] matches the official ``ls1.gamma`` / ``ls2.gamma`` (reference §1.2).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class LayerScale(nn.Module):
    """Multiply the last dimension by ``gamma`` (initialised to ``init_values``)."""

    def __init__(self, dim: int, init_values: float = 1e-5) -> None:
        super().__init__()
        self.init_values = init_values
        self.gamma = nn.Parameter(torch.full((dim,), float(init_values)))

    def reset_parameters(self) -> None:
        nn.init.constant_(self.gamma, self.init_values)

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gamma


__all__ = ["LayerScale"]
