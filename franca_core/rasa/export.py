"""Saving a trained RASA transform (Franca §3.3; reference §2.4, §7.3).

Two forms are written:

- the head in the official release layout (``pre_pos_layers.<k>.weight`` [2, D] for k < n and
  ``pos_pred.weight`` [2, D], no wrapper, no biases) as a ``torch.save`` ``.pth`` that the official hub and
  ``franca_core.models.load_rasa_head`` read, plus the same tensors as ``.safetensors``;
- the backbone with the folded D×D map attached (buffer ``rasa_fold``), in our safetensors format, so that
  ``load_backbone(path).forward_features(x).patch_token_rasa`` needs no extra module.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from safetensors.torch import save_file

from franca_core.models.pretrained import load_backbone, load_rasa_head, save_safetensors
from franca_core.models.vision_transformer import VisionTransformer
from franca_core.rasa.head import RASAHead

HEAD_FORMAT = "franca_core.rasa_head"


def save_head(head: RASAHead, stem: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Write ``<stem>.pth`` (official layout) and ``<stem>.safetensors``; returns both paths."""
    state = head.official_state_dict()
    pth, st = Path(f"{os.fspath(stem)}.pth"), Path(f"{os.fspath(stem)}.safetensors")
    pth.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, pth)
    metadata = {"format": HEAD_FORMAT, "n_pre_layers": str(head.n_pre_layers), "dim": str(head.dim)}
    save_file(state, os.fspath(st), metadata=metadata)
    return pth, st


def load_head(path: str | os.PathLike[str]) -> RASAHead:
    """A head from an official ``_rasa.pth`` (8 or 9 pre layers), one of ours, or its safetensors twin."""
    return load_rasa_head(path)


def export_folded_backbone(backbone: VisionTransformer, head: RASAHead, path: str | os.PathLike[str]) -> Path:
    """Attach the head's folded map to ``backbone`` (in place; it replaces any earlier one) and save it."""
    backbone.attach_rasa(head)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_safetensors(backbone, out)
    return out


def load_folded_backbone(path: str | os.PathLike[str]) -> VisionTransformer:
    """A backbone written by ``export_folded_backbone``; ``forward_features`` returns ``patch_token_rasa``."""
    model = load_backbone(path)
    if model.rasa_fold is None:
        raise ValueError(f"{path} holds no folded RASA map (rasa_fold)")
    return model


__all__ = ["HEAD_FORMAT", "export_folded_backbone", "load_folded_backbone", "load_head", "save_head"]
