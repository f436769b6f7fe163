"""DINOv2/Franca Vision Transformer backbone (Franca, arXiv 2507.14137, §3; reference §1).

Pre-norm ViT with CLS token, optional register tokens (Darcet et al., 2024), learned absolute position
embeddings resized to any input size, a ``mask_token`` for iBOT masked-image modelling, LayerScale and
stochastic depth. Parameter names equal the official flat (DINOv2-style) state-dict keys, so checkpoints
load after the key normalisation in ``franca_core.models.pretrained``.

``forward_features`` returns a frozen ``BackboneOutput`` that can also be indexed like the official dict
(``out["x_norm_clstoken"]``). An attached RASA transform (``attach_rasa``) is stored as the folded D×D
buffer ``rasa_fold`` and yields ``patch_token_rasa``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from functools import partial
from typing import Any, Literal, overload

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from franca_core.models.layers.attention import AttnBackend
from franca_core.models.layers.block import LAYER_NORM_EPS, Block
from franca_core.models.layers.drop_path import DropPathMode, uses_batch_subset
from franca_core.models.layers.ffn import FfnType
from franca_core.models.layers.patch_embed import PatchEmbed
from franca_core.models.layers.pos_embed import interpolate_patch_pos_embed
from franca_core.rasa.head import RASAHead


@dataclass(frozen=True)
class BackboneOutput:
    """Outputs of ``forward_features``; also readable as ``out["x_norm_clstoken"]`` like the official dict."""

    x_norm_clstoken: Tensor  # [B, D]
    x_norm_regtokens: Tensor  # [B, R, D]
    x_norm_patchtokens: Tensor  # [B, N, D]
    x_prenorm: Tensor  # [B, 1 + R + N, D], last block output before the final norm
    masks: Tensor | None  # [B, N] bool, passed through
    patch_token_rasa: Tensor | None = None  # [B, N, D] when a RASA transform is attached

    def keys(self) -> tuple[str, ...]:
        return tuple(f.name for f in fields(self))

    def __getitem__(self, key: str) -> Tensor | None:
        if key not in self.keys():
            raise KeyError(key)
        value: Tensor | None = getattr(self, key)
        return value

    def __contains__(self, key: object) -> bool:
        return key in self.keys()

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())


def drop_path_rates(rate: float, depth: int, uniform: bool) -> list[float]:
    """Stochastic-depth rate per block: uniform (Franca) or increasing linearly from 0 to ``rate``.

    Plain Python, so that a model can be built on the meta device.
    """
    step = rate / max(depth - 1, 1)
    return [rate] * depth if uniform else [i * step for i in range(depth)]


class VisionTransformer(nn.Module):
    """ViT backbone built from plain arguments; see ``franca_core.models.factory`` for the named sizes."""

    def __init__(
        self,
        *,
        img_size: int = 224,
        patch_size: int = 14,
        in_chans: int = 3,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        ffn: FfnType = "mlp",
        qkv_bias: bool = True,
        proj_bias: bool = True,
        ffn_bias: bool = True,
        drop_path_rate: float = 0.0,
        drop_path_uniform: bool = False,
        drop_path_mode: DropPathMode = "official",
        init_values: float | None = None,
        num_register_tokens: int = 0,
        interpolate_antialias: bool = False,
        interpolate_offset: float = 0.1,
        attn_backend: AttnBackend = "auto",
    ) -> None:
        super().__init__()
        self._kwargs: dict[str, Any] = {k: v for k, v in locals().items() if k not in ("self", "__class__")}
        self.embed_dim = self.num_features = embed_dim
        self.patch_size = patch_size
        self.depth = self.n_blocks = depth
        self.num_heads = num_heads
        self.num_register_tokens = num_register_tokens
        self.interpolate_antialias = interpolate_antialias
        self.interpolate_offset = interpolate_offset
        self.activation_checkpointing = False
        self.chunked_blocks = False  # always flat; chunked keys are handled by the checkpoint adapters

        self.patch_embed = PatchEmbed(img_size, patch_size, in_chans, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + self.patch_embed.num_patches, embed_dim))
        self.register_tokens = (
            nn.Parameter(torch.zeros(1, num_register_tokens, embed_dim)) if num_register_tokens else None
        )
        self.mask_token = nn.Parameter(torch.zeros(1, embed_dim))
        block = partial(
            Block,
            embed_dim,
            num_heads,
            ffn=ffn,
            mlp_ratio=mlp_ratio,
            qkv_bias=qkv_bias,
            proj_bias=proj_bias,
            ffn_bias=ffn_bias,
            init_values=init_values,
            attn_backend=attn_backend,
        )
        self.blocks = nn.ModuleList(
            block(drop_path=rate, drop_path_batch_subset=uses_batch_subset(drop_path_mode, rate))
            for rate in drop_path_rates(drop_path_rate, depth, drop_path_uniform)
        )
        self.norm = nn.LayerNorm(embed_dim, eps=LAYER_NORM_EPS)
        self.head = nn.Identity()
        self.rasa_fold: Tensor | None
        self.register_buffer("rasa_fold", None)
        self.init_weights()

    def constructor_kwargs(self) -> dict[str, Any]:
        """The keyword arguments this model was built with (JSON-serialisable), for checkpoint metadata."""
        return dict(self._kwargs)

    @torch.no_grad()
    def init_weights(self) -> None:
        """Official init: pos_embed trunc-normal 0.02, CLS/registers normal 1e-6, mask_token 0, Linear
        weights trunc-normal 0.02 with zero bias (timm ``init_weights_vit_timm``)."""
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        if self.register_tokens is not None:
            nn.init.normal_(self.register_tokens, std=1e-6)
        nn.init.zeros_(self.mask_token)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def set_attention_backend(self, backend: AttnBackend) -> None:
        """Switch every block between "auto" (xFormers on CUDA if present, else SDPA), "sdpa" and "eager"."""
        for blk in self.blocks:
            assert isinstance(blk, Block)
            blk.attn.set_backend(backend)

    # ---------------------------------------------------------------- tokens
    def interpolate_pos_encoding(self, x: Tensor, h: int, w: int) -> Tensor:
        """Position embeddings [1, 1 + N, D] for tokens x [B, 1 + N, D] of an h×w (pixels) image."""
        num_patches = x.shape[1] - 1
        stored = self.pos_embed.shape[1] - 1
        if num_patches == stored and h == w:
            return self.pos_embed
        grid = (h // self.patch_size, w // self.patch_size)
        patch_pos = interpolate_patch_pos_embed(
            self.pos_embed[:, 1:], grid, offset=self.interpolate_offset, antialias=self.interpolate_antialias
        )
        return torch.cat([self.pos_embed[:, :1], patch_pos], dim=1).to(x.dtype)

    def prepare_tokens_with_masks(self, x: Tensor, masks: Tensor | None = None) -> Tensor:
        """Image [B, C, H, W] -> tokens [B, 1 + R + N, D]: patchify, mask, CLS, + pos, registers."""
        B, _, h, w = x.shape
        x = self.patch_embed(x)  # [B, N, D]
        if masks is not None:
            # Masked patches become mask_token before the position embedding is added.
            x = torch.where(masks.unsqueeze(-1), self.mask_token.to(x.dtype).unsqueeze(0), x)
        x = torch.cat([self.cls_token.expand(B, -1, -1), x], dim=1)  # [B, 1 + N, D]
        x = x + self.interpolate_pos_encoding(x, h, w)
        if self.register_tokens is not None:
            registers = self.register_tokens.expand(B, -1, -1)  # [B, R, D]
            x = torch.cat([x[:, :1], registers, x[:, 1:]], dim=1)  # [B, 1 + R + N, D]
        return x

    # ---------------------------------------------------------------- features
    def _output(self, x_prenorm: Tensor, masks: Tensor | None) -> BackboneOutput:
        x_norm = self.norm(x_prenorm)
        first_patch = 1 + self.num_register_tokens
        patch_tokens = x_norm[:, first_patch:]
        rasa = None if self.rasa_fold is None else patch_tokens @ self.rasa_fold.to(patch_tokens.dtype)
        return BackboneOutput(
            x_norm_clstoken=x_norm[:, 0],
            x_norm_regtokens=x_norm[:, 1:first_patch],
            x_norm_patchtokens=patch_tokens,
            x_prenorm=x_prenorm,
            masks=masks,
            patch_token_rasa=rasa,
        )

    def set_activation_checkpointing(self, enabled: bool) -> None:
        """Recompute each block's activations during backward instead of keeping them.

        Saves nearly all activation memory of the blocks for about one more forward pass of compute.
        The RNG state is replayed on recomputation, so drop path draws the same samples: training is
        unchanged.
        """
        self.activation_checkpointing = enabled

    def _forward_tensor(self, x: Tensor, masks: Tensor | None) -> BackboneOutput:
        tokens = self.prepare_tokens_with_masks(x, masks)
        recompute = self.activation_checkpointing and self.training and torch.is_grad_enabled()
        for blk in self.blocks:
            tokens = checkpoint(blk, tokens, use_reentrant=False) if recompute else blk(tokens)
        return self._output(tokens, masks)

    @overload
    def forward_features(self, x: Tensor, masks: Tensor | None = None) -> BackboneOutput: ...

    @overload
    def forward_features(
        self, x: list[Tensor], masks: Sequence[Tensor | None] | None = None
    ) -> list[BackboneOutput]: ...

    def forward_features(
        self, x: Tensor | list[Tensor], masks: Tensor | Sequence[Tensor | None] | None = None
    ) -> BackboneOutput | list[BackboneOutput]:
        """Normalised CLS / register / patch tokens of an image batch, or one output per tensor of a list
        (multi-crop; each crop size runs separately). ``masks`` [B, N] bool marks patches to replace."""
        if isinstance(x, Tensor):
            if masks is not None and not isinstance(masks, Tensor):
                raise TypeError("a tensor input takes a single [B, N] mask tensor")
            return self._forward_tensor(x, masks)
        if isinstance(masks, Tensor) or (masks is not None and len(masks) != len(x)):
            raise TypeError("a list input takes a list of masks (or None) of the same length")
        mask_list: Sequence[Tensor | None] = [None] * len(x) if masks is None else masks
        return [self._forward_tensor(xi, mi) for xi, mi in zip(x, mask_list, strict=True)]

    def forward(self, x: Tensor) -> Tensor:
        """The normalised CLS token [B, D] (``head`` is the identity)."""
        out: Tensor = self.head(self._forward_tensor(x, None).x_norm_clstoken)
        return out

    # ---------------------------------------------------------------- probes
    def _block_outputs(self, x: Tensor, n: int | Sequence[int]) -> list[Tensor]:
        """Raw token outputs [B, 1 + R + N, D] of the selected blocks, in block order."""
        total = len(self.blocks)
        take = set(range(total - n, total)) if isinstance(n, int) else set(n)
        if not take or min(take) < 0 or max(take) >= total:
            raise ValueError(f"block selection {n!r} is out of range for {total} blocks")
        tokens = self.prepare_tokens_with_masks(x)
        outputs = []
        for i, blk in enumerate(self.blocks):
            tokens = blk(tokens)
            if i in take:
                outputs.append(tokens)
            if len(outputs) == len(take):
                break  # later blocks cannot change the selected outputs
        return outputs

    @overload
    def get_intermediate_layers(
        self,
        x: Tensor,
        n: int | Sequence[int] = 1,
        reshape: bool = False,
        return_class_token: Literal[False] = False,
        norm: bool = True,
    ) -> tuple[Tensor, ...]: ...

    @overload
    def get_intermediate_layers(
        self,
        x: Tensor,
        n: int | Sequence[int],
        reshape: bool,
        return_class_token: Literal[True],
        norm: bool = True,
    ) -> tuple[tuple[Tensor, Tensor], ...]: ...

    @overload
    def get_intermediate_layers(
        self,
        x: Tensor,
        n: int | Sequence[int] = 1,
        reshape: bool = False,
        *,
        return_class_token: Literal[True],
        norm: bool = True,
    ) -> tuple[tuple[Tensor, Tensor], ...]: ...

    def get_intermediate_layers(
        self,
        x: Tensor,
        n: int | Sequence[int] = 1,
        reshape: bool = False,
        return_class_token: bool = False,
        norm: bool = True,
    ) -> tuple[Tensor, ...] | tuple[tuple[Tensor, Tensor], ...]:
        """DINOv2 ``get_intermediate_layers``: patch tokens of the last ``n`` blocks (int) or of the listed
        block indices, optionally normed, reshaped to [B, D, H/p, W/p] and paired with the CLS token."""
        outputs = self._block_outputs(x, n)
        if norm:
            outputs = [self.norm(out) for out in outputs]
        class_tokens = [out[:, 0] for out in outputs]  # [B, D]
        patches = [out[:, 1 + self.num_register_tokens :] for out in outputs]  # [B, N, D]
        if reshape:
            B, _, h, w = x.shape
            gh, gw = h // self.patch_size, w // self.patch_size
            # [B, N, D] -> [B, gh, gw, D] -> [B, D, gh, gw]
            patches = [p.reshape(B, gh, gw, -1).permute(0, 3, 1, 2).contiguous() for p in patches]
        if return_class_token:
            return tuple(zip(patches, class_tokens, strict=True))
        return tuple(patches)

    @torch.no_grad()
    def get_last_self_attention(self, x: Tensor) -> Tensor:
        """Softmax attention of the last block [B, heads, T, T], T = 1 + R + N (CLS row: ``[:, :, 0]``)."""
        tokens = self.prepare_tokens_with_masks(x)
        for blk in self.blocks[:-1]:
            tokens = blk(tokens)
        last = self.blocks[-1]
        assert isinstance(last, Block)
        return last.attn.attention_weights(last.norm1(tokens))

    # ---------------------------------------------------------------- RASA
    @torch.no_grad()
    def attach_rasa(self, head_or_matrix: RASAHead | Tensor | None) -> None:
        """Attach a RASA transform (a head, or its folded [D, D] matrix P); None detaches it.

        The transform is kept as the persistent buffer ``rasa_fold`` (float32), so it is saved with the
        backbone, and ``forward_features`` then returns ``patch_token_rasa = x_norm_patchtokens @ P``.
        """
        if head_or_matrix is None:
            self.rasa_fold = None
            return
        fold = head_or_matrix.folded_matrix() if isinstance(head_or_matrix, RASAHead) else head_or_matrix
        if tuple(fold.shape) != (self.embed_dim, self.embed_dim):
            raise ValueError(
                f"RASA matrix must be [{self.embed_dim}, {self.embed_dim}], got {list(fold.shape)}"
            )
        self.rasa_fold = fold.detach().to(device=self.pos_embed.device, dtype=torch.float32).clone()


__all__ = ["BackboneOutput", "VisionTransformer"]
