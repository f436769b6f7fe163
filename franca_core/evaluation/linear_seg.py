"""Linear semantic segmentation: a 1x1 convolution on frozen patch features, scored on 100 x 100 masks.

Protocol (NeCo / Leopart linear probe, which Franca follows per valeoai/Franca issue #2;
``shared/reference/evaluation-protocols.md`` section 5b): 448 x 448 input, last-layer patch tokens on the
S x S grid, a ``Conv2d(D, C, 1)`` head without BatchNorm, logits at 100 x 100 (bilinear), cross-entropy with
the ignore index against masks nearest-downsampled to 100 x 100; SGD lr 0.01, momentum 0.9, weight decay
1e-4, 25 epochs with the lr divided by 10 at epoch 20, batch 128; mIoU on val without matching.

Implementation notes: a 1x1 conv commutes with bilinear upsampling (both are linear and the bilinear
weights sum to one), so the head is applied on the S x S grid and its logits upsampled: the same function
for a fraction of the cost. Deviations, stated in the result: features are cached (no RandomResizedCrop or
flip), and the final-epoch head is scored (NeCo keeps the best val epoch).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from franca_core.evaluation.base import EvalContext
from franca_core.evaluation.config import EvalConfig
from franca_core.evaluation.features import FeatureRequest, FeatureSet
from franca_core.evaluation.metrics import confusion_matrix, iou_per_class, mean_iou
from franca_core.evaluation.transforms import resize_mask


class LinearSegConfig(EvalConfig):
    """1x1-conv probe on cached patch features, trained with SGD and a step schedule."""

    kind: Literal["linear_seg"] = "linear_seg"
    data: str
    """Name of a segmentation dataset of the suite."""
    train_split: str = "train"
    """Split the head is trained on."""
    eval_split: str = "val"
    """Split that is scored."""
    resolution: int = 448
    """Square input size."""
    mask_size: int = 100
    """Side of the logits and the masks in the loss and the metric."""
    learning_rates: tuple[float, ...] = (0.01,)
    """Learning rates, one head each, trained on the same batches (NeCo: a single 0.01)."""
    momentum: float = 0.9
    """SGD momentum."""
    weight_decay: float = 1e-4
    """SGD weight decay."""
    epochs: int = 25
    """Passes over the train features."""
    drop_at: int = 20
    """Epoch at which the learning rate is divided by 10."""
    batch_size: int = 128
    """Images per step."""
    seed: int = 0
    """Seed of the head init and the batch order."""


@dataclass(frozen=True)
class LinearSegResult:
    miou: float
    best_lr: float
    miou_per_lr: tuple[float, ...]
    per_class_iou: tuple[float, ...]
    deviation: str = "cached features (no augmentation); final-epoch head scored"

    def headline(self) -> dict[str, float]:
        return {"mIoU": self.miou}


def _logits(head: nn.Conv2d, patch: Tensor, size: int) -> Tensor:
    """[B, S, S, D] features -> [B, C, size, size] logits."""
    x = patch.float().permute(0, 3, 1, 2)  # [B, D, S, S]
    return F.interpolate(head(x), size=(size, size), mode="bilinear", align_corners=False)


def train_heads(
    cfg: LinearSegConfig, train: FeatureSet, num_classes: int, ignore_index: int
) -> list[nn.Conv2d]:
    assert train.patch is not None, "patch features are required"
    torch.manual_seed(cfg.seed)
    d = train.patch.shape[-1]
    heads = [nn.Conv2d(d, num_classes, 1) for _ in cfg.learning_rates]
    groups = [{"params": h.parameters(), "lr": lr} for h, lr in zip(heads, cfg.learning_rates)]
    opt = torch.optim.SGD(
        groups, lr=cfg.learning_rates[0], momentum=cfg.momentum, weight_decay=cfg.weight_decay
    )
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[cfg.drop_at], gamma=0.1)
    masks = resize_mask(train.targets.long(), cfg.mask_size)
    gen = torch.Generator().manual_seed(cfg.seed)
    for _ in range(cfg.epochs):
        for idx in torch.randperm(len(train), generator=gen).split(cfg.batch_size):
            opt.zero_grad()
            loss = sum(
                F.cross_entropy(
                    _logits(h, train.patch[idx], cfg.mask_size), masks[idx], ignore_index=ignore_index
                )
                for h in heads
            )
            loss.backward()  # type: ignore[union-attr]
            opt.step()
        sched.step()
    return heads


@torch.no_grad()
def predict(head: nn.Conv2d, fs: FeatureSet, size: int, batch: int = 64) -> Tensor:
    """Predicted class ids [N, size, size]."""
    assert fs.patch is not None, "patch features are required"
    return torch.cat(
        [_logits(head, fs.patch[i : i + batch], size).argmax(1) for i in range(0, len(fs), batch)]
    )


def compute(
    cfg: LinearSegConfig, train: FeatureSet, test: FeatureSet, num_classes: int, ignore_index: int
) -> LinearSegResult:
    heads = train_heads(cfg, train, num_classes, ignore_index)
    masks = resize_mask(test.targets.long(), cfg.mask_size)
    confs = [
        confusion_matrix(predict(h, test, cfg.mask_size), masks, num_classes, num_classes, ignore_index)
        for h in heads
    ]
    mious = [mean_iou(c) for c in confs]
    best = max(range(len(heads)), key=lambda i: mious[i])
    return LinearSegResult(
        miou=mious[best],
        best_lr=cfg.learning_rates[best],
        miou_per_lr=tuple(mious),
        per_class_iou=tuple(float(v * 100) for v in iou_per_class(confs[best])),
    )


def evaluate(cfg: LinearSegConfig, ctx: EvalContext) -> LinearSegResult:
    split = ctx.segmentation_split(cfg.data, cfg.train_split)
    request = FeatureRequest(patch=True)
    train = ctx.segmentation_features(cfg.data, cfg.train_split, cfg.resolution, request)
    test = ctx.segmentation_features(cfg.data, cfg.eval_split, cfg.resolution, request)
    return compute(cfg, train, test, split.num_classes, split.ignore_index)
