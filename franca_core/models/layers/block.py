"""Pre-norm transformer block of the DINOv2/Franca ViT (reference §1.1, §9 item 16).

x <- x + drop_path1(ls1(attn(norm1(x)))); x <- x + drop_path2(ls2(mlp(norm2(x)))).

Unlike the official block, the FFN branch has its own ``drop_path2`` module (the official code reuses
``drop_path1``, a known defect). Stochastic depth is per sample, or DINOv2's "drop a batch subset and
rescale" form (``drop_path_batch_subset``; the official block uses it above rate 0.1), which runs each
branch on the kept samples only.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

from franca_core.models.layers.attention import Attention, AttnBackend
from franca_core.models.layers.drop_path import DropPath
from franca_core.models.layers.ffn import FfnType, build_ffn
from franca_core.models.layers.layer_scale import LayerScale

LAYER_NORM_EPS = 1e-6


def _layer_scale(dim: int, init_values: float | None) -> nn.Module:
    # The official block creates LayerScale only for truthy init_values (so no ls*.gamma keys otherwise).
    return LayerScale(dim, init_values) if init_values else nn.Identity()


def _drop_path(rate: float, batch_subset: bool) -> DropPath | nn.Identity:
    return DropPath(rate, batch_subset) if rate > 0.0 else nn.Identity()


class Block(nn.Module):
    """One ViT block; submodule names are the official keys (norm1, attn, ls1, norm2, mlp, ls2)."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        *,
        ffn: FfnType = "mlp",
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        proj_bias: bool = True,
        ffn_bias: bool = True,
        drop_path: float = 0.0,
        drop_path_batch_subset: bool = False,
        init_values: float | None = None,
        attn_backend: AttnBackend = "auto",
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.attn = Attention(dim, num_heads, qkv_bias=qkv_bias, proj_bias=proj_bias, backend=attn_backend)
        self.ls1 = _layer_scale(dim, init_values)
        self.drop_path1 = _drop_path(drop_path, drop_path_batch_subset)
        self.norm2 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.mlp = build_ffn(ffn, dim, mlp_ratio, bias=ffn_bias)
        self.ls2 = _layer_scale(dim, init_values)
        self.drop_path2 = _drop_path(drop_path, drop_path_batch_subset)

    def forward(self, x: Tensor) -> Tensor:
        x = _add_residual(x, self._attn_branch, self.drop_path1)
        return _add_residual(x, self._ffn_branch, self.drop_path2)

    def _attn_branch(self, x: Tensor) -> Tensor:
        return self.ls1(self.attn(self.norm1(x)))

    def _ffn_branch(self, x: Tensor) -> Tensor:
        return self.ls2(self.mlp(self.norm2(x)))


def _add_residual(x: Tensor, branch: Callable[[Tensor], Tensor], drop: nn.Module) -> Tensor:
    if isinstance(drop, DropPath):
        return drop.add_residual(x, branch)
    return x + branch(x)


__all__ = ["LAYER_NORM_EPS", "Block"]
