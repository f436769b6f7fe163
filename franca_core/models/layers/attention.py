"""Multi-head self-attention of the DINOv2/Franca ViT (reference §1.1 "Attention").

One ``qkv`` Linear (D -> 3D), scaled dot-product attention with scale head_dim^-0.5 and a plain softmax,
then ``proj`` (D -> D). Three interchangeable kernels compute the same numbers:

* ``"sdpa"``: ``torch.nn.functional.scaled_dot_product_attention`` (default on CPU);
* ``"eager"``: softmax(q kᵀ · scale) v written out, for tests and debugging;
* ``"auto"``: xFormers ``memory_efficient_attention`` when xFormers imports, the input is on CUDA and a
  one-off probe call with that dtype and head width succeeds, else SDPA. xFormers is imported lazily and
  only once; ``XFORMERS_DISABLED=1`` turns it off (as officially). The probe matters: an xFormers wheel
  built for another torch imports fine but has no CUDA kernels (seen on an H100 with torch 2.11 and
  xformers 0.0.35), and its kernels refuse some dtype/head-width pairs.

SDPA returns no weights, so ``attention_weights`` recomputes softmax(q kᵀ · scale) for visualisation.
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

AttnBackend = Literal["auto", "sdpa", "eager"]
ATTN_BACKENDS: tuple[AttnBackend, ...] = ("auto", "sdpa", "eager")


@functools.lru_cache(maxsize=1)
def xformers_attention() -> Callable[..., Tensor] | None:
    """xFormers' ``memory_efficient_attention`` if it can be imported and is not disabled, else None."""
    if os.environ.get("XFORMERS_DISABLED"):
        return None
    try:
        from xformers.ops import memory_efficient_attention  # type: ignore[import-not-found]
    except Exception:  # ImportError, or a binary built for another torch/CUDA
        return None
    fn: Callable[..., Tensor] = memory_efficient_attention
    return fn


@functools.lru_cache(maxsize=64)
def xformers_for(device: torch.device, dtype: torch.dtype, head_dim: int) -> Callable[..., Tensor] | None:
    """xFormers' kernel if it runs on ``device`` for this dtype and head width (probed once), else None."""
    fn = xformers_attention()
    if fn is None or device.type != "cuda":
        return None
    probe = torch.zeros(1, 8, 1, head_dim, device=device, dtype=dtype)
    try:
        fn(probe, probe, probe)
    except Exception as err:  # NotImplementedError: no kernel built for this input
        first_line = str(err).splitlines()[0] if str(err) else type(err).__name__
        warnings.warn(
            f"xFormers cannot run {dtype} head_dim={head_dim}, using SDPA: {first_line}", stacklevel=2
        )
        return None
    return fn


def eager_attention(q: Tensor, k: Tensor, v: Tensor, scale: float, dropout_p: float = 0.0) -> Tensor:
    """softmax(q kᵀ · scale) v for q, k, v of shape [B, h, N, hd]; returns [B, h, N, hd]."""
    attn = (q * scale) @ k.transpose(-2, -1)  # [B, h, N, N]
    attn = attn.softmax(dim=-1)
    if dropout_p > 0.0:
        attn = F.dropout(attn, p=dropout_p)
    return attn @ v


class Attention(nn.Module):
    """Self-attention with a fused qkv projection; parameter names ``qkv`` and ``proj`` as in DINOv2."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        qkv_bias: bool = True,
        proj_bias: bool = True,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
        backend: AttnBackend = "auto",
    ) -> None:
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f"embed dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim, bias=proj_bias)
        self.attn_drop = attn_drop
        self.proj_drop = nn.Dropout(proj_drop)
        self.backend: AttnBackend = "auto"
        self.set_backend(backend)

    def set_backend(self, backend: AttnBackend) -> None:
        if backend not in ATTN_BACKENDS:
            raise ValueError(f"unknown attention backend {backend!r}; expected one of {ATTN_BACKENDS}")
        self.backend = backend

    def _qkv(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Project [B, N, D] to q, k, v, each [B, N, h, hd]."""
        B, N, _ = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim)  # [B, N, 3, h, hd]
        q, k, v = qkv.unbind(dim=2)
        return q, k, v

    def forward(self, x: Tensor) -> Tensor:
        B, N, D = x.shape
        q, k, v = self._qkv(x)  # [B, N, h, hd] each
        dropout_p = self.attn_drop if self.training else 0.0
        xformers_fn = (
            xformers_for(x.device, q.dtype, q.shape[-1]) if self.backend == "auto" and x.is_cuda else None
        )
        if xformers_fn is not None:
            out = xformers_fn(q, k, v, p=dropout_p)  # xFormers layout [B, N, h, hd]
        else:
            q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # [B, h, N, hd]
            if self.backend == "eager":
                out = eager_attention(q, k, v, self.scale, dropout_p)
            else:
                out = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)
            out = out.transpose(1, 2)  # [B, N, h, hd]
        out = out.reshape(B, N, D)
        return self.proj_drop(self.proj(out))

    @torch.no_grad()
    def attention_weights(self, x: Tensor) -> Tensor:
        """Softmax attention probabilities [B, h, N, N] for input tokens [B, N, D] (no dropout)."""
        q, k, _ = self._qkv(x)
        q, k = q.transpose(1, 2), k.transpose(1, 2)  # [B, h, N, hd]
        return ((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1)


__all__ = [
    "ATTN_BACKENDS",
    "Attention",
    "AttnBackend",
    "eager_attention",
    "xformers_attention",
    "xformers_for",
]
