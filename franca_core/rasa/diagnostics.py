"""Positional-bias diagnostics for RASA (Franca §3.3, Fig. 5; evaluation-protocols §8).

- ``position_probe``: a *fresh* linear probe (closed-form ridge regression with bias, float64) fitted from
  patch features to the normalised grid coordinates on one set of images and scored on held-out images:
  MSE, RMSE in patches and R² (1 - SSE / SST, per coordinate, averaged). It is independent of the RASA
  training, so it also sees position left outside the removed planes.
- ``cluster_position_entropy``: k-means over the patch features (z-scored, PCA), then for each cluster the
  histogram of its tokens over the grid positions; its entropy divided by log(N) is 1 when the cluster
  occurs equally at every position and 0 when it sits at one position. No public code exists (the paper's
  Figure 5); this is the reconstruction of evaluation-protocols §8.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from franca_core.rasa.head import grid_positions


@dataclass(frozen=True)
class ProbeScore:
    """A fresh linear position probe on held-out images; positions normalised to [0, 1]."""

    mse: float  # mean over tokens and both coordinates
    rmse_patches: float  # root-mean-square error in grid cells
    r2: float  # mean of the row and column R²
    r2_row: float
    r2_col: float


@dataclass(frozen=True)
class ClusterEntropy:
    """Cluster-position entropy of one feature set (Franca Fig. 5)."""

    entropies: tuple[float, ...]  # [K] normalised entropy of each cluster's position histogram
    sizes: tuple[int, ...]  # [K] tokens per cluster
    mean: float  # unweighted mean over non-empty clusters
    weighted_mean: float  # weighted by cluster size
    histograms: Tensor  # [K, gh, gw] token counts per position
    majority_map: Tensor  # [gh, gw] the most frequent cluster at each position

    @property
    def clusters(self) -> int:
        return len(self.entropies)


def _chunks(tokens: Tensor, grid: tuple[int, int], images: int = 64) -> Iterator[tuple[Tensor, Tensor]]:
    """(features [m * N, D], targets [m * N, 2]) in float64, for chunks of m images of tokens [M, N, D]."""
    n = tokens.shape[1]
    if n != grid[0] * grid[1]:
        raise ValueError(f"{n} tokens per image do not form a {grid[0]}x{grid[1]} grid")
    targets = grid_positions(grid, torch.float64)  # [N, 2]
    for start in range(0, tokens.shape[0], images):
        x = tokens[start : start + images].double()  # [m, N, D]
        yield x.reshape(-1, x.shape[-1]), targets.repeat(x.shape[0], 1)


def fit_position_probe(tokens: Tensor, grid: tuple[int, int], ridge: float = 1e-3) -> tuple[Tensor, Tensor]:
    """Least squares (weight [D, 2], bias [2]) from tokens [M, N, D] to the grid coordinates, float64.

    Sufficient statistics are accumulated over chunks of images; the ridge penalty is ``ridge`` times the mean
    eigenvalue of the centred Gram matrix, so it does not depend on the feature scale.
    """
    d = tokens.shape[-1]
    count, sx, sy = 0, torch.zeros(d, dtype=torch.float64), torch.zeros(2, dtype=torch.float64)
    xx, xy = torch.zeros(d, d, dtype=torch.float64), torch.zeros(d, 2, dtype=torch.float64)
    for x, y in _chunks(tokens, grid):
        count += x.shape[0]
        sx, sy, xx, xy = sx + x.sum(0), sy + y.sum(0), xx + x.T @ x, xy + x.T @ y
    x_mean, y_mean = sx / count, sy / count
    gram = xx - count * torch.outer(x_mean, x_mean)  # centred XᵀX [D, D]
    cross = xy - count * torch.outer(x_mean, y_mean)  # centred XᵀY [D, 2]
    penalty = ridge * float(torch.diagonal(gram).mean()) + 1e-12
    weight = torch.linalg.solve(gram + penalty * torch.eye(d, dtype=gram.dtype), cross)
    return weight, y_mean - x_mean @ weight


def score_position_probe(weight: Tensor, bias: Tensor, tokens: Tensor, grid: tuple[int, int]) -> ProbeScore:
    """MSE, RMSE (cells) and R² of the probe on tokens [M, N, D]; SST is taken around the targets' mean."""
    sse = torch.zeros(2, dtype=torch.float64)
    for x, y in _chunks(tokens, grid):
        sse += ((x @ weight + bias - y) ** 2).sum(0)
    targets = grid_positions(grid, torch.float64)
    count = tokens.shape[0] * targets.shape[0]
    sst = ((targets - targets.mean(0)) ** 2).sum(0) * tokens.shape[0]  # same grid in every image
    r2 = 1.0 - sse / sst
    cells = torch.tensor([grid[0] - 1, grid[1] - 1], dtype=torch.float64).clamp(min=1)
    return ProbeScore(
        mse=float(sse.sum() / (2 * count)),
        rmse_patches=float(((sse * cells**2).sum() / (2 * count)).sqrt()),
        r2=float(r2.mean()),
        r2_row=float(r2[0]),
        r2_col=float(r2[1]),
    )


def position_probe(
    train_tokens: Tensor, heldout_tokens: Tensor, grid: tuple[int, int], ridge: float = 1e-3
) -> ProbeScore:
    """Fit a fresh probe on ``train_tokens`` [M, N, D] and score it on ``heldout_tokens`` [M', N, D]."""
    weight, bias = fit_position_probe(train_tokens, grid, ridge)
    return score_position_probe(weight, bias, heldout_tokens, grid)


def kmeans_labels(features: np.ndarray, k: int, pca_dim: int, seed: int) -> np.ndarray:
    """k-means ids [P] of features [P, D] after z-scoring and PCA to ``pca_dim`` (overclustering recipe)."""
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA

    z = (features - features.mean(0)) / (features.std(0) + 1e-6)
    z = PCA(n_components=min(pca_dim, *z.shape), random_state=seed).fit_transform(z)
    km = KMeans(n_clusters=k, n_init=3, random_state=seed)
    return np.asarray(km.fit_predict(z.astype(np.float32)), dtype=np.int64)


def entropy_from_labels(labels: Tensor, grid: tuple[int, int], k: int) -> ClusterEntropy:
    """Cluster-position entropy from cluster ids [M, N] of M images with N = gh * gw tokens each."""
    n = grid[0] * grid[1]
    position = torch.arange(n).expand_as(labels)  # [M, N]
    hist = torch.zeros(k, n, dtype=torch.float64)
    hist.index_put_(
        (labels.reshape(-1), position.reshape(-1)),
        torch.ones(labels.numel(), dtype=torch.float64),
        accumulate=True,
    )
    sizes = hist.sum(1)  # [K]
    p = hist / sizes.clamp(min=1).unsqueeze(1)  # [K, N]
    plogp = torch.where(p > 0, p * p.clamp(min=1e-300).log(), torch.zeros_like(p))
    entropy = -plogp.sum(1) / np.log(n)  # [K], 1 = uniform over positions
    used = sizes > 0
    return ClusterEntropy(
        entropies=tuple(float(h) for h in entropy),
        sizes=tuple(int(s) for s in sizes),
        mean=float(entropy[used].mean()),
        weighted_mean=float((entropy * sizes).sum() / sizes.sum()),
        histograms=hist.reshape(k, *grid).float(),
        majority_map=hist.argmax(0).reshape(grid),
    )


def cluster_position_entropy(
    tokens: Tensor, grid: tuple[int, int], k: int = 16, pca_dim: int = 50, seed: int = 0
) -> ClusterEntropy:
    """k-means over every patch of tokens [M, N, D], then the entropy of each cluster's position histogram."""
    m, n, d = tokens.shape
    labels = kmeans_labels(tokens.reshape(m * n, d).float().numpy(), k, pca_dim, seed)
    return entropy_from_labels(torch.from_numpy(labels).reshape(m, n), grid, k)


__all__ = [
    "ClusterEntropy",
    "ProbeScore",
    "cluster_position_entropy",
    "entropy_from_labels",
    "fit_position_probe",
    "kmeans_labels",
    "position_probe",
    "score_position_probe",
]
