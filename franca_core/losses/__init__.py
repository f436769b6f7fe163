"""Franca objectives (reference §4): DINO CLS and iBOT patch losses per Matryoshka level, KoLeo, and the
teacher targets (Sinkhorn-Knopp, softmax centering). One concept per module; no model or config objects.
"""

from franca_core.losses.centering import SoftmaxCentering
from franca_core.losses.cross_entropy import soft_cross_entropy
from franca_core.losses.diagnostics import normalized_entropy, target_entropies
from franca_core.losses.dino_clstoken import dino_cls_loss, dino_cls_loss_level, n_dino_terms
from franca_core.losses.ibot_patch import ibot_patch_loss, ibot_patch_loss_level
from franca_core.losses.koleo import koleo_loss, koleo_loss_per_crop
from franca_core.losses.result import DinoLoss, LevelLoss
from franca_core.losses.sinkhorn_knopp import sinkhorn_knopp_levels, sinkhorn_knopp_targets

__all__ = [
    "DinoLoss",
    "LevelLoss",
    "SoftmaxCentering",
    "dino_cls_loss",
    "dino_cls_loss_level",
    "ibot_patch_loss",
    "ibot_patch_loss_level",
    "koleo_loss",
    "koleo_loss_per_crop",
    "n_dino_terms",
    "normalized_entropy",
    "sinkhorn_knopp_levels",
    "sinkhorn_knopp_targets",
    "soft_cross_entropy",
    "target_entropies",
]
