"""Leaf layers of the DINOv2/Franca ViT: attention, block, FFNs, LayerScale, drop path, patch embed."""

from franca_core.models.layers.attention import ATTN_BACKENDS, Attention, AttnBackend, eager_attention
from franca_core.models.layers.block import LAYER_NORM_EPS, Block
from franca_core.models.layers.drop_path import DropPath, DropPathMode, drop_path, uses_batch_subset
from franca_core.models.layers.ffn import (
    FfnType,
    Mlp,
    SwiGLUFFN,
    build_ffn,
    mlp_hidden_dim,
    parse_ffn,
    swiglu_hidden_dim,
)
from franca_core.models.layers.layer_scale import LayerScale
from franca_core.models.layers.patch_embed import PatchEmbed
from franca_core.models.layers.pos_embed import interpolate_patch_pos_embed, resize_pos_embed

__all__ = [
    "ATTN_BACKENDS",
    "LAYER_NORM_EPS",
    "Attention",
    "AttnBackend",
    "Block",
    "DropPath",
    "DropPathMode",
    "FfnType",
    "LayerScale",
    "Mlp",
    "PatchEmbed",
    "SwiGLUFFN",
    "build_ffn",
    "drop_path",
    "eager_attention",
    "interpolate_patch_pos_embed",
    "mlp_hidden_dim",
    "parse_ffn",
    "resize_pos_embed",
    "swiglu_hidden_dim",
    "uses_batch_subset",
]
