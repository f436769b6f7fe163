"""Metrics shared by the evaluators: accuracy, segmentation mIoU with cluster matching, OOD scores.

Protocol sources (see ``shared/reference/evaluation-protocols.md``):
- mIoU from a streaming confusion matrix built with ``bincount`` (open-hummingbird-eval v2 ``PredsmIoU``),
  with Hungarian matching on ``1 - IoU`` (hbird's default) and greedy many-to-one matching by precision
  (Leopart / NeCo overclustering).
- OOD metrics as OpenOOD v1.5 ``compute_all_metrics``: OOD is the positive class, the detector's score is
  "higher = more in-distribution", AUROC from ``roc_curve(ood, -score)``, FPR at 95 % TPR on that curve.

Conventions: a confusion matrix is ``conf[pred, target]`` with int64 counts. Prediction ids at or beyond the
number of target classes are "void" predictions (an unmatched cluster): they count as false negatives of
their target class and as false positives of nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from sklearn import metrics as skm
from torch import Tensor


def topk_accuracy(scores: Tensor, labels: Tensor, k: int = 1) -> float:
    """Percentage of rows whose label is among the ``k`` highest scores. scores [N, C], labels [N]."""
    k = min(k, scores.shape[1])
    top = scores.topk(k, dim=1).indices  # [N, k]
    return float((top == labels[:, None]).any(dim=1).float().mean().item() * 100.0)


def balanced_accuracy(pred: Tensor, labels: Tensor, num_classes: int) -> float:
    """Mean per-class recall in percent, over the classes present in ``labels``."""
    recalls = []
    for c in range(num_classes):
        sel = labels == c
        if sel.any():
            recalls.append((pred[sel] == c).float().mean().item())
    return float(np.mean(recalls) * 100.0) if recalls else float("nan")


def confusion_matrix(
    pred: Tensor, target: Tensor, num_pred: int, num_classes: int, ignore_index: int
) -> Tensor:
    """Counts ``conf[p, t]`` over all pixels whose target is not ``ignore_index``.

    pred and target are integer tensors of the same shape; pred ids lie in [0, num_pred), target ids in
    [0, num_classes) or equal ``ignore_index``.
    """
    if pred.shape != target.shape:
        raise ValueError(f"prediction shape {tuple(pred.shape)} != target shape {tuple(target.shape)}")
    pred = pred.reshape(-1).long()
    target = target.reshape(-1).long()
    keep = target != ignore_index
    pred, target = pred[keep], target[keep]
    if target.numel() and (target.min() < 0 or target.max() >= num_classes):
        raise ValueError(
            f"target ids outside [0, {num_classes}) that are not the ignore index {ignore_index}"
        )
    if pred.numel() and (pred.min() < 0 or pred.max() >= num_pred):
        raise ValueError(f"prediction ids outside [0, {num_pred})")
    flat = pred * num_classes + target
    return torch.bincount(flat, minlength=num_pred * num_classes).reshape(num_pred, num_classes)


def iou_per_class(conf: Tensor) -> np.ndarray:
    """IoU of each target class from ``conf[pred, target]`` with ``pred`` rows >= C meaning void.

    Returns a float64 array of length C with NaN where a class is neither present nor predicted.
    """
    c = conf.shape[1]
    conf64 = conf.double()
    tp = torch.diagonal(conf64[:c, :c])
    fp = conf64[:c].sum(dim=1) - tp  # predicted c, target another class
    fn = conf64.sum(dim=0) - tp  # target c, predicted another class or void
    denom = tp + fp + fn
    iou = torch.where(denom > 0, tp / denom.clamp(min=1), torch.full_like(tp, float("nan")))
    return iou.numpy()


def mean_iou(conf: Tensor) -> float:
    """Mean IoU in percent over the classes with a non-empty union (NaN-mean)."""
    iou = iou_per_class(conf)
    return float(np.nanmean(iou) * 100.0) if np.isfinite(iou).any() else float("nan")


def hungarian_mapping(conf: Tensor) -> np.ndarray:
    """One-to-one map from prediction ids to target ids maximising the matched IoU (cost ``1 - IoU``).

    conf is [P, C]; returns an int array of length P, with -1 for predictions left unmatched (P > C).
    """
    p = conf.shape[0]
    conf64 = conf.double().numpy()
    tp = conf64
    pred_tot = conf64.sum(axis=1, keepdims=True)  # [P, 1]
    tgt_tot = conf64.sum(axis=0, keepdims=True)  # [1, C]
    union = pred_tot + tgt_tot - tp
    iou = np.divide(tp, union, out=np.zeros_like(tp), where=union > 0)
    rows, cols = linear_sum_assignment(1.0 - iou)
    mapping = np.full(p, -1, dtype=np.int64)
    mapping[rows] = cols
    return mapping


def greedy_many_to_one_mapping(conf: Tensor) -> np.ndarray:
    """Each prediction id goes to the target class with the highest precision TP / (TP + FP).

    For a fixed prediction id the precision denominator is the row total, so this is the row argmax.
    Predictions that never occur are left unmatched (-1).
    """
    mapping = conf.argmax(dim=1).numpy().astype(np.int64)
    mapping[conf.sum(dim=1).numpy() == 0] = -1
    return mapping


def remap_confusion(conf: Tensor, mapping: np.ndarray) -> Tensor:
    """Merge prediction rows through ``mapping`` into a [C + 1, C] matrix (last row = void)."""
    c = conf.shape[1]
    rows = torch.as_tensor(np.where(mapping < 0, c, mapping), dtype=torch.long)
    out = torch.zeros(c + 1, c, dtype=conf.dtype)
    out.index_add_(0, rows, conf)
    return out


@dataclass(frozen=True)
class OodMetrics:
    """OpenOOD-style detection metrics in percent (OOD = positive class)."""

    auroc: float
    fpr_at_95_tpr: float
    aupr_in: float
    aupr_out: float


def ood_metrics(id_scores: np.ndarray, ood_scores: np.ndarray) -> OodMetrics:
    """Metrics for a detector whose score is higher for in-distribution samples."""
    scores = np.concatenate([id_scores, ood_scores]).astype(np.float64)
    is_ood = np.concatenate([np.zeros(len(id_scores)), np.ones(len(ood_scores))])
    fpr, tpr, _ = skm.roc_curve(is_ood, -scores)
    auroc = skm.auc(fpr, tpr)
    fpr95 = float(fpr[np.argmax(tpr >= 0.95)])
    aupr_out = skm.average_precision_score(is_ood, -scores)
    aupr_in = skm.average_precision_score(1 - is_ood, scores)
    return OodMetrics(
        auroc=float(auroc * 100),
        fpr_at_95_tpr=fpr95 * 100,
        aupr_in=float(aupr_in * 100),
        aupr_out=float(aupr_out * 100),
    )
