"""Weighted k-NN classification (DINOv2 protocol) and the Matryoshka truncation curve (Franca Fig. 3).

k-NN, as ``dinov2/eval/knn.py`` (identical in ``franca/eval/knn.py``): L2-normalised ``x_norm_clstoken``,
cosine similarity to every train feature, the top ``max(ks)`` neighbours, weights
``softmax(sim / T)`` over those ``max(ks)`` neighbours (T = 0.07), and for each k the class score is the
weight sum of the first k neighbours' one-hot labels. Top-1 / top-5 accuracy in percent.

Matryoshka curve (Franca arXiv 2507.14137 Fig. 3; no released script): the same k-NN on the first
m = d, d/2, ..., d/64 dimensions of the CLS feature, L2-normalised after slicing; the PCA-to-m baseline
projects onto the top-m principal directions of the train features instead, which separates "ordered
dimensions" from "low intrinsic dimension". The raw (uncentred) features are projected, so at m = d the
projection is a rotation and both curves start from the same full-feature accuracy (centring alone can
change cosine k-NN a lot when features share a large common component).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from franca_core.evaluation.base import EvalContext
from franca_core.evaluation.config import EvalConfig
from franca_core.evaluation.neighbours import SearchMethod, build_index, l2_normalize
from franca_core.evaluation.pca import Pca
from franca_core.evaluation.plots import plot_curves


class KnnConfig(EvalConfig):
    """DINOv2 k-NN on the CLS token, plus the Matryoshka slice curve."""

    kind: Literal["knn"] = "knn"
    data: str
    """Name of a classification dataset of the suite."""
    train_split: str = "train"
    """Split used as the neighbour bank."""
    eval_split: str = "val"
    """Split whose accuracy is reported."""
    resolution: int = 224
    """Crop size of the DINOv2 eval transform (Resize 256/224 x res, CenterCrop res)."""
    ks: tuple[int, ...] = (10, 20, 100, 200)
    """Numbers of neighbours (DINOv2 default)."""
    temperature: float = 0.07
    """Softmax temperature of the neighbour weights."""
    search: SearchMethod = "torch"
    """Exact search back-end."""
    matryoshka_levels: int = 7
    """Points of the slice curve: d, d/2, ... d/2**(levels-1); 0 disables the curve."""
    matryoshka_k: int = 20
    """k used for the slice curve."""
    pca_baseline: bool = True
    """Also run k-NN on the top-m PCA projection for each m of the curve."""


@dataclass(frozen=True)
class KnnAccuracy:
    k: int
    top1: float
    top5: float


@dataclass(frozen=True)
class MatryoshkaPoint:
    dim: int
    top1_slice: float
    top1_pca: float | None


@dataclass(frozen=True)
class KnnResult:
    accuracies: tuple[KnnAccuracy, ...]
    best_k: int
    best_top1: float
    matryoshka: tuple[MatryoshkaPoint, ...]
    n_train: int
    n_eval: int
    plots: tuple[str, ...] = ()

    def headline(self) -> dict[str, float]:
        out = {f"top1@k{a.k}": a.top1 for a in self.accuracies}
        out.update({f"slice_top1@d{p.dim}": p.top1_slice for p in self.matryoshka[-1:]})
        return out


def knn_votes(
    sims: Tensor, idx: Tensor, train_labels: Tensor, ks: Sequence[int], temperature: float, num_classes: int
) -> Tensor:
    """Class scores [len(ks), B, C] from sorted neighbour similarities and indices [B, max_k]."""
    weights = (sims / temperature).softmax(dim=1)  # over all max_k neighbours, as DINOv2
    onehot = torch.nn.functional.one_hot(train_labels[idx], num_classes).to(weights.dtype)  # [B, max_k, C]
    cumulative = (weights.unsqueeze(-1) * onehot).cumsum(dim=1)  # [B, max_k, C]
    return torch.stack([cumulative[:, min(k, idx.shape[1]) - 1] for k in ks])


def knn_predict_topk(
    train: Tensor,
    train_labels: Tensor,
    test: Tensor,
    ks: Sequence[int],
    temperature: float = 0.07,
    num_classes: int | None = None,
    method: SearchMethod = "torch",
    chunk: int = 256,
) -> Tensor:
    """Top-5 (or top-C) predicted classes [len(ks), N_test, min(5, C)] of the weighted k-NN vote."""
    c = int(train_labels.max().item()) + 1 if num_classes is None else num_classes
    train_n, test_n = l2_normalize(train.float()), l2_normalize(test.float())
    max_k = min(max(ks), train_n.shape[0])
    out = []
    index = build_index(train_n, method)
    for start in range(0, test_n.shape[0], chunk):
        sims, idx = index.search(test_n[start : start + chunk], max_k)
        votes = knn_votes(sims, idx, train_labels, ks, temperature, c)
        out.append(votes.topk(min(5, c), dim=-1).indices)
    return torch.cat(out, dim=1)


def knn_accuracies(
    train: Tensor, train_labels: Tensor, test: Tensor, test_labels: Tensor, ks: Sequence[int], **kw: object
) -> list[KnnAccuracy]:
    """Top-1 / top-5 accuracy (percent) of the k-NN vote for each k."""
    top = knn_predict_topk(train, train_labels, test, ks, **kw)  # type: ignore[arg-type]
    hits = top == test_labels[None, :, None]  # [K, N, 5]
    return [
        KnnAccuracy(
            k=k,
            top1=float(hits[i, :, 0].float().mean() * 100),
            top5=float(hits[i].any(-1).float().mean() * 100),
        )
        for i, k in enumerate(ks)
    ]


def matryoshka_dims(dim: int, levels: int) -> list[int]:
    """d, d/2, ..., d/2**(levels-1), stopping before a dimension below 1."""
    return [dim >> j for j in range(levels) if dim >> j >= 1]


def matryoshka_curve(
    train: Tensor,
    train_labels: Tensor,
    test: Tensor,
    test_labels: Tensor,
    dims: Sequence[int],
    k: int = 20,
    temperature: float = 0.07,
    pca: bool = True,
    method: SearchMethod = "torch",
) -> list[MatryoshkaPoint]:
    """k-NN top-1 on the first m dims (normalised after slicing) and on PCA-to-m, for each m."""
    c = int(torch.cat([train_labels, test_labels]).max().item()) + 1
    basis = Pca.fit(train) if pca else None
    points = []
    for m in dims:
        acc_slice = knn_accuracies(
            train[:, :m],
            train_labels,
            test[:, :m],
            test_labels,
            [k],
            temperature=temperature,
            num_classes=c,
            method=method,
        )[0].top1
        acc_pca = None
        if basis is not None:
            acc_pca = knn_accuracies(
                basis.transform(train, m, centre=False),
                train_labels,
                basis.transform(test, m, centre=False),
                test_labels,
                [k],
                temperature=temperature,
                num_classes=c,
                method=method,
            )[0].top1
        points.append(MatryoshkaPoint(dim=m, top1_slice=acc_slice, top1_pca=acc_pca))
    return points


def compute(
    cfg: KnnConfig, train: Tensor, train_labels: Tensor, test: Tensor, test_labels: Tensor
) -> KnnResult:
    """The k-NN table and the slice curve on given CLS features (no plots)."""
    c = int(torch.cat([train_labels, test_labels]).max().item()) + 1
    accs = knn_accuracies(
        train,
        train_labels,
        test,
        test_labels,
        cfg.ks,
        temperature=cfg.temperature,
        num_classes=c,
        method=cfg.search,
    )
    best = max(accs, key=lambda a: a.top1)
    curve: list[MatryoshkaPoint] = []
    if cfg.matryoshka_levels > 0:
        dims = matryoshka_dims(train.shape[1], cfg.matryoshka_levels)
        curve = matryoshka_curve(
            train,
            train_labels,
            test,
            test_labels,
            dims,
            cfg.matryoshka_k,
            cfg.temperature,
            cfg.pca_baseline,
            cfg.search,
        )
    return KnnResult(tuple(accs), best.k, best.top1, tuple(curve), len(train), len(test))


def evaluate(cfg: KnnConfig, ctx: EvalContext) -> KnnResult:
    train = ctx.classification_features(cfg.data, cfg.train_split, cfg.resolution)
    test = ctx.classification_features(cfg.data, cfg.eval_split, cfg.resolution)
    result = compute(cfg, train.cls, train.targets, test.cls, test.targets)
    if not result.matryoshka:
        return result
    path = ctx.plot_path(cfg, "matryoshka")
    dims = [p.dim for p in result.matryoshka]
    curves = {"first m dims": [p.top1_slice for p in result.matryoshka]}
    if cfg.pca_baseline:
        curves["PCA to m"] = [p.top1_pca or 0.0 for p in result.matryoshka]
    plot_curves(
        dims, curves, path, xlabel="dimension m", ylabel=f"k-NN top-1 (k={cfg.matryoshka_k}) %", logx=True
    )
    return KnnResult(**{**result.__dict__, "plots": (str(path.relative_to(ctx.out_dir)),)})
