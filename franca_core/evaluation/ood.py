"""Out-of-distribution detection from frozen features: KNN distance score and linear-probe MSP.

Protocol facts (OpenOOD v1.5, ``shared/reference/evaluation-protocols.md`` section 6):
- KNN (Sun et al., "Out-of-Distribution Detection with Deep Nearest Neighbors", ICML 2022): L2-normalised
  features, score = minus the Euclidean distance to the K-th nearest ID-train feature (K = 50; OpenOOD
  adds 1e-10 after normalising, which changes no ranking and is omitted);
- MSP (Hendrycks & Gimpel, ICLR 2017): the largest softmax probability of a linear classifier on the ID
  train features (here the logistic-regression probe of ``logreg.py``, C swept on held-out train);
- metrics with OOD as the positive class: AUROC, FPR at 95 % TPR, AUPR-in, AUPR-out (percent).

OOD sets: other datasets (every image of ``ood_split``) and, with ``id_classes``, the val images of the
dataset's remaining classes (a near-OOD set built from one labelled dataset).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from franca_core.evaluation.base import EvalContext
from franca_core.evaluation.config import EvalConfig
from franca_core.evaluation.logreg import LogRegConfig, dinov2_c_grid, fit_probe
from franca_core.evaluation.metrics import OodMetrics, ood_metrics
from franca_core.evaluation.neighbours import SearchMethod, l2_normalize, search


class OodConfig(EvalConfig):
    """KNN and MSP OOD scores of ID val images against OOD image sets."""

    kind: Literal["ood"] = "ood"
    data: str
    """Name of the in-distribution classification dataset."""
    train_split: str = "train"
    """ID features for the KNN bank and the probe."""
    eval_split: str = "val"
    """ID test images."""
    resolution: int = 224
    """Crop size of the DINOv2 eval transform."""
    id_classes: tuple[int, ...] | None = None
    """Keep only these classes as ID; the others' ``eval_split`` images become the 'held-out classes' set."""
    ood_data: tuple[str, ...] = ()
    """Names of datasets used as OOD sets."""
    ood_split: str = "val"
    """Split read from each OOD dataset (ignored by unlabelled folders)."""
    knn_k: int = 50
    """Neighbour rank of the KNN score (clipped to the train size)."""
    search: SearchMethod = "faiss"
    """Exact search back-end."""
    probe_c_values: tuple[float, ...] = dinov2_c_grid(12)
    """C values swept for the MSP probe."""


@dataclass(frozen=True)
class OodSetResult:
    name: str
    num_images: int
    knn: OodMetrics
    msp: OodMetrics


@dataclass(frozen=True)
class OodResult:
    id_accuracy: float
    num_id_test: int
    knn_k: int
    sets: tuple[OodSetResult, ...]

    def headline(self) -> dict[str, float]:
        out = {"id_top1": self.id_accuracy}
        for s in self.sets:
            out[f"{s.name}_knn_auroc"] = s.knn.auroc
            out[f"{s.name}_msp_auroc"] = s.msp.auroc
        return out


def knn_scores(train: Tensor, test: Tensor, k: int, method: SearchMethod = "faiss") -> np.ndarray:
    """Minus the distance to the k-th nearest normalised train feature (higher = more ID)."""
    train_n, test_n = l2_normalize(train.float()), l2_normalize(test.float())
    k = min(k, train_n.shape[0])
    sims, _ = search(train_n, test_n, k, method)
    dist = (2.0 - 2.0 * sims[:, k - 1].double()).clamp(min=0).sqrt()
    return (-dist).numpy()


def compute(
    cfg: OodConfig,
    train: Tensor,
    train_labels: Tensor,
    id_test: Tensor,
    id_labels: Tensor,
    ood_sets: dict[str, Tensor],
) -> OodResult:
    """Fit the probe and the KNN bank on ID train; score ID test against each OOD set."""
    probe, _ = fit_probe(
        train.numpy(), train_labels.numpy(), LogRegConfig(data="", c_values=cfg.probe_c_values)
    )
    msp_id = probe.predict_proba(id_test.double().numpy()).max(axis=1)
    id_acc = float((probe.predict(id_test.double().numpy()) == id_labels.numpy()).mean() * 100)
    knn_id = knn_scores(train, id_test, cfg.knn_k, cfg.search)
    sets = []
    for name, feats in ood_sets.items():
        msp_ood = probe.predict_proba(feats.double().numpy()).max(axis=1)
        knn_ood = knn_scores(train, feats, cfg.knn_k, cfg.search)
        sets.append(
            OodSetResult(name, len(feats), ood_metrics(knn_id, knn_ood), ood_metrics(msp_id, msp_ood))
        )
    return OodResult(
        id_accuracy=id_acc, num_id_test=len(id_test), knn_k=min(cfg.knn_k, len(train)), sets=tuple(sets)
    )


def _keep(labels: Tensor, classes: tuple[int, ...] | None) -> Tensor:
    if classes is None:
        return torch.ones_like(labels, dtype=torch.bool)
    return torch.isin(labels, torch.tensor(classes))


def evaluate(cfg: OodConfig, ctx: EvalContext) -> OodResult:
    train = ctx.classification_features(cfg.data, cfg.train_split, cfg.resolution)
    test = ctx.classification_features(cfg.data, cfg.eval_split, cfg.resolution)
    keep_train, keep_test = _keep(train.targets, cfg.id_classes), _keep(test.targets, cfg.id_classes)
    ood_sets = {
        name: ctx.classification_features(name, cfg.ood_split, cfg.resolution).cls for name in cfg.ood_data
    }
    if cfg.id_classes is not None:
        ood_sets = {"heldout_classes": test.cls[~keep_test], **ood_sets}
    if not ood_sets:
        raise ValueError("the OOD evaluator needs ood_data or id_classes")
    return compute(
        cfg,
        train.cls[keep_train],
        train.targets[keep_train],
        test.cls[keep_test],
        test.targets[keep_test],
        ood_sets,
    )
