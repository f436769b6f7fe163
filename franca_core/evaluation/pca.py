"""Principal component analysis in torch (float64 covariance + ``eigh``), shared by the evaluators.

Used by the Matryoshka PCA-to-m baseline, the PCA-50 step of overclustering (Leopart / NeCo use faiss
``PCAMatrix``; the projection is the same up to the signs of the components) and the PCA-RGB pictures.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class Pca:
    """Mean [D] and principal directions [D, D] as columns, by decreasing variance."""

    mean: Tensor
    components: Tensor
    variances: Tensor

    @classmethod
    def fit(cls, x: Tensor) -> Pca:
        x64 = x.double()
        mean = x64.mean(dim=0)
        centred = x64 - mean
        cov = centred.T @ centred / max(1, x64.shape[0] - 1)
        vals, vecs = torch.linalg.eigh(cov)  # ascending
        return cls(mean.float(), vecs.flip(1).float(), vals.flip(0).clamp(min=0).float())

    def transform(self, x: Tensor, m: int, centre: bool = True) -> Tensor:
        """Coordinates [N, m] of the rows of ``x`` on the top-m components (``centre=False``: of the raw
        rows, so that m = D is a pure rotation)."""
        x = x.float() - self.mean if centre else x.float()
        return x @ self.components[:, :m]


def standardize(x: Tensor, eps: float = 1e-6) -> Tensor:
    """Per-dimension z-score (scikit-learn ``StandardScaler`` with population std)."""
    x = x.float()
    return (x - x.mean(dim=0)) / x.std(dim=0, unbiased=False).clamp(min=eps)


def minmax(x: Tensor, dim: int = 0) -> Tensor:
    """Scale each column (``dim=0``) to [0, 1]; constant columns become 0."""
    lo = x.min(dim=dim, keepdim=True).values
    hi = x.max(dim=dim, keepdim=True).values
    return (x - lo) / (hi - lo).clamp(min=1e-12)
