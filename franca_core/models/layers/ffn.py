"""Feed-forward blocks of the ViT (reference §1.1 "FFN type").

* ``Mlp``: ``fc1`` (D -> H), GELU, ``fc2`` (H -> D); the DINOv2 S/B/L FFN.
* ``SwiGLUFFN``: fused ``w12`` (D -> 2H), ``w3`` (H -> D), out = w3(silu(x1) * x2); the FFN of every Franca
  size and of DINOv2-g ("swiglufused"), with H = ((int(4·D·2/3) + 7) // 8) · 8.

Parameter names equal the official ones so checkpoints load without renaming.
"""

from __future__ import annotations

from typing import Literal

import torch.nn.functional as F
from torch import Tensor, nn

FfnType = Literal["mlp", "swiglu"]

_FFN_ALIASES: dict[str, FfnType] = {"mlp": "mlp", "swiglu": "swiglu", "swiglufused": "swiglu"}


def parse_ffn(name: str) -> FfnType:
    """Map a config name (``"mlp"``, ``"swiglu"``, official ``"swiglufused"``) to an ``FfnType``."""
    try:
        return _FFN_ALIASES[name]
    except KeyError:
        raise ValueError(f"unknown ffn layer {name!r}; expected one of {sorted(_FFN_ALIASES)}") from None


def mlp_hidden_dim(dim: int, mlp_ratio: float = 4.0) -> int:
    """Hidden width of the plain MLP: int(D · mlp_ratio)."""
    return int(dim * mlp_ratio)


def swiglu_hidden_dim(dim: int, mlp_ratio: float = 4.0) -> int:
    """Hidden width of the fused SwiGLU: 2/3 of the MLP width, rounded up to a multiple of 8.

    ViT-S 1024, B 2048, L 2736, g 4096 (reference §1.1).
    """
    return (int(mlp_hidden_dim(dim, mlp_ratio) * 2 / 3) + 7) // 8 * 8


class Mlp(nn.Module):
    """fc1 -> GELU -> dropout -> fc2 -> dropout."""

    def __init__(self, dim: int, hidden_dim: int, bias: bool = True, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim, bias=bias)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim, bias=bias)
        self.drop = nn.Dropout(drop)

    def forward(self, x: Tensor) -> Tensor:
        x = self.drop(self.act(self.fc1(x)))
        return self.drop(self.fc2(x))


class SwiGLUFFN(nn.Module):
    """Fused SwiGLU: ``w12`` produces the gate and value halves in one matmul."""

    def __init__(self, dim: int, hidden_dim: int, bias: bool = True) -> None:
        super().__init__()
        self.hidden_dim = hidden_dim
        self.w12 = nn.Linear(dim, 2 * hidden_dim, bias=bias)
        self.w3 = nn.Linear(hidden_dim, dim, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        # [..., 2H] -> two [..., H] halves: x1 is the gate (through SiLU), x2 the value.
        x1, x2 = self.w12(x).chunk(2, dim=-1)
        return self.w3(F.silu(x1) * x2)


def build_ffn(ffn: FfnType, dim: int, mlp_ratio: float = 4.0, bias: bool = True) -> nn.Module:
    """The FFN module of one block, with the official hidden width for ``ffn``."""
    if ffn == "mlp":
        return Mlp(dim, mlp_hidden_dim(dim, mlp_ratio), bias=bias)
    if ffn == "swiglu":
        return SwiGLUFFN(dim, swiglu_hidden_dim(dim, mlp_ratio), bias=bias)
    raise ValueError(f"unknown ffn type {ffn!r}")


__all__ = [
    "FfnType",
    "Mlp",
    "SwiGLUFFN",
    "build_ffn",
    "mlp_hidden_dim",
    "parse_ffn",
    "swiglu_hidden_dim",
]
