"""AdamW parameter groups: layer-wise lr decay, patch-embed multiplier, no decay on norms/biases.

Reference §6, 'Optimizer': lr multiplier = decay^(n_blocks + 1 - layer_id), patch_embed x
``patch_embed_lr_mult``, weight decay 0 for biases, norms and LayerScale gammas, and the
prototype layers (``last_layer`` in the name) on their own frozen-at-start schedule. Groups with
equal multipliers are fused, as in the official code.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

_BLOCK = re.compile(r"(?:^|\.)blocks\.(\d+)\.")
_EMBED_NAMES = ("patch_embed", "cls_token", "pos_embed", "mask_token", "register_tokens")


@dataclass(frozen=True)
class GroupKey:
    """The multipliers that define one optimizer group."""

    lr_mult: float
    wd_mult: float
    is_last_layer: bool


def layer_id(name: str, n_blocks: int) -> int:
    """0 for embeddings, i + 1 for block i, n_blocks + 1 for the final norm and everything after."""
    if any(part in name for part in _EMBED_NAMES):
        return 0
    match = _BLOCK.search(name)
    return int(match.group(1)) + 1 if match else n_blocks + 1


def group_key(name: str, *, n_blocks: int, layerwise_decay: float, patch_embed_lr_mult: float) -> GroupKey:
    """The lr/wd multipliers of one parameter, from its qualified name."""
    lr_mult = layerwise_decay ** (n_blocks + 1 - layer_id(name, n_blocks))
    if "patch_embed" in name:
        lr_mult *= patch_embed_lr_mult
    no_decay = name.endswith(".bias") or "norm" in name or "gamma" in name
    return GroupKey(lr_mult=lr_mult, wd_mult=0.0 if no_decay else 1.0, is_last_layer="last_layer" in name)


def build_param_groups(
    named: Iterable[tuple[str, nn.Parameter]],
    *,
    n_blocks: int,
    layerwise_decay: float,
    patch_embed_lr_mult: float,
) -> list[dict[str, Any]]:
    """Fuse trainable parameters into torch optimizer groups keyed by their multipliers."""
    fused: dict[GroupKey, list[nn.Parameter]] = {}
    for name, param in named:
        if not param.requires_grad:
            continue
        key = group_key(
            name, n_blocks=n_blocks, layerwise_decay=layerwise_decay, patch_embed_lr_mult=patch_embed_lr_mult
        )
        fused.setdefault(key, []).append(param)
    return [
        {
            "params": params,
            "lr_mult": key.lr_mult,
            "wd_mult": key.wd_mult,
            "is_last_layer": key.is_last_layer,
        }
        for key, params in sorted(
            fused.items(), key=lambda kv: (kv[0].is_last_layer, kv[0].lr_mult, kv[0].wd_mult)
        )
    ]


def apply_step_values(optimizer: torch.optim.Optimizer, lr: float, last_layer_lr: float, wd: float) -> None:
    """Write this step's lr and weight decay into every group, scaled by the group's multipliers."""
    for group in optimizer.param_groups:
        base = last_layer_lr if group["is_last_layer"] else lr
        group["lr"] = base * group["lr_mult"]
        group["weight_decay"] = wd * group["wd_mult"]
