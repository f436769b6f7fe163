"""High-resolution finetuning (HRFT) stages, derived from a pretraining config (presets as code).

Franca finishes training at higher resolution in two stages (Franca supplement; issue 4): global
crops 364 px with 112 px local crops, then 518 px with 168 px local crops. Each stage starts from
the previous teacher backbone (``pos_embed`` resized, heads fresh; reference §6 'Pretrained init',
'HRFT'), with the official finetune recipe (``configs/finetune/vit{b,l}14_finetune.yaml``,
reference §3.2/§6): base lr 7.05e-5 (ViT-B) or 1.51e-5 (ViT-L), batch 32 / 16 per GPU, drop path
0.1, 100 x 200 = 20,000 iterations with 10,000 warm-up and a 30 x 200 teacher-temperature warm-up.

The 20,000 iterations are split evenly over the two stages and every schedule length is compressed
by the same factor (warm-up, teacher temperature, prototype freeze), so each stage runs a complete
cosine. The exact per-stage lr and iteration counts of the supplement were not available to this
implementation; they are the fields of :class:`HighResStage` and can be overridden per stage
(``key=value``) on the command line.

    franca finetune-highres --from runs/vitb14 --run-dir runs/vitb14_hr
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from franca_core.config.pretrain import PretrainConfig

FINETUNE_EPOCH = 200  # OFFICIAL_EPOCH_LENGTH of the finetune yamls
FINETUNE_ITERS = 100 * FINETUNE_EPOCH
FINETUNE_BASE_LR = {"vit_base": 7.05e-5, "vit_large": 1.51e-5}
FINETUNE_BATCH = {"vit_base": 32, "vit_large": 16}


@dataclass(frozen=True)
class HighResStage:
    """One HRFT stage: crop sizes and its share of the finetuning schedule."""

    name: str
    global_size: int
    local_size: int
    share: float  # fraction of the finetune iterations run in this stage


HIGHRES_STAGES: tuple[HighResStage, ...] = (
    HighResStage("hr364", global_size=364, local_size=112, share=0.5),
    HighResStage("hr518", global_size=518, local_size=168, share=0.5),
)


def _finetune_iters(base: PretrainConfig) -> int:
    """20,000 for the paper's models; a tenth of the pretraining length for custom (debug) sizes."""
    if base.backbone.arch == "custom":
        return max(20, base.optim.total_iters // 10)
    return FINETUNE_ITERS


def highres_stage(base: PretrainConfig, index: int, init_from: Path) -> PretrainConfig:
    """The config of HRFT stage ``index`` (0 or 1) after pretraining with ``base``."""
    stage = HIGHRES_STAGES[index]
    arch = base.backbone.arch
    full = _finetune_iters(base)
    iters = max(1, round(full * stage.share))
    factor = iters / full
    lr = FINETUNE_BASE_LR.get(arch, base.optim.base_lr * FINETUNE_BASE_LR["vit_base"] / 7.01e-4)
    optim = base.optim.model_copy(
        update={
            "base_lr": lr,
            "total_iters": iters,
            "warmup_iters": round(full / 2 * factor),
            "freeze_last_layer_iters": round(FINETUNE_EPOCH * factor) if arch != "custom" else 0,
        }
    )
    teacher = base.teacher.model_copy(
        update={"temp_warmup_iters": round((30 * FINETUNE_EPOCH if arch != "custom" else full // 3) * factor)}
    )
    crops = base.crops.model_copy(update={"global_size": stage.global_size, "local_size": stage.local_size})
    data = base.data
    if arch in FINETUNE_BATCH:
        data = data.model_copy(update={"batch_size_per_rank": FINETUNE_BATCH[arch]})
    backbone = base.backbone.model_copy(update={"drop_path_rate": min(base.backbone.drop_path_rate, 0.1)})
    runtime = base.runtime.model_copy(update={"max_steps": None})
    if arch != "custom":
        runtime = runtime.model_copy(update={"checkpoint_every": FINETUNE_EPOCH})
    return base.model_copy(
        update={
            "name": f"{base.name}_{stage.name}",
            "backbone": backbone,
            "crops": crops,
            "optim": optim,
            "teacher": teacher,
            "data": data,
            "runtime": runtime,
            "init_from": init_from,
        }
    )
