"""Downstream checks before / after RASA: k-NN and Hummingbird (Franca §3.3, Table 6 style comparison).

RASA only changes patch tokens (the CLS token is untouched), so the k-NN compares the mean-pooled patch
tokens before and after the removal (the CLS score is reported once, as a reference). The task is
``CropsOfSourceDataset`` (class = the photograph a crop comes from). Hummingbird uses the evaluation
package's retrieval segmentation on Voronoi mosaics of the scikit-image photographs, with the plain patch
tokens before and ``patch_token_rasa`` after. Both use the DINOv2 / hbird protocol code of
``franca_core.evaluation``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from franca_core.data.sources import CropsOfSourceDataset, ImageSource
from franca_core.models.vision_transformer import VisionTransformer
from franca_core.rasa.config import DiagnosticsConfig


@dataclass(frozen=True)
class KnnScores:
    """Weighted k-NN top-1 (%) of the best k, on held-out crops."""

    k: int
    cls_top1: float  # CLS token, the same before and after (RASA leaves it alone)
    patch_mean_top1_before: float  # mean of x_norm_patchtokens
    patch_mean_top1_after: float  # mean of the RASA patch tokens
    stderr: float  # binomial standard error of a top-1 at this test size (the noise level), in %
    n_train: int
    n_test: int
    n_classes: int


@dataclass(frozen=True)
class HummingbirdScores:
    """Hummingbird mIoU (%) on the scikit-image mosaics (plain and after Hungarian matching)."""

    miou_before: float
    miou_after: float
    miou_hungarian_before: float
    miou_hungarian_after: float
    memory_images: int
    query_images: int


@torch.no_grad()
def _pooled(
    backbone: VisionTransformer, data: Dataset[tuple[Tensor, int]], fold: Tensor
) -> tuple[Tensor, ...]:
    """(CLS [M, D], mean patch [M, D], mean RASA patch [M, D], labels [M]) of a labelled image dataset."""
    device = next(backbone.parameters()).device
    cls, mean, mean_rasa, labels = [], [], [], []
    for images, target in tqdm(DataLoader(data, batch_size=32), desc="k-NN features", leave=False):
        out = backbone.forward_features(images.to(device))
        patch = out.x_norm_patchtokens.float()  # [B, N, D]
        cls.append(out.x_norm_clstoken.float().cpu())
        mean.append(patch.mean(1).cpu())
        mean_rasa.append((patch @ fold.to(patch)).mean(1).cpu())  # [B, N, D] @ [D, D] -> mean over N
        labels.append(torch.as_tensor(target))
    return torch.cat(cls), torch.cat(mean), torch.cat(mean_rasa), torch.cat(labels)


def knn_before_after(
    backbone: VisionTransformer, images: ImageSource, fold: Tensor, size: int, cfg: DiagnosticsConfig
) -> KnnScores:
    """k-NN on crops of (at most ``cfg.knn_images``) images: CLS, and mean patch tokens before / after."""
    from franca_core.evaluation.knn import knn_accuracies

    n_images = min(len(images), cfg.knn_images)
    subset = [images[i] for i in range(n_images)]
    splits = [
        CropsOfSourceDataset(subset, cfg.knn_crops_per_image, crop_size=size, split=s, seed=cfg.seed)  # type: ignore[arg-type]
        for s in ("train", "heldout")
    ]
    train, test = (_pooled(backbone, s, fold) for s in splits)

    def best(column: int) -> tuple[int, float]:
        accs = knn_accuracies(
            train[column], train[3], test[column], test[3], cfg.knn_ks, temperature=cfg.knn_temperature
        )
        top = max(accs, key=lambda a: a.top1)
        return top.k, top.top1

    k, before = best(1)
    _, after = best(2)
    n_test = len(test[3])
    p = min(max(before / 100, 1 / n_test), 1 - 1 / n_test)
    return KnnScores(
        k=k,
        cls_top1=best(0)[1],
        patch_mean_top1_before=before,
        patch_mean_top1_after=after,
        stderr=100 * math.sqrt(p * (1 - p) / n_test),
        n_train=len(train[3]),
        n_test=n_test,
        n_classes=n_images,
    )


def hummingbird_before_after(
    backbone: VisionTransformer, fold: Tensor, size: int, patch_size: int, cfg: DiagnosticsConfig
) -> HummingbirdScores:
    """Hummingbird on sample mosaics with x_norm_patchtokens, then with the RASA tokens (same images)."""
    from franca_core.evaluation.features import BackboneFeatures, FeatureRequest
    from franca_core.evaluation.hummingbird import HummingbirdConfig, compute
    from franca_core.evaluation.sample_data import sample_mosaics
    from franca_core.evaluation.transforms import SegmentationDataset

    train_split = sample_mosaics("train", cfg.hummingbird_train_mosaics, size=size, seed=cfg.seed)
    val_split = sample_mosaics("val", cfg.hummingbird_val_mosaics, size=size, seed=cfg.seed)
    source = BackboneFeatures(backbone, identity="rasa", batch_size=16, progress=False)
    request = FeatureRequest(patch=True)
    memory = source.extract(SegmentationDataset(train_split, size), request)
    query = source.extract(SegmentationDataset(val_split, size), request)
    hb_cfg = HummingbirdConfig(data="sample", resolution=size, search="torch", augmentation_epochs=0)
    args = (patch_size, train_split.num_classes, train_split.ignore_index)
    before = compute(hb_cfg, [memory], query, *args)
    memory.patch, query.patch = _apply(memory.patch, fold), _apply(query.patch, fold)
    after = compute(hb_cfg, [memory], query, *args)
    return HummingbirdScores(
        miou_before=before.miou,
        miou_after=after.miou,
        miou_hungarian_before=before.miou_hungarian,
        miou_hungarian_after=after.miou_hungarian,
        memory_images=before.memory_images,
        query_images=before.query_images,
    )


def _apply(patch: Tensor | None, fold: Tensor) -> Tensor:
    """Patch grid [M, h, w, D] -> the same grid through the folded RASA map (kept in the input dtype)."""
    assert patch is not None, "patch features were requested"
    return (patch.float() @ fold.float()).to(patch.dtype)


__all__ = ["HummingbirdScores", "KnnScores", "hummingbird_before_after", "knn_before_after"]
