"""Overclustering: k-means on frozen patch features, scored by matching clusters to classes.

Protocol (Leopart ``experiments/overcluster/sup_overcluster.py`` and NeCo ``eval_overcluster.py``, the
setup Franca follows; ``shared/reference/evaluation-protocols.md`` section 4): val images square-resized to
448; last-layer patch tokens after the final norm; z-score per dimension; PCA to 50 dims; faiss k-means
(``niter=100``, ``nredo=5``) for several seeds and K in {100, 300}; each patch takes its nearest
centroid; the S x S cluster map is nearest-upsampled to 100 x 100 and compared with the masks
nearest-downsampled to 100 x 100, ignore pixels dropped. Matching: greedy many-to-one by precision (each
cluster to the class with the highest TP / (TP + FP)) and Hungarian (one cluster per class, the other
clusters count as misses). Reported: mean and std of the mIoU over seeds, per K.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from franca_core.evaluation.base import EvalContext
from franca_core.evaluation.config import EvalConfig
from franca_core.evaluation.features import FeatureRequest, FeatureSet
from franca_core.evaluation.metrics import (
    confusion_matrix,
    greedy_many_to_one_mapping,
    hungarian_mapping,
    mean_iou,
    remap_confusion,
)
from franca_core.evaluation.pca import Pca, standardize
from franca_core.evaluation.transforms import resize_mask


class OverclusterConfig(EvalConfig):
    """k-means on val patch features with greedy many-to-one and Hungarian matching."""

    kind: Literal["overcluster"] = "overcluster"
    data: str
    """Name of a segmentation dataset of the suite."""
    eval_split: str = "val"
    """Split that is clustered and scored."""
    resolution: int = 448
    """Square input size."""
    num_clusters: tuple[int, ...] = (100, 300)
    """Values of K."""
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    """k-means seeds (Leopart / NeCo: 5)."""
    pca_dim: int = 50
    """Dimensions kept after the z-score."""
    niter: int = 100
    """k-means iterations."""
    nredo: int = 5
    """k-means restarts per seed (the best objective is kept)."""
    mask_size: int = 100
    """Side of the score grid (cluster maps and masks are resized to it)."""
    max_points_per_centroid: int = 256
    """faiss subsamples the training points to this many per centroid (its default)."""


@dataclass(frozen=True)
class ClusterScore:
    num_clusters: int
    seeds: tuple[int, ...]
    miou_greedy: tuple[float, ...]
    miou_hungarian: tuple[float, ...]
    greedy_mean: float
    greedy_std: float
    hungarian_mean: float
    hungarian_std: float


@dataclass(frozen=True)
class OverclusterResult:
    scores: tuple[ClusterScore, ...]
    num_patches: int

    def headline(self) -> dict[str, float]:
        out = {}
        for s in self.scores:
            out[f"K{s.num_clusters}_greedy"] = s.greedy_mean
            out[f"K{s.num_clusters}_hungarian"] = s.hungarian_mean
        return out


def kmeans_assign(x: np.ndarray, k: int, seed: int, cfg: OverclusterConfig) -> np.ndarray:
    """faiss k-means on rows of ``x`` [P, d] (float32); the nearest-centroid id of every row."""
    try:
        import faiss
    except ImportError as err:
        raise ImportError(
            "overclustering needs faiss: pip install 'franca-pipeline[cpu]' (faiss-cpu)"
        ) from err

    km = faiss.Kmeans(
        x.shape[1],
        k,
        niter=cfg.niter,
        nredo=cfg.nredo,
        seed=seed,
        verbose=False,
        max_points_per_centroid=cfg.max_points_per_centroid,
    )
    km.train(x)
    _, assign = km.index.search(x, 1)
    return assign[:, 0].astype(np.int64)


def project(patch: torch.Tensor, dim: int) -> np.ndarray:
    """[N, S, S, D] patch features -> [N*S*S, dim] z-scored PCA coordinates (float32, C-contiguous)."""
    x = standardize(patch.reshape(-1, patch.shape[-1]).float())
    return np.ascontiguousarray(Pca.fit(x).transform(x, min(dim, x.shape[1])).numpy().astype(np.float32))


def score_clusters(
    assign: np.ndarray,
    grid: tuple[int, int, int],
    masks: torch.Tensor,
    k: int,
    num_classes: int,
    ignore_index: int,
) -> tuple[float, float]:
    """(greedy many-to-one mIoU, Hungarian mIoU) of cluster ids [N*S*S] against masks at the score size."""
    n, s_h, s_w = grid
    cluster_map = torch.from_numpy(assign).reshape(n, s_h, s_w)
    cluster_map = resize_mask(cluster_map, tuple(masks.shape[-2:]))  # type: ignore[arg-type]
    conf = confusion_matrix(cluster_map, masks, k, num_classes, ignore_index)
    greedy = mean_iou(remap_confusion(conf, greedy_many_to_one_mapping(conf)))
    hungarian = mean_iou(remap_confusion(conf, hungarian_mapping(conf)))
    return greedy, hungarian


def compute(cfg: OverclusterConfig, fs: FeatureSet, num_classes: int, ignore_index: int) -> OverclusterResult:
    assert fs.patch is not None, "patch features are required"
    n, s_h, s_w, _ = fs.patch.shape
    x = project(fs.patch, cfg.pca_dim)
    masks = resize_mask(fs.targets.long(), cfg.mask_size)
    scores = []
    for k in cfg.num_clusters:
        results = [
            score_clusters(kmeans_assign(x, k, seed, cfg), (n, s_h, s_w), masks, k, num_classes, ignore_index)
            for seed in cfg.seeds
        ]
        greedy = np.array([r[0] for r in results])
        hung = np.array([r[1] for r in results])
        scores.append(
            ClusterScore(
                k,
                cfg.seeds,
                tuple(greedy.tolist()),
                tuple(hung.tolist()),
                float(greedy.mean()),
                float(greedy.std()),
                float(hung.mean()),
                float(hung.std()),
            )
        )
    return OverclusterResult(tuple(scores), int(x.shape[0]))


def evaluate(cfg: OverclusterConfig, ctx: EvalContext) -> OverclusterResult:
    split = ctx.segmentation_split(cfg.data, cfg.eval_split)
    fs = ctx.segmentation_features(cfg.data, cfg.eval_split, cfg.resolution, FeatureRequest(patch=True))
    return compute(cfg, fs, split.num_classes, split.ignore_index)
