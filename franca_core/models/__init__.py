"""The DINOv2/Franca ViT backbone, its named sizes and checkpoint adapters (reference §1, §10)."""

from franca_core.models.factory import ARCHS, ArchSpec, build_backbone
from franca_core.models.pretrained import (
    CheckpointError,
    load_backbone,
    load_rasa_head,
    save_franca_checkpoint,
    save_safetensors,
)
from franca_core.models.vision_transformer import BackboneOutput, VisionTransformer

__all__ = [
    "ARCHS",
    "ArchSpec",
    "BackboneOutput",
    "CheckpointError",
    "VisionTransformer",
    "build_backbone",
    "load_backbone",
    "load_rasa_head",
    "save_franca_checkpoint",
    "save_safetensors",
]
