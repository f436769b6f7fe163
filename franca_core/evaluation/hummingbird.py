"""Hummingbird in-context scene understanding: dense nearest-neighbour retrieval segmentation.

Protocol (Balažević et al., "Towards In-context Scene Understanding", NeurIPS 2023; implementation facts
from vpariza/open-hummingbird-eval, ``shared/reference/evaluation-protocols.md`` section 3): a memory of
train patch features with soft labels (``memory_bank.py``), k = 30 neighbours by exact faiss search
(GPU when faiss sees one), attention temperature 0.02; the val patch predictions [S, S, C] are bilinearly
upsampled to the square input size, argmaxed, and scored against the val masks resized (nearest) to that
size. mIoU is reported plain (identity mapping) and after Hungarian matching of predicted to true ids
(hbird's default ``compute()``).

Memory augmentation: ``augmentation_epochs`` passes over train with colour jitter and a shared
RandomResizedCrop(scale 0.5-2.0), seeded so the features are cacheable; 0 uses the plain resize.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from franca_core.evaluation.base import EvalContext
from franca_core.evaluation.config import EvalConfig
from franca_core.evaluation.features import FeatureRequest, FeatureSet
from franca_core.evaluation.memory_bank import MemoryBank, patch_soft_labels
from franca_core.evaluation.metrics import (
    confusion_matrix,
    hungarian_mapping,
    iou_per_class,
    mean_iou,
    remap_confusion,
)
from franca_core.evaluation.neighbours import SearchMethod
from franca_core.evaluation.transforms import HbirdAugment


class HummingbirdConfig(EvalConfig):
    """Retrieval-based segmentation from a memory of labelled train patches."""

    kind: Literal["hummingbird"] = "hummingbird"
    data: str
    """Name of a segmentation dataset of the suite."""
    train_split: str = "train"
    """Split the memory (the prompt) is built from."""
    eval_split: str = "val"
    """Split that is segmented and scored."""
    resolution: int = 224
    """Square input size of memory and query images (hbird default 224; 504 in its DINOv2 table)."""
    augmentation_epochs: int = 1
    """Augmented passes over train for the memory; 0: one pass without augmentation."""
    memory_size: int | None = None
    """Cap on memory patches (rare-class sampling per image); None keeps every patch."""
    k: int = 30
    """Neighbours per query patch."""
    temperature: float = 0.02
    """Softmax temperature of the neighbour attention (beta)."""
    search: SearchMethod = "faiss"
    """Exact search back-end."""
    ignore_to: int | None = None
    """Map ignore pixels to this class in the memory labels (hbird's VOC quirk: 0); None drops them."""
    query_batch: int = 16
    """Val images per retrieval batch."""
    seed: int = 0
    """Seed of augmentation and memory sampling."""


@dataclass(frozen=True)
class HummingbirdResult:
    miou: float
    miou_hungarian: float
    per_class_iou: tuple[float, ...]
    memory_patches: int
    memory_images: int
    query_images: int

    def headline(self) -> dict[str, float]:
        return {"mIoU": self.miou, "mIoU_hungarian": self.miou_hungarian}


def build_memory(
    passes: list[FeatureSet],
    patch: int,
    num_classes: int,
    ignore_index: int,
    memory_size: int | None,
    ignore_to: int | None = None,
    seed: int = 0,
) -> MemoryBank:
    """A memory bank from one or more feature passes over the train split."""
    n_images = sum(len(p) for p in passes)
    per_image = None if memory_size is None else max(1, memory_size // n_images)
    banks = []
    for i, fs in enumerate(passes):
        assert fs.patch is not None, "patch features are required"
        labels = patch_soft_labels(fs.targets, patch, num_classes, ignore_index, ignore_to)
        banks.append(MemoryBank.build(fs.patch, labels, per_image, seed=seed + i))
    return MemoryBank.concat(banks)


def segment(bank: MemoryBank, query: FeatureSet, cfg: HummingbirdConfig) -> torch.Tensor:
    """Predicted class ids [N, R, R] of the query images at their mask resolution."""
    assert query.patch is not None, "patch features are required"
    n, s_h, s_w, d = query.patch.shape
    out_hw = tuple(query.targets.shape[-2:])
    preds = []
    for start in range(0, n, cfg.query_batch):
        q = query.patch[start : start + cfg.query_batch].float()
        soft = bank.predict(q.reshape(-1, d), cfg.k, cfg.temperature, cfg.search)  # [B*S*S, C]
        soft = soft.reshape(q.shape[0], s_h, s_w, -1).permute(0, 3, 1, 2)  # [B, C, S, S]
        up = F.interpolate(soft, size=out_hw, mode="bilinear", align_corners=False)
        preds.append(up.argmax(dim=1))
    return torch.cat(preds)


def compute(
    cfg: HummingbirdConfig,
    memory_passes: list[FeatureSet],
    query: FeatureSet,
    patch: int,
    num_classes: int,
    ignore_index: int,
) -> HummingbirdResult:
    """Memory from ``memory_passes``, segmentation of ``query``, plain and Hungarian mIoU."""
    bank = build_memory(
        memory_passes, patch, num_classes, ignore_index, cfg.memory_size, cfg.ignore_to, cfg.seed
    )
    pred = segment(bank, query, cfg)
    conf = confusion_matrix(pred, query.targets, num_classes, num_classes, ignore_index)
    matched = remap_confusion(conf, hungarian_mapping(conf))
    return HummingbirdResult(
        miou=mean_iou(conf),
        miou_hungarian=mean_iou(matched),
        per_class_iou=tuple(float(v * 100) for v in iou_per_class(conf)),
        memory_patches=len(bank),
        memory_images=sum(len(p) for p in memory_passes),
        query_images=len(query),
    )


def evaluate(cfg: HummingbirdConfig, ctx: EvalContext) -> HummingbirdResult:
    split = ctx.segmentation_split(cfg.data, cfg.train_split)
    request = FeatureRequest(patch=True)
    if cfg.augmentation_epochs == 0:
        passes = [ctx.segmentation_features(cfg.data, cfg.train_split, cfg.resolution, request)]
    else:
        passes = [
            ctx.segmentation_features(
                cfg.data, cfg.train_split, cfg.resolution, request, HbirdAugment(epoch=e, seed=cfg.seed)
            )
            for e in range(cfg.augmentation_epochs)
        ]
    query = ctx.segmentation_features(cfg.data, cfg.eval_split, cfg.resolution, request)
    return compute(cfg, passes, query, ctx.source.patch_size, split.num_classes, split.ignore_index)
