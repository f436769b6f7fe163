"""Backbone weights in and out of training: export the teacher, start a stage from earlier weights.

Export (reference §6 'Teacher export'): the teacher backbone is what Franca releases. It is written
twice: our safetensors (flat keys plus the constructor config, ``models.pretrained.save_safetensors``)
and the official layout ``{"teacher": {"backbone.blocks.<c>.<i>...": ...}}`` with 4 block chunks that
the official hub loads (reference §1.2).

Start from weights (``init_from``, used by high-resolution finetuning, reference §6 'Pretrained
init' and 'HRFT'): only the backbone is taken, from the *teacher* of a training checkpoint (or any
backbone file ``load_backbone`` reads), into both the student and the teacher; the heads start fresh.
``pos_embed`` is resized bicubically to the new global crop size, as ``modify_ckpt_highres.py`` does.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from franca_core.config.pretrain import PretrainConfig
from franca_core.models.layers.pos_embed import resize_pos_embed, square_grid_side
from franca_core.models.pretrained import load_backbone, save_franca_checkpoint, save_safetensors
from franca_core.models.vision_transformer import VisionTransformer
from franca_core.train.build import build_backbone_from_config
from franca_core.train.checkpoint import latest_good_checkpoint, load_checkpoint

_PREFIX = "backbone."


@dataclass(frozen=True)
class ExportedBackbone:
    """Files of one exported teacher backbone."""

    safetensors: Path
    franca_pth: Path


def backbone_state(network_state: dict[str, Tensor]) -> dict[str, Tensor]:
    """The ``backbone.*`` entries of an ``SSLNetwork`` state dict, prefix removed."""
    return {k[len(_PREFIX) :]: v for k, v in network_state.items() if k.startswith(_PREFIX)}


def _replace_atomically(tmp: Path, final: Path) -> Path:
    tmp.replace(final)
    return final


def export_teacher(cfg: PretrainConfig, teacher_state: dict[str, Tensor], out_dir: Path) -> ExportedBackbone:
    """Write the teacher backbone of ``teacher_state`` as safetensors and official ``.pth``."""
    model = build_backbone_from_config(cfg, student=False)
    model.load_state_dict(backbone_state(teacher_state))
    out_dir.mkdir(parents=True, exist_ok=True)
    chunks = 4 if model.depth % 4 == 0 else 1
    pid = os.getpid()
    tmp_st, tmp_pth = out_dir / f".teacher.{pid}.safetensors", out_dir / f".teacher.{pid}.pth"
    save_safetensors(model, tmp_st)
    save_franca_checkpoint(model, tmp_pth, n_chunks=chunks)
    return ExportedBackbone(
        safetensors=_replace_atomically(tmp_st, out_dir / "teacher_backbone.safetensors"),
        franca_pth=_replace_atomically(tmp_pth, out_dir / "teacher_franca.pth"),
    )


def _checkpoint_file(source: Path) -> Path:
    """A run directory means its newest good checkpoint."""
    if source.is_dir():
        found = latest_good_checkpoint(source)
        if found is None:
            raise FileNotFoundError(f"no good checkpoint in run directory {source}")
        return found
    if not source.is_file():
        raise FileNotFoundError(f"init_from: no such file or run directory: {source}")
    return source


def initial_backbone_state(source: Path, img_size: int, patch_size: int) -> dict[str, Tensor]:
    """Backbone weights from a run dir, training checkpoint or backbone file, at ``img_size``."""
    file = _checkpoint_file(source)
    if file.suffix == ".pt" and file.name.startswith("model_"):
        state = backbone_state(load_checkpoint(file).teacher)
    else:
        model: VisionTransformer = load_backbone(file)
        state = {k: v for k, v in model.state_dict().items() if k != "rasa_fold"}
    grid = img_size // patch_size
    if square_grid_side(state["pos_embed"].shape[1] - 1) != grid:
        state["pos_embed"] = resize_pos_embed(state["pos_embed"], grid)
    return state


@torch.no_grad()
def load_initial_backbone(backbones: list[VisionTransformer], state: dict[str, Tensor]) -> None:
    """Copy ``state`` into every backbone (student and teacher); shapes must match the config."""
    for backbone in backbones:
        try:
            backbone.load_state_dict(state)
        except RuntimeError as err:
            raise ValueError(f"init_from weights do not fit the configured backbone: {err}") from err
