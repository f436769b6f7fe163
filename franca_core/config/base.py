"""Typed configuration blocks shared by every stage.

Configs are frozen pydantic models with ``extra="forbid"``: a typo in a key is an error that
names the key, never a silently ignored setting. Every field carries a description, which is
what ``franca pretrain --help-config`` and the Prefect deployment schema show.
Values default to the official Franca recipe (reference §3.2) unless a field says otherwise.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from franca_core.models.layers.drop_path import DropPathMode


class Frozen(BaseModel):
    """Base of every config block: immutable, unknown keys rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid")


ArchName = Literal["vit_small", "vit_base", "vit_large", "vit_giant2", "custom"]


class BackboneConfig(Frozen):
    """The student/teacher ViT (reference §1.1)."""

    arch: ArchName = Field("vit_base", description="Standard size, or 'custom' to set width/depth/heads.")
    embed_dim: int | None = Field(None, description="Width for arch='custom'.")
    depth: int | None = Field(None, description="Number of blocks for arch='custom'.")
    num_heads: int | None = Field(None, description="Attention heads for arch='custom'.")
    patch_size: int = Field(14, description="Patch size in pixels.")
    ffn: Literal["swiglu", "mlp"] = Field("swiglu", description="SwiGLU (all Franca sizes) or MLP.")
    drop_path_rate: float = Field(0.1, ge=0.0, lt=1.0, description="Stochastic depth of the student.")
    drop_path_mode: DropPathMode = Field(
        "official",
        description="official: DINOv2's batch subset above rate 0.1 (the branch runs on the kept samples "
        "only), per sample at or below; per_sample / batch_subset force one form.",
    )
    layerscale_init: float = Field(1e-5, description="LayerScale initial value.")
    num_register_tokens: int = Field(0, ge=0, description="Register tokens (0 for Franca).")
    attention: Literal["auto", "sdpa", "eager"] = Field(
        "auto", description="auto: xformers on CUDA when installed, else SDPA; eager: explicit softmax."
    )

    @model_validator(mode="after")
    def _custom_complete(self) -> BackboneConfig:
        if self.arch == "custom" and None in (self.embed_dim, self.depth, self.num_heads):
            raise ValueError("arch='custom' needs embed_dim, depth and num_heads")
        return self


class HeadsConfig(Frozen):
    """Matryoshka DINO (CLS) and iBOT (patch) heads (reference §3.1)."""

    mode: Literal["project", "slice_project", "slice", "shared", "none"] = Field(
        "project",
        description="project: a learned Linear per level (official code); slice: Z[:, :m] (paper "
        "text); shared: one head over nested prefixes; none: a plain DINOv2 head, no Matryoshka.",
    )
    n_levels: int = Field(5, ge=1, le=8, description="Nesting levels D/2^(n-1) ... D.")
    dino_prototypes: int = Field(131072, description="Prototypes at the finest level (DINO head).")
    dino_bottleneck: int = Field(384, description="DINO head bottleneck width.")
    ibot_prototypes: int = Field(131072, description="Prototypes at the finest level (iBOT head).")
    ibot_bottleneck: int = Field(256, description="iBOT head bottleneck width.")
    hidden_dim: int = Field(2048, description="Hidden width of the head MLPs.")
    nlayers: int = Field(3, ge=1, description="Layers of the head MLPs.")
    l2_norm_bottleneck: bool = Field(
        False,
        description="L2-normalise the bottleneck before the prototypes (DINOv2 does; official Franca does "
        "not). Tiny heads need it: un-normalised, their initial logits are ~1e-4 and the teacher targets "
        "stay uniform.",
    )


class LossConfig(Frozen):
    """Weights and options of the Franca objective (reference §4)."""

    dino_weight: float = Field(1.0, description="Weight of the DINO CLS loss.")
    ibot_weight: float = Field(1.0, description="Weight of the iBOT masked-patch loss.")
    koleo_weight: float = Field(0.1, description="Weight of the KoLeo regulariser.")
    student_temp: float = Field(0.1, gt=0, description="Student softmax temperature.")
    centering: Literal["sinkhorn_knopp", "softmax"] = Field(
        "sinkhorn_knopp", description="Teacher target normalisation."
    )
    sk_iterations: int = Field(3, ge=1, description="Sinkhorn-Knopp iterations.")
    official_sk_padding_rows: bool = Field(
        False, description="Reproduce the official defect: run iBOT Sinkhorn-Knopp over padding rows."
    )


class MaskingConfig(Frozen):
    """iBOT masking of the global crops (reference §5)."""

    generator: Literal["cyclic", "inverse_block", "block", "dinov2"] = Field(
        "cyclic", description="cyclic = inverse block + roll (CyclicMask, Franca's setting)."
    )
    ratio_min: float = Field(0.1, ge=0, le=1, description="Lowest masked ratio.")
    ratio_max: float = Field(0.65, ge=0, le=1, description="Highest masked ratio.")
    sample_probability: float = Field(0.5, ge=0, le=1, description="Share of global crops masked.")
    group_size: int | None = Field(
        None,
        ge=1,
        description="Images per mask-stratification group (None: the per-rank batch, as the official "
        "per-GPU collate). A fixed size makes masks independent of the number of ranks.",
    )


class CropsConfig(Frozen):
    """Multi-crop augmentation (reference §3.2, 'Augmentations')."""

    global_size: int = Field(224, description="Global crop size in pixels.")
    local_size: int = Field(98, description="Local crop size in pixels.")
    global_scale: tuple[float, float] = Field((0.32, 1.0), description="RandomResizedCrop scale, global.")
    local_scale: tuple[float, float] = Field((0.05, 0.32), description="RandomResizedCrop scale, local.")
    n_local: int = Field(8, ge=0, description="Local crops per image.")
    official_blur_inversion: bool = Field(
        False, description="Reproduce the inherited DINOv2 blur-probability inversion."
    )


class TeacherConfig(Frozen):
    """EMA teacher and its temperature schedule (reference §6)."""

    momentum: float = Field(0.994, description="EMA momentum at step 0 (cosine to momentum_end).")
    momentum_end: float = Field(1.0, description="Final EMA momentum.")
    temp_warmup: float = Field(0.04, description="Teacher temperature at step 0.")
    temp: float = Field(0.07, description="Teacher temperature after warm-up.")
    temp_warmup_iters: int = Field(37500, ge=0, description="Linear warm-up of the teacher temperature.")


class OptimConfig(Frozen):
    """AdamW, schedules and their lengths, all per iteration (reference §6)."""

    base_lr: float = Field(7.01e-4, description="Learning rate for a global batch of 1024.")
    scaling_rule: Literal["sqrt_wrt_1024", "linear_wrt_256", "none"] = Field(
        "sqrt_wrt_1024", description="How the lr scales with the global batch (derived, logged)."
    )
    min_lr: float = Field(1e-6, description="Final learning rate of the cosine.")
    warmup_iters: int = Field(160_000, ge=0, description="Linear lr warm-up length.")
    total_iters: int = Field(1_000_000, ge=1, description="Length of every schedule.")
    weight_decay: float = Field(0.04, description="Weight decay at step 0 (cosine to weight_decay_end).")
    weight_decay_end: float = Field(0.2, description="Final weight decay.")
    layerwise_decay: float = Field(1.0, gt=0, le=1, description="Layer-wise lr decay (1 = off).")
    patch_embed_lr_mult: float = Field(0.2, description="lr multiplier of the patch embedding.")
    clip_grad: float | None = Field(3.0, description="Gradient-norm clipping (None = off).")
    freeze_last_layer_iters: int = Field(1250, ge=0, description="Prototype layers frozen this long.")
    betas: tuple[float, float] = Field((0.9, 0.999), description="AdamW betas.")
