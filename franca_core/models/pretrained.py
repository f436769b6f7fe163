"""Checkpoint adapters for DINOv2/Franca backbones (reference §1.2, §2, §10).

Reads the official Franca release/training layout (``{"teacher": {"backbone.blocks.<c>.<i>...": ...}}``,
chunked blocks, ``dino_head.*``/``ibot_head.*``/``rasa_head.*`` extras), the DINOv2 hub layout (flat
``blocks.<i>.*``, no wrapper) and our own safetensors files (with a JSON metadata block), and writes all
three. Loading follows the recipe of reference §10.3: unwrap, strip ``module.``/``backbone.``, drop head
keys, un-chunk block keys, infer the architecture from tensor shapes, build at img_size = grid · patch and
load strictly. Files are read with ``torch.load(weights_only=True)`` or safetensors; nothing is downloaded.
"""

from __future__ import annotations

import json
import os
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor

from franca_core.models.factory import arch_name
from franca_core.models.layers.attention import AttnBackend
from franca_core.models.layers.ffn import FfnType
from franca_core.models.layers.pos_embed import resize_pos_embed, square_grid_side
from franca_core.models.vision_transformer import VisionTransformer
from franca_core.rasa.head import RASAHead

PathLike = str | os.PathLike[str]
SAFETENSORS_FORMAT = "franca_core.vit"
_LEADING_PREFIXES = ("module.", "backbone.", "_orig_mod.")
_DROPPED_HEADS = ("dino_head.", "ibot_head.")
_RASA_PREFIX = "rasa_head."
_CHUNKED_BLOCK = re.compile(r"^blocks\.(\d+)\.(\d+)\.(.+)$")
_FLAT_BLOCK = re.compile(r"^blocks\.(\d+)\.(.+)$")
_MAX_LISTED = 20


class CheckpointError(ValueError):
    """A checkpoint whose keys or shapes do not fit the backbone it is loaded into."""


# ------------------------------------------------------------------------------------------- reading
def _local_file(path: PathLike) -> Path:
    text = os.fspath(path)
    if "://" in text:
        raise CheckpointError(
            f"{text!r} looks like a URL; weights are never downloaded, pass a local file path"
        )
    file = Path(text).expanduser()
    if not file.is_file():
        raise FileNotFoundError(f"checkpoint file not found: {file}")
    return file


def _torch_load(file: Path) -> Any:
    """``torch.load(weights_only=True)``, memory-mapped when the file is in the zip format (fast, lazy)."""
    if zipfile.is_zipfile(file):
        return torch.load(file, map_location="cpu", weights_only=True, mmap=True)
    return torch.load(file, map_location="cpu", weights_only=True)


def read_checkpoint(path: PathLike) -> tuple[dict[str, Any], dict[str, str]]:
    """(contents, safetensors metadata) of a local ``.safetensors`` or torch file (``weights_only=True``).

    Zip-format torch files are memory-mapped: copy (or load into a model) the tensors you keep.
    """
    file = _local_file(path)
    if file.suffix == ".safetensors":
        with safe_open(str(file), framework="pt") as handle:
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
            return tensors, dict(handle.metadata() or {})
    obj = _torch_load(file)
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{file} holds a {type(obj).__name__}, not a state dict")
    return dict(obj), {}


def unwrap_state_dict(obj: Mapping[str, Any]) -> dict[str, Tensor]:
    """Take ``obj["teacher"]``, else ``obj["model"]``, else ``obj``; keep only tensor entries."""
    for wrapper in ("teacher", "model"):
        inner = obj.get(wrapper)
        if isinstance(inner, Mapping):
            obj = inner
            break
    return {key: value for key, value in obj.items() if isinstance(value, Tensor)}


# ------------------------------------------------------------------------------------------- key maps
def _strip_leading(key: str, prefixes: tuple[str, ...]) -> str:
    while key.startswith(prefixes):
        key = next(key[len(p) :] for p in prefixes if key.startswith(p))
    return key


def unchunk_block_keys(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """``blocks.<c>.<i>.rest`` -> ``blocks.<i>.rest`` (the second integer is the global block index)."""
    out: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        match = _CHUNKED_BLOCK.match(key)
        out[f"blocks.{match.group(2)}.{match.group(3)}" if match else key] = value
    return out


def chunk_block_keys(state_dict: Mapping[str, Tensor], depth: int, n_chunks: int = 4) -> dict[str, Tensor]:
    """``blocks.<i>.rest`` -> ``blocks.<c>.<i>.rest`` with c = i // (depth // n_chunks), as in BlockChunk."""
    chunk_size = max(1, depth // n_chunks)
    out: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        match = _FLAT_BLOCK.match(key)
        if match:
            index = int(match.group(1))
            key = f"blocks.{index // chunk_size}.{index}.{match.group(2)}"
        out[key] = value
    return out


def split_state_dict(state_dict: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """(backbone keys, flat blocks; RASA head keys, ``rasa_head.`` stripped); DINO/iBOT heads dropped."""
    backbone: dict[str, Tensor] = {}
    rasa: dict[str, Tensor] = {}
    for raw_key, value in state_dict.items():
        key = _strip_leading(raw_key, _LEADING_PREFIXES)
        if key.startswith(_RASA_PREFIX):
            rasa[key[len(_RASA_PREFIX) :]] = value
        elif not key.startswith(_DROPPED_HEADS):
            backbone[key] = value
    return unchunk_block_keys(backbone), rasa


# ------------------------------------------------------------------------------------------- inference
@dataclass(frozen=True)
class InferredArch:
    """Backbone structure read from tensor shapes (heads assume head_dim 64 unless given)."""

    embed_dim: int
    depth: int
    num_heads: int
    patch_size: int
    in_chans: int
    grid_size: int
    ffn: FfnType
    mlp_ratio: float
    num_register_tokens: int
    layerscale: bool
    qkv_bias: bool
    proj_bias: bool
    ffn_bias: bool

    @property
    def img_size(self) -> int:
        return self.grid_size * self.patch_size


def _require(state_dict: Mapping[str, Tensor], *keys: str) -> None:
    missing = [key for key in keys if key not in state_dict]
    if missing:
        raise CheckpointError(f"not a ViT backbone state dict: missing keys {missing}")


def _infer_depth(state_dict: Mapping[str, Tensor]) -> int:
    indices = {int(m.group(1)) for key in state_dict if (m := _FLAT_BLOCK.match(key))}
    if not indices or indices != set(range(len(indices))):
        raise CheckpointError(f"block indices must run 0..depth-1, found {sorted(indices)}")
    return len(indices)


def infer_architecture(state_dict: Mapping[str, Tensor], num_heads: int | None = None) -> InferredArch:
    """Infer width, depth, FFN type, registers, grid and patch size from a flat backbone state dict."""
    _require(state_dict, "cls_token", "pos_embed", "patch_embed.proj.weight")
    depth = _infer_depth(state_dict)
    dim = state_dict["cls_token"].shape[-1]
    proj = state_dict["patch_embed.proj.weight"]  # [D, C, p, p]
    swiglu = "blocks.0.mlp.w12.weight" in state_dict
    _require(state_dict, "blocks.0.mlp.w3.weight" if swiglu else "blocks.0.mlp.fc1.weight")
    ratio = 4.0 if swiglu else state_dict["blocks.0.mlp.fc1.weight"].shape[0] / dim
    registers = state_dict.get("register_tokens")
    prefix = "blocks.0."
    return InferredArch(
        embed_dim=dim,
        depth=depth,
        num_heads=num_heads if num_heads is not None else max(1, dim // 64),
        patch_size=proj.shape[-1],
        in_chans=proj.shape[1],
        grid_size=square_grid_side(state_dict["pos_embed"].shape[1] - 1),
        ffn="swiglu" if swiglu else "mlp",
        mlp_ratio=ratio,
        num_register_tokens=0 if registers is None else registers.shape[1],
        layerscale=f"{prefix}ls1.gamma" in state_dict,
        qkv_bias=f"{prefix}attn.qkv.bias" in state_dict,
        proj_bias=f"{prefix}attn.proj.bias" in state_dict,
        ffn_bias=f"{prefix}mlp.{'w3' if swiglu else 'fc2'}.bias" in state_dict,
    )


# ------------------------------------------------------------------------------------------- loading
def _listed(items: list[str]) -> str:
    shown = ", ".join(items[:_MAX_LISTED])
    return shown + (f", ... and {len(items) - _MAX_LISTED} more" if len(items) > _MAX_LISTED else "")


def check_state_dict(model: torch.nn.Module, state_dict: Mapping[str, Tensor]) -> None:
    """Raise ``CheckpointError`` naming missing / unexpected keys and shape mismatches (expected vs got)."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    mismatched = [
        f"{key}: expected {list(expected[key].shape)}, got {list(state_dict[key].shape)}"
        for key in sorted(set(expected) & set(state_dict))
        if expected[key].shape != state_dict[key].shape
    ]
    problems = []
    if missing:
        problems.append(f"missing keys ({len(missing)}): {_listed(missing)}")
    if unexpected:
        problems.append(f"unexpected keys ({len(unexpected)}): {_listed(unexpected)}")
    if mismatched:
        problems.append(f"shape mismatches ({len(mismatched)}): {_listed(mismatched)}")
    if problems:
        raise CheckpointError("checkpoint does not fit the backbone: " + "; ".join(problems))


def load_into(model: VisionTransformer, state_dict: Mapping[str, Tensor]) -> None:
    """Strictly load a flat backbone state dict (plus optional ``rasa_fold``) into ``model``.

    Works for a model built on the meta device: fresh float32 copies of the tensors are then assigned.
    """
    fold = state_dict.get("rasa_fold")
    if fold is not None:
        model.attach_rasa(fold)
    check_state_dict(model, state_dict)
    on_meta = model.pos_embed.is_meta
    # Assigned tensors are copied so the model never aliases a memory-mapped file (which may be rewritten).
    ready = {
        k: v.to(torch.float32 if v.is_floating_point() else v.dtype, copy=on_meta)
        for k, v in state_dict.items()
    }
    model.load_state_dict(ready, strict=True, assign=on_meta)


def backbone_from_state_dict(
    state_dict: Mapping[str, Tensor],
    *,
    img_size: int | None = None,
    num_heads: int | None = None,
    interpolate_antialias: bool = False,
    interpolate_offset: float = 0.1,
    attn_backend: AttnBackend = "auto",
) -> VisionTransformer:
    """Build and load a backbone from a flat state dict; ``pos_embed`` is resized if ``img_size`` differs."""
    arch = infer_architecture(state_dict, num_heads)
    state = dict(state_dict)
    size = arch.img_size if img_size is None else img_size
    if size != arch.img_size:
        state["pos_embed"] = resize_pos_embed(state["pos_embed"], size // arch.patch_size)
    with torch.device("meta"):
        model = VisionTransformer(
            img_size=size,
            patch_size=arch.patch_size,
            in_chans=arch.in_chans,
            embed_dim=arch.embed_dim,
            depth=arch.depth,
            num_heads=arch.num_heads,
            mlp_ratio=arch.mlp_ratio,
            ffn=arch.ffn,
            qkv_bias=arch.qkv_bias,
            proj_bias=arch.proj_bias,
            ffn_bias=arch.ffn_bias,
            init_values=1.0 if arch.layerscale else None,
            num_register_tokens=arch.num_register_tokens,
            interpolate_antialias=interpolate_antialias,
            interpolate_offset=interpolate_offset,
            attn_backend=attn_backend,
        )
    load_into(model, state)
    return model.eval()


def _from_our_safetensors(
    tensors: dict[str, Tensor], metadata: dict[str, str], img_size: int | None, attn_backend: AttnBackend
) -> VisionTransformer:
    kwargs = json.loads(metadata["config"])
    if img_size is not None and img_size != kwargs["img_size"]:
        tensors = {
            **tensors,
            "pos_embed": resize_pos_embed(tensors["pos_embed"], img_size // kwargs["patch_size"]),
        }
        kwargs["img_size"] = img_size
    with torch.device("meta"):
        model = VisionTransformer(**kwargs, attn_backend=attn_backend)
    load_into(model, tensors)
    return model.eval()


def load_backbone(
    path: PathLike,
    *,
    img_size: int | None = None,
    num_heads: int | None = None,
    attn_backend: AttnBackend = "auto",
) -> VisionTransformer:
    """Load a backbone from our safetensors, an official Franca ``.pth`` or a DINOv2 ``.pth`` (eval mode).

    Official files assume head_dim 64 unless ``num_heads`` is given; our safetensors carry their config.
    ``img_size`` different from the stored grid resizes ``pos_embed`` (bicubic, antialias).
    """
    contents, metadata = read_checkpoint(path)
    if metadata.get("format") == SAFETENSORS_FORMAT:
        return _from_our_safetensors(contents, metadata, img_size, attn_backend)
    backbone, _ = split_state_dict(unwrap_state_dict(contents))
    return backbone_from_state_dict(
        backbone, img_size=img_size, num_heads=num_heads, attn_backend=attn_backend
    )


def load_rasa_head(source: PathLike | Mapping[str, Tensor]) -> RASAHead:
    """A RASA head from an official file (8 or 9 ``pre_pos_layers``, count inferred) or a state dict.

    Accepts the bare release layout and files that carry the head under ``rasa_head.`` (HRFT teacher
    checkpoints, possibly wrapped and prefixed with ``module.``/``backbone.``); other keys are then ignored.
    """
    raw = unwrap_state_dict(read_checkpoint(source)[0]) if isinstance(source, str | os.PathLike) else source
    state = {_strip_leading(key, _LEADING_PREFIXES): value for key, value in raw.items()}
    if any(key.startswith(_RASA_PREFIX) for key in state):
        state = {key[len(_RASA_PREFIX) :]: v for key, v in state.items() if key.startswith(_RASA_PREFIX)}
    try:
        return RASAHead.from_state_dict(state)
    except (KeyError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"not a RASA head state dict: {err}") from err


# ------------------------------------------------------------------------------------------- writing
def _backbone_tensors(model: VisionTransformer) -> dict[str, Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items() if k != "rasa_fold"}


def to_dinov2_state_dict(model: VisionTransformer) -> dict[str, Tensor]:
    """The DINOv2 hub layout: a flat, unwrapped state dict with ``blocks.<i>.*`` keys."""
    return _backbone_tensors(model)


def to_franca_checkpoint(model: VisionTransformer, n_chunks: int = 4) -> dict[str, dict[str, Tensor]]:
    """The official Franca layout: ``{"teacher": {"backbone.blocks.<c>.<i>.*": ...}}`` with 4 chunks."""
    chunked = chunk_block_keys(_backbone_tensors(model), model.depth, n_chunks)
    return {"teacher": {f"backbone.{key}": value for key, value in chunked.items()}}


def save_franca_checkpoint(model: VisionTransformer, path: PathLike, n_chunks: int = 4) -> None:
    torch.save(to_franca_checkpoint(model, n_chunks), path)


def save_dinov2_checkpoint(model: VisionTransformer, path: PathLike) -> None:
    torch.save(to_dinov2_state_dict(model), path)


def save_safetensors(model: VisionTransformer, path: PathLike) -> None:
    """Our format: flat backbone tensors (+ ``rasa_fold`` if attached) and JSON metadata for rebuilding."""
    config = {k: v for k, v in model.constructor_kwargs().items() if k != "attn_backend"}
    metadata = {
        "format": SAFETENSORS_FORMAT,
        "format_version": "1",
        "arch": arch_name(model.embed_dim, model.depth) or "custom",
        "img_size": str(config["img_size"]),
        "ffn": str(config["ffn"]),
        "num_register_tokens": str(model.num_register_tokens),
        "config": json.dumps(config, sort_keys=True),
    }
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, os.fspath(path), metadata=metadata)


__all__ = [
    "SAFETENSORS_FORMAT",
    "CheckpointError",
    "InferredArch",
    "backbone_from_state_dict",
    "check_state_dict",
    "chunk_block_keys",
    "infer_architecture",
    "load_backbone",
    "load_into",
    "load_rasa_head",
    "read_checkpoint",
    "save_dinov2_checkpoint",
    "save_franca_checkpoint",
    "save_safetensors",
    "split_state_dict",
    "to_dinov2_state_dict",
    "to_franca_checkpoint",
    "unchunk_block_keys",
    "unwrap_state_dict",
]
