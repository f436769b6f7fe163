"""The backbone interface the evaluators rely on, and loading a backbone by hub name or file.

The interface is the public DINOv2 / Franca ViT API (``dinov2/models/vision_transformer.py``; Franca keeps
it): ``forward_features(x)`` returning ``x_norm_clstoken`` [B, D] and ``x_norm_patchtokens`` [B, N, D]
(plus ``patch_token_rasa`` after RASA), ``get_intermediate_layers(x, n, reshape, return_class_token,
norm)``, and the attributes ``embed_dim`` and ``patch_size``. Anything with that shape works: our
``franca_core.models`` ViT, the official code, or a test double.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor, nn


@runtime_checkable
class Backbone(Protocol):
    """A frozen ViT backbone with the DINOv2 feature API."""

    embed_dim: int
    patch_size: int

    def forward_features(self, x: Tensor) -> Any:
        """Output indexable by ``"x_norm_clstoken"`` and ``"x_norm_patchtokens"``."""
        ...

    def get_intermediate_layers(
        self,
        x: Tensor,
        n: int = 1,
        reshape: bool = False,
        return_class_token: bool = False,
        norm: bool = True,
    ) -> tuple[Any, ...]:
        """Per block (oldest first): patch tokens, or (patch tokens, class token) with the class token."""
        ...


def output_field(out: Any, key: str) -> Tensor | None:
    """``out[key]`` for a dict or our output object; None when the field is absent or None."""
    if isinstance(out, Mapping):
        value = out.get(key)
    else:
        try:
            value = out[key]
        except (KeyError, AttributeError, TypeError):
            value = getattr(out, key, None)
    return value if isinstance(value, Tensor) else None


def patch_size_of(model: Backbone) -> int:
    """The backbone's patch side (DINOv2 stores an int; tolerate a (p, p) tuple)."""
    p = model.patch_size
    return int(p[0]) if isinstance(p, tuple | list) else int(p)


@dataclass(frozen=True)
class LoadedBackbone:
    """A backbone in eval mode and a stable identity used to key the feature cache."""

    model: nn.Module
    identity: str
    description: str


def _file_identity(path: Path) -> str:
    st = path.stat()
    return hashlib.sha256(f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:16]


def parameters_identity(model: nn.Module) -> str:
    """A hash of every parameter and buffer: the cache identity of an in-memory model."""
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def parse_backbone_spec(spec: str, arch: str | None) -> tuple[str | None, Path | None]:
    """``NAME`` (random init), ``NAME=FILE``, or ``FILE`` (``arch`` optional) -> (hub name, weights file)."""
    if "=" in spec:
        name, file = spec.split("=", 1)
        return name, Path(file)
    if Path(spec).is_file():
        return arch, Path(spec)
    if spec.endswith((".pth", ".pt", ".safetensors")):
        raise FileNotFoundError(f"backbone file {spec} does not exist")
    return spec, None


def _build(
    name: str | None, weights: Path | None, rasa: Path | None, img_size: int | None, num_heads: int | None
) -> nn.Module:
    from franca_core import hub

    if name is not None:
        return hub.load(name, weights=weights, rasa_weights=rasa, img_size=img_size)
    # A bare file: the checkpoint adapters infer the architecture (our safetensors carry their config).
    from franca_core.models.pretrained import load_backbone as load_file
    from franca_core.models.pretrained import load_rasa_head

    assert weights is not None
    model = load_file(weights, img_size=img_size, num_heads=num_heads)
    if rasa is not None:
        model.attach_rasa(load_rasa_head(rasa))
    return model


def load_backbone(
    spec: str,
    arch: str | None = None,
    rasa_weights: str | None = None,
    img_size: int | None = None,
    device: str | torch.device = "cpu",
    num_heads: int | None = None,
) -> LoadedBackbone:
    """A backbone by hub name (random init), ``NAME=FILE`` or a checkpoint file, in eval mode.

    Files go through ``franca_core.hub.load`` when a name is known, else through
    ``franca_core.models.pretrained.load_backbone``, which infers the architecture from the tensors;
    official-layout files carry no head count (head_dim 64 is assumed): pass ``num_heads`` for custom sizes.
    """
    name, weights = parse_backbone_spec(spec, arch)
    rasa = Path(rasa_weights) if rasa_weights else None
    if num_heads is not None and name is not None:
        raise ValueError("num_heads applies to bare checkpoint files; a hub name fixes the head count")
    model = _build(name, weights, rasa, img_size, num_heads).to(device).eval()
    if weights is None:
        identity = parameters_identity(model)  # random init: its values are the identity
    else:
        identity = _file_identity(weights) + (_file_identity(rasa) if rasa else "")
    label = name or (weights.name if weights else "?")
    desc = label + (f" from {weights}" if weights else " (random init)") + (f" + RASA {rasa}" if rasa else "")
    return LoadedBackbone(model=model, identity=f"{label}:{identity}:img{img_size}", description=desc)
