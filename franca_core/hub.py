"""Named DINOv2/Franca backbones from local weight files (reference §2, §10.1; Franca README models).

``load("franca_vitb14", weights="franca_vitb14_In21K.pth", rasa_weights="franca_vitb14_In21K_rasa.pth")``
builds the backbone, loads the file and attaches the folded RASA transform. The structure that the
tensors determine (grid size 224/518, FFN type, registers) is read from the file; the name fixes width,
depth and heads (a file of another size is refused) and the runtime interpolation rule. ``weights=None``
gives a randomly initialised model. Nothing is ever downloaded: a URL or a missing path raises.
"""

from __future__ import annotations

from dataclasses import dataclass

from franca_core.models.factory import ARCHS, build_backbone
from franca_core.models.layers.attention import AttnBackend
from franca_core.models.layers.ffn import FfnType
from franca_core.models.pretrained import (
    CheckpointError,
    PathLike,
    backbone_from_state_dict,
    infer_architecture,
    load_rasa_head,
    read_checkpoint,
    split_state_dict,
    unwrap_state_dict,
)
from franca_core.models.vision_transformer import VisionTransformer


@dataclass(frozen=True)
class HubModel:
    """How the official hub builds one named model (used for random init and runtime interpolation)."""

    arch: str
    ffn: FfnType
    img_size: int
    layerscale_init: float
    num_register_tokens: int = 0
    interpolate_antialias: bool = False
    interpolate_offset: float = 0.1


def _dinov2(arch: str, ffn: FfnType, registers: bool) -> HubModel:
    # DINOv2 hub: img_size 518, init_values 1.0; the _reg models use antialias and an explicit size.
    if registers:
        return HubModel(
            arch, ffn, 518, 1.0, num_register_tokens=4, interpolate_antialias=True, interpolate_offset=0.0
        )
    return HubModel(arch, ffn, 518, 1.0)


HUB_MODELS: dict[str, HubModel] = {
    "franca_vitb14": HubModel("vit_base", "swiglu", 518, 1e-5),
    "franca_vitl14": HubModel("vit_large", "swiglu", 224, 1e-5),
    "franca_vitg14": HubModel("vit_giant2", "swiglu", 224, 1e-5),
}
for _size, _arch, _ffn in [
    ("s", "vit_small", "mlp"),
    ("b", "vit_base", "mlp"),
    ("l", "vit_large", "mlp"),
    ("g", "vit_giant2", "swiglu"),
]:
    HUB_MODELS[f"dinov2_vit{_size}14"] = _dinov2(_arch, _ffn, registers=False)  # type: ignore[arg-type]
    HUB_MODELS[f"dinov2_vit{_size}14_reg"] = _dinov2(_arch, _ffn, registers=True)  # type: ignore[arg-type]


def list_models() -> list[str]:
    return sorted(HUB_MODELS)


def _random_model(entry: HubModel, img_size: int | None, attn_backend: AttnBackend) -> VisionTransformer:
    return build_backbone(
        entry.arch,
        img_size=entry.img_size if img_size is None else img_size,
        ffn=entry.ffn,
        layerscale_init=entry.layerscale_init,
        num_register_tokens=entry.num_register_tokens,
        interpolate_antialias=entry.interpolate_antialias,
        interpolate_offset=entry.interpolate_offset,
        attn_backend=attn_backend,
    ).eval()


def _pretrained_model(
    name: str, entry: HubModel, weights: PathLike, img_size: int | None, attn_backend: AttnBackend
) -> VisionTransformer:
    contents, _ = read_checkpoint(weights)
    backbone, _ = split_state_dict(unwrap_state_dict(contents))
    spec = ARCHS[entry.arch]
    found = infer_architecture(backbone, spec.num_heads)
    if (found.embed_dim, found.depth) != (spec.embed_dim, spec.depth):
        raise CheckpointError(
            f"{weights} holds a ViT with embed_dim {found.embed_dim} and depth {found.depth}, but {name!r} "
            f"({entry.arch}) needs embed_dim {spec.embed_dim} and depth {spec.depth}"
        )
    return backbone_from_state_dict(
        backbone,
        img_size=img_size,
        num_heads=spec.num_heads,
        interpolate_antialias=entry.interpolate_antialias,
        interpolate_offset=entry.interpolate_offset,
        attn_backend=attn_backend,
    )


def load(
    name: str,
    weights: PathLike | None = None,
    rasa_weights: PathLike | None = None,
    img_size: int | None = None,
    *,
    attn_backend: AttnBackend = "auto",
) -> VisionTransformer:
    """A named backbone in eval mode, from a local weight file or randomly initialised (``weights=None``).

    ``img_size`` different from the file's grid resizes ``pos_embed`` once at load (bicubic, antialias);
    ``rasa_weights`` (official RASA file, 8 or 9 planes) makes ``forward_features`` return
    ``patch_token_rasa``.
    """
    if name not in HUB_MODELS:
        raise KeyError(f"unknown hub model {name!r}; available: {list_models()}")
    entry = HUB_MODELS[name]
    head = None if rasa_weights is None else load_rasa_head(rasa_weights)  # cheap, so it fails first
    if weights is None:
        model = _random_model(entry, img_size, attn_backend)
    else:
        model = _pretrained_model(name, entry, weights, img_size, attn_backend)
    if head is not None:
        if head.dim != model.embed_dim:
            raise CheckpointError(f"RASA head width {head.dim} != backbone width {model.embed_dim}")
        model.attach_rasa(head)
    return model


__all__ = ["HUB_MODELS", "HubModel", "build_backbone", "list_models", "load"]
