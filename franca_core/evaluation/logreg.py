"""Logistic regression on frozen CLS features (DINOv2 ``eval/log_regression.py``).

Protocol (``shared/reference/evaluation-protocols.md`` section 2b): raw ``x_norm_clstoken`` (no L2
normalisation) in float64; an L2-penalised multinomial logistic regression fitted by L-BFGS
(``max_iter=1000``; DINOv2 uses cuML with ``tol=1e-12``, here scikit-learn, where C has the same meaning);
C swept over ``10**linspace(-6, 5, 45)`` on a random 10 % of train held out with seed 0, chosen by top-1
(or mean per-class accuracy); the final model is refit on all of train with the chosen C and evaluated once.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from franca_core.evaluation.base import EvalContext
from franca_core.evaluation.config import EvalConfig


def dinov2_c_grid(num: int = 45) -> tuple[float, ...]:
    """``10**linspace(-6, 5, num)``: DINOv2's C sweep (45 values)."""
    return tuple(float(c) for c in np.logspace(-6, 5, num))


class LogRegConfig(EvalConfig):
    """scikit-learn L-BFGS logistic regression with a C sweep on a held-out part of train."""

    kind: Literal["logreg"] = "logreg"
    data: str
    """Name of a classification dataset of the suite."""
    train_split: str = "train"
    """Split the model is fitted on (10 % held out for the C sweep)."""
    eval_split: str = "val"
    """Split whose accuracy is reported."""
    resolution: int = 224
    """Crop size (DINOv2 log-reg uses Resize 224 + CenterCrop 224; here the shared eval transform)."""
    c_values: tuple[float, ...] = dinov2_c_grid()
    """Inverse regularisation strengths tried."""
    holdout_fraction: float = 0.1
    """Share of train held out to choose C."""
    metric: Literal["top1", "per_class"] = "top1"
    """Selection metric: top-1, or mean per-class accuracy (Pets, Flowers, Aircraft, Caltech)."""
    max_iter: int = 1000
    """L-BFGS iterations per fit."""
    tol: float = 1e-6
    """L-BFGS tolerance (DINOv2/cuML: 1e-12; looser here for CPU time)."""
    seed: int = 0
    """Seed of the holdout split."""


@dataclass(frozen=True)
class CScore:
    c: float
    holdout_score: float


@dataclass(frozen=True)
class LogRegResult:
    best_c: float
    top1: float
    top5: float
    per_class_accuracy: float
    sweep: tuple[CScore, ...]

    def headline(self) -> dict[str, float]:
        return {"top1": self.top1, "per_class_accuracy": self.per_class_accuracy, "best_C": self.best_c}


def _score(y: np.ndarray, pred: np.ndarray, metric: str) -> float:
    if metric == "top1":
        return float((pred == y).mean() * 100)
    return float(np.mean([(pred[y == c] == c).mean() for c in np.unique(y)]) * 100)


def _fit(x: np.ndarray, y: np.ndarray, c: float, cfg: LogRegConfig) -> LogisticRegression:
    model = LogisticRegression(C=c, solver="lbfgs", max_iter=cfg.max_iter, tol=cfg.tol)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x, y)
    return model


def sweep_c(x: np.ndarray, y: np.ndarray, cfg: LogRegConfig) -> tuple[float, list[CScore]]:
    """Score every C on a held-out part of (x, y); the best C (the first, most regularised, of ties)."""
    perm = np.random.default_rng(cfg.seed).permutation(len(y))
    cut = max(1, round(len(perm) * cfg.holdout_fraction))
    hold, fit = perm[:cut], perm[cut:]
    sweep = []
    for c in cfg.c_values:
        model = _fit(x[fit], y[fit], c, cfg)
        sweep.append(CScore(c, _score(y[hold], model.predict(x[hold]), cfg.metric)))
    return max(sweep, key=lambda s: s.holdout_score).c, sweep


def fit_probe(x: np.ndarray, y: np.ndarray, cfg: LogRegConfig) -> tuple[LogisticRegression, list[CScore]]:
    """The C sweep, then a refit on all of (x, y) with the chosen C."""
    x = x.astype(np.float64)
    best_c, sweep = sweep_c(x, y, cfg)
    return _fit(x, y, best_c, cfg), sweep


def compute(
    cfg: LogRegConfig, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray
) -> LogRegResult:
    """Sweep C on a held-out part of train, refit on all of train, score the test features."""
    model, sweep = fit_probe(x_train, y_train, cfg)
    x_test = x_test.astype(np.float64)
    proba = model.predict_proba(x_test)  # [N, C_seen]
    classes = model.classes_
    order = np.argsort(-proba, axis=1)
    pred = classes[order[:, 0]]
    top5 = (classes[order[:, :5]] == y_test[:, None]).any(axis=1)
    return LogRegResult(
        best_c=float(model.C),
        top1=float((pred == y_test).mean() * 100),
        top5=float(top5.mean() * 100),
        per_class_accuracy=_score(y_test, pred, "per_class"),
        sweep=tuple(sweep),
    )


def evaluate(cfg: LogRegConfig, ctx: EvalContext) -> LogRegResult:
    train = ctx.classification_features(cfg.data, cfg.train_split, cfg.resolution)
    test = ctx.classification_features(cfg.data, cfg.eval_split, cfg.resolution)
    return compute(cfg, train.cls.numpy(), train.targets.numpy(), test.cls.numpy(), test.targets.numpy())
