"""Pretraining presets as code (big_vision style): the paper's recipes and a tiny CPU one.

Iteration counts are epochs x OFFICIAL_EPOCH_LENGTH (1250) from the official yamls
(reference §3.2, §9 item 6). Global batches are those of the official launch scripts; the lr is
``base_lr`` and is scaled to the actual global batch at run time (``config.pretrain.derived``).

Run locally (CPU, a few minutes)::

    franca pretrain --config debug --run-dir runs/debug
"""

from __future__ import annotations

from collections.abc import Callable

from franca_core.config.base import (
    BackboneConfig,
    CropsConfig,
    HeadsConfig,
    LossConfig,
    MaskingConfig,
    OptimConfig,
    TeacherConfig,
)
from franca_core.config.pretrain import DataConfig, PretrainConfig, RuntimeConfig

EPOCH = 1250  # OFFICIAL_EPOCH_LENGTH


def debug() -> PretrainConfig:
    """A tiny ViT on the scikit-image photographs: CPU, a few minutes; for tests and smoke runs.

    Tuned to learn within 500 steps on 17 photographs (``tests/train/test_learning.py``: k-NN on
    colour-distorted held-out crops rose from 46.5% at init to 60.4%) and to keep learning on real
    photographs (clothing10, README). Departures from the paper recipe, each for the tiny scale:
    L2-normalised head bottleneck (un-normalised tiny heads start at logits ~1e-4 and stay uniform),
    DINO's softmax centering with a constant teacher temperature instead of Sinkhorn-Knopp over
    16-image batches, a teacher temperature of 0.02 instead of 0.04, a faster teacher (momentum 0.98)
    and 6 local crops. The temperature: a 64-d bottleneck against 1024 prototypes gives cosine logits
    with a spread of about 0.13, so at 0.04 the teacher's targets are nearly flat. On clothing10 the
    heads then drift towards uniform outputs (spread 0.13 -> 0.07 in 600 steps; with Sinkhorn-Knopp
    the best prototype's cosine falls 0.40 -> 0.17) and k-NN stalls within a few points of random
    init. At 0.02 the spread holds, the bottleneck locks onto prototypes (best cosine 0.68) and k-NN
    keeps rising. Run: ``franca pretrain --config debug --run-dir runs/debug``.
    """
    return PretrainConfig(
        name="debug",
        backbone=BackboneConfig(
            arch="custom", embed_dim=96, depth=4, num_heads=3, drop_path_rate=0.0, layerscale_init=0.1
        ),
        # At this width the official un-normalised head starts with logits ~1e-4, so the teacher
        # targets stay uniform and the DINO/iBOT losses sit at sum(log K_l); the L2 norm fixes it.
        heads=HeadsConfig(
            dino_prototypes=1024,
            dino_bottleneck=64,
            ibot_prototypes=1024,
            ibot_bottleneck=64,
            hidden_dim=256,
            l2_norm_bottleneck=True,
        ),
        loss=LossConfig(centering="softmax"),
        crops=CropsConfig(global_size=112, local_size=56, n_local=6),
        masking=MaskingConfig(),
        teacher=TeacherConfig(momentum=0.98, temp_warmup=0.02, temp=0.02, temp_warmup_iters=0),
        optim=OptimConfig(
            base_lr=2e-3,
            scaling_rule="none",
            warmup_iters=50,
            total_iters=500,
            weight_decay_end=0.04,
            freeze_last_layer_iters=10,
            patch_embed_lr_mult=1.0,
        ),
        data=DataConfig(source="sample_images", batch_size_per_rank=16, num_workers=1, max_short_side=256),
        runtime=RuntimeConfig(checkpoint_every=100, log_every=5),
    )


def _paper(
    name: str, arch: str, drop_path: float, base_lr: float, epochs: int, warmup: int
) -> PretrainConfig:
    return PretrainConfig(
        name=name,
        backbone=BackboneConfig(arch=arch, drop_path_rate=drop_path),  # type: ignore[arg-type]
        optim=OptimConfig(base_lr=base_lr, total_iters=epochs * EPOCH, warmup_iters=warmup * EPOCH),
        teacher=TeacherConfig(temp_warmup_iters=30 * EPOCH),
        data=DataConfig(source="webdataset", batch_size_per_rank=32),
        runtime=RuntimeConfig(checkpoint_every=EPOCH),
    )


def vitb14_in21k() -> PretrainConfig:
    """Franca ViT-B/14 on ImageNet-21K: 800/128 epochs, base lr 7.01e-4, 64 GPUs x 32."""
    return _paper("vitb14_in21k", "vit_base", 0.1, 7.01e-4, 800, 128)


def vitl14_in21k() -> PretrainConfig:
    """Franca ViT-L/14 on ImageNet-21K: 16/8 epochs as the yaml says, base lr 2e-4, 96 GPUs x 32."""
    return _paper("vitl14_in21k", "vit_large", 0.4, 2.0e-4, 16, 8)


def vitl14_laion() -> PretrainConfig:
    """Franca ViT-L/14 on LAION-600M: 500/80 epochs, base lr 1e-3, global scale (0.48, 1)."""
    cfg = _paper("vitl14_laion", "vit_large", 0.4, 1.0e-3, 500, 80)
    return cfg.model_copy(update={"crops": CropsConfig(global_scale=(0.48, 1.0))})


def vitg14_laion() -> PretrainConfig:
    """Franca ViT-g/14 on LAION-600M: 500/80 epochs, base lr 2e-4, scales (0.45, 1)/(0.05, 0.45)."""
    cfg = _paper("vitg14_laion", "vit_giant2", 0.4, 2.0e-4, 500, 80)
    return cfg.model_copy(update={"crops": CropsConfig(global_scale=(0.45, 1.0), local_scale=(0.05, 0.45))})


PRESETS: dict[str, Callable[[], PretrainConfig]] = {
    "debug": debug,
    "vitb14_in21k": vitb14_in21k,
    "vitl14_in21k": vitl14_in21k,
    "vitl14_laion": vitl14_laion,
    "vitg14_laion": vitg14_laion,
}
