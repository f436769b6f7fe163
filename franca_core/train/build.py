"""Turn a typed ``PretrainConfig`` into modules and data objects built from plain arguments.

This is the only place that reads configs for model construction: the nn.Modules themselves take
plain typed arguments (no config object is threaded into them).
"""

from __future__ import annotations

from franca_core.config.pretrain import PretrainConfig
from franca_core.data.augment import MultiCropAugmentation
from franca_core.heads import ProjectionHead, build_head
from franca_core.masking import MASK_GENERATORS, MaskGenerator
from franca_core.models.factory import build_backbone
from franca_core.models.vision_transformer import VisionTransformer
from franca_core.train.objective import FrancaObjective, SSLNetwork


def build_backbone_from_config(cfg: PretrainConfig, *, student: bool) -> VisionTransformer:
    """The ViT of one side; the teacher is built without stochastic depth (reference §1.1)."""
    b = cfg.backbone
    custom = b.arch == "custom"
    return build_backbone(
        "vit_small" if custom else b.arch,
        img_size=cfg.crops.global_size,
        patch_size=b.patch_size,
        ffn=b.ffn,
        drop_path_rate=b.drop_path_rate if student else 0.0,
        drop_path_mode=b.drop_path_mode,
        layerscale_init=b.layerscale_init,
        num_register_tokens=b.num_register_tokens,
        embed_dim=b.embed_dim if custom else None,
        depth=b.depth if custom else None,
        num_heads=b.num_heads if custom else None,
        attn_backend=b.attention,
    )


def build_network(cfg: PretrainConfig, *, student: bool) -> SSLNetwork:
    """Backbone + DINO head + iBOT head (separate heads, as every Franca config has)."""
    backbone = build_backbone_from_config(cfg, student=student)
    h = cfg.heads
    dim = backbone.embed_dim
    dino = _head(cfg, dim, h.dino_prototypes, h.dino_bottleneck)
    ibot = _head(cfg, dim, h.ibot_prototypes, h.ibot_bottleneck)
    return SSLNetwork(backbone, dino, ibot)


def _head(cfg: PretrainConfig, dim: int, prototypes: int, bottleneck: int) -> ProjectionHead:
    h = cfg.heads
    return build_head(
        h.mode,
        dim,
        prototypes,
        n_levels=h.n_levels,
        hidden_dim=h.hidden_dim,
        bottleneck_dim=bottleneck,
        nlayers=h.nlayers,
        l2_norm_bottleneck=h.l2_norm_bottleneck,
    )


def build_objective(cfg: PretrainConfig) -> FrancaObjective:
    """Student, teacher (initialised from the student) and the loss settings of ``cfg``."""
    loss = cfg.loss
    objective = FrancaObjective(
        build_network(cfg, student=True),
        build_network(cfg, student=False),
        dino_weight=loss.dino_weight,
        ibot_weight=loss.ibot_weight,
        koleo_weight=loss.koleo_weight,
        student_temp=loss.student_temp,
        centering=loss.centering,
        sk_iterations=loss.sk_iterations,
        official_sk_padding_rows=loss.official_sk_padding_rows,
    )
    objective.init_teacher_from_student()
    return objective


def build_mask_generator(cfg: PretrainConfig) -> MaskGenerator:
    """The iBOT mask generator on the global-crop patch grid."""
    grid = cfg.crops.global_size // cfg.backbone.patch_size
    return MASK_GENERATORS[cfg.masking.generator](grid)


def build_augmentation(cfg: PretrainConfig) -> MultiCropAugmentation:
    """Multi-crop augmentation with the config's sizes and scales."""
    c = cfg.crops
    return MultiCropAugmentation(
        global_size=c.global_size,
        local_size=c.local_size,
        global_scale=c.global_scale,
        local_scale=c.local_scale,
        n_local=c.n_local,
        official_blur_inversion=c.official_blur_inversion,
    )
