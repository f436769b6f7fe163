"""Named ViT sizes and ``build_backbone`` (reference §1.1 table; Franca §4 uses B/L/g with patch 14).

``ARCHS`` is a plain registry of widths; ``build_backbone`` turns a name plus training options into a
``VisionTransformer``. Tiny models for tests and smoke runs override ``embed_dim``/``depth``/``num_heads``.

    >>> build_backbone("vit_small", embed_dim=64, depth=2, num_heads=2, img_size=28)  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from franca_core.models.layers.attention import AttnBackend
from franca_core.models.layers.drop_path import DropPathMode
from franca_core.models.layers.ffn import FfnType, parse_ffn
from franca_core.models.vision_transformer import VisionTransformer


@dataclass(frozen=True)
class ArchSpec:
    """Width, depth and head count of one named ViT size (head_dim 64 for all official sizes)."""

    embed_dim: int
    depth: int
    num_heads: int


ARCHS: dict[str, ArchSpec] = {
    "vit_tiny": ArchSpec(embed_dim=192, depth=12, num_heads=3),
    "vit_small": ArchSpec(embed_dim=384, depth=12, num_heads=6),
    "vit_base": ArchSpec(embed_dim=768, depth=12, num_heads=12),
    "vit_large": ArchSpec(embed_dim=1024, depth=24, num_heads=16),
    "vit_giant2": ArchSpec(embed_dim=1536, depth=40, num_heads=24),
}


def arch_name(embed_dim: int, depth: int) -> str | None:
    """The registry name with this width and depth, or None for a custom size."""
    for name, spec in ARCHS.items():
        if (spec.embed_dim, spec.depth) == (embed_dim, depth):
            return name
    return None


def build_backbone(
    arch: str = "vit_base",
    *,
    img_size: int = 224,
    patch_size: int = 14,
    in_chans: int = 3,
    ffn: FfnType | Literal["swiglufused"] = "swiglu",
    mlp_ratio: float = 4.0,
    drop_path_rate: float = 0.0,
    drop_path_uniform: bool = True,
    drop_path_mode: DropPathMode = "official",
    layerscale_init: float | None = 1e-5,
    num_register_tokens: int = 0,
    interpolate_antialias: bool = False,
    interpolate_offset: float = 0.1,
    qkv_bias: bool = True,
    proj_bias: bool = True,
    ffn_bias: bool = True,
    embed_dim: int | None = None,
    depth: int | None = None,
    num_heads: int | None = None,
    attn_backend: AttnBackend = "auto",
) -> VisionTransformer:
    """Build a backbone by registry name; defaults are Franca's (SwiGLU, LayerScale 1e-5, uniform drop path).

    ``drop_path_rate`` is for the student only (the teacher uses 0). ``embed_dim``/``depth``/``num_heads``
    override the named size, e.g. ``embed_dim=64, depth=2, num_heads=2`` for tests.
    """
    if arch not in ARCHS:
        raise KeyError(f"unknown architecture {arch!r}; known: {sorted(ARCHS)}")
    spec = ARCHS[arch]
    return VisionTransformer(
        img_size=img_size,
        patch_size=patch_size,
        in_chans=in_chans,
        embed_dim=spec.embed_dim if embed_dim is None else embed_dim,
        depth=spec.depth if depth is None else depth,
        num_heads=spec.num_heads if num_heads is None else num_heads,
        mlp_ratio=mlp_ratio,
        ffn=parse_ffn(ffn),
        qkv_bias=qkv_bias,
        proj_bias=proj_bias,
        ffn_bias=ffn_bias,
        drop_path_rate=drop_path_rate,
        drop_path_uniform=drop_path_uniform,
        drop_path_mode=drop_path_mode,
        init_values=layerscale_init,
        num_register_tokens=num_register_tokens,
        interpolate_antialias=interpolate_antialias,
        interpolate_offset=interpolate_offset,
        attn_backend=attn_backend,
    )


__all__ = ["ARCHS", "ArchSpec", "arch_name", "build_backbone"]
