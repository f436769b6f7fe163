"""The pretraining stage config: every block a run needs, and nothing derived.

Derived values (the lr scaled to the global batch, schedule lengths in steps) are computed by
``derived()`` and logged; they are never written back into the config, so a saved
``config.json`` reproduces the run exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from franca_core.config.base import (
    BackboneConfig,
    CropsConfig,
    Frozen,
    HeadsConfig,
    LossConfig,
    MaskingConfig,
    OptimConfig,
    TeacherConfig,
)


class DataConfig(Frozen):
    """Where training images come from and how they are batched."""

    source: Literal["sample_images", "folder", "webdataset", "manifest"] = Field(
        "sample_images",
        description="sample_images: photographs shipped by scikit-image (no data needed); folder: an "
        "image folder; webdataset: curated .tar shards; manifest: a curation manifest.parquet.",
    )
    path: Path | None = Field(None, description="Folder, shard directory or manifest path.")
    batch_size_per_rank: int = Field(32, ge=1, description="Images per process per step.")
    num_workers: int = Field(0, ge=0, description="DataLoader worker processes per rank.")
    seed: int = Field(0, description="Seed of the data order, augmentations and masks.")
    shuffle_window: int = Field(
        2048, ge=1, description="Streams (webdataset, manifest): samples shuffled together per window."
    )
    max_short_side: int | None = Field(
        None, ge=1, description="Downscale images whose shorter side exceeds this before cropping."
    )


class RuntimeConfig(Frozen):
    """How the run executes: parallelism, precision, checkpoints."""

    distributed: Literal["auto", "none", "ddp", "fsdp"] = Field(
        "auto", description="auto: DDP under torchrun with >1 process, else none."
    )
    precision: Literal["auto", "fp32", "bf16"] = Field("auto", description="auto: bf16 on CUDA, fp32 on CPU.")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: CUDA when available.")
    seed: int = Field(0, description="Seed of model init and of the training RNG (drop path).")
    max_steps: int | None = Field(
        None, ge=1, description="Stop after this step (None: optim.total_iters); schedules are unchanged."
    )
    checkpoint_every: int = Field(1250, ge=1, description="Save a checkpoint every N steps.")
    keep_last: int | None = Field(None, ge=1, description="Keep only the newest N checkpoints (None: all).")
    log_every: int = Field(10, ge=1, description="Write metrics every N steps.")
    compile: Literal["off", "blocks", "all"] = Field(
        "off",
        description="torch.compile each transformer block (blocks), or the blocks, the Matryoshka heads and "
        "the loss terms (all). true/false mean blocks/off.",
    )

    activation_checkpointing: bool = Field(
        False,
        description="Recompute the student's block activations in backward (less memory for about a third "
        "more compute; training is unchanged).",
    )

    @field_validator("compile", mode="before")
    @classmethod
    def _compile_flag(cls, value: object) -> object:
        # Earlier versions (and their config.json files) had a boolean: true compiled the blocks.
        if isinstance(value, str) and value.lower() in ("true", "false"):
            value = value.lower() == "true"
        if isinstance(value, bool):
            return "blocks" if value else "off"
        return value


class PretrainConfig(Frozen):
    """One pretraining (or high-resolution finetuning) stage."""

    name: str = Field("custom", description="Preset or experiment name, recorded in the run directory.")
    backbone: BackboneConfig = Field(default_factory=BackboneConfig)
    heads: HeadsConfig = Field(default_factory=HeadsConfig)
    loss: LossConfig = Field(default_factory=LossConfig)
    masking: MaskingConfig = Field(default_factory=MaskingConfig)
    crops: CropsConfig = Field(default_factory=CropsConfig)
    teacher: TeacherConfig = Field(default_factory=TeacherConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig)
    init_from: Path | None = Field(
        None, description="Teacher backbone to start from (high-resolution finetuning); heads start fresh."
    )


@dataclass(frozen=True)
class Derived:
    """Values computed from a config and the world size; logged, never stored in the config."""

    world_size: int
    global_batch: int
    lr: float
    min_lr: float
    max_steps: int


def derived(cfg: PretrainConfig, world_size: int) -> Derived:
    """Scale the learning rate to the global batch (reference §3.2, 'Learning-rate scaling')."""
    global_batch = cfg.data.batch_size_per_rank * world_size
    rule = cfg.optim.scaling_rule
    if rule == "sqrt_wrt_1024":
        factor = math.sqrt(global_batch / 1024)
    elif rule == "linear_wrt_256":
        factor = global_batch / 256
    else:
        factor = 1.0
    max_steps = cfg.runtime.max_steps if cfg.runtime.max_steps is not None else cfg.optim.total_iters
    return Derived(world_size, global_batch, cfg.optim.base_lr * factor, cfg.optim.min_lr, max_steps)
