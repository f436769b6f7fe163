"""Evaluators by name: the plain dict ``EVALUATORS`` and the tagged union of their configs.

Adding an evaluator: write a module with a ``<Name>Config(EvalConfig)`` whose ``kind`` is a ``Literal``,
a frozen result dataclass with ``headline()``, and ``evaluate(config, ctx)``; then add one line here.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from franca_core.evaluation import hummingbird, knn, linear, linear_seg, logreg, ood, overcluster, pictures
from franca_core.evaluation.base import EvaluatorSpec

EVALUATORS: dict[str, EvaluatorSpec[Any]] = {
    "knn": EvaluatorSpec(knn.KnnConfig, knn.evaluate, "k-NN on CLS (DINOv2) + Matryoshka slice curve"),
    "linear": EvaluatorSpec(
        linear.LinearConfig, linear.evaluate, "linear heads over an lr grid, trained jointly"
    ),
    "logreg": EvaluatorSpec(logreg.LogRegConfig, logreg.evaluate, "L-BFGS logistic regression, C swept"),
    "hummingbird": EvaluatorSpec(
        hummingbird.HummingbirdConfig, hummingbird.evaluate, "in-context retrieval segmentation (mIoU)"
    ),
    "overcluster": EvaluatorSpec(
        overcluster.OverclusterConfig, overcluster.evaluate, "k-means on patches, greedy + Hungarian mIoU"
    ),
    "linear_seg": EvaluatorSpec(linear_seg.LinearSegConfig, linear_seg.evaluate, "1x1-conv probe on patches"),
    "ood": EvaluatorSpec(ood.OodConfig, ood.evaluate, "OOD detection: KNN distance and probe MSP"),
    "pictures": EvaluatorSpec(
        pictures.PicturesConfig, pictures.evaluate, "PCA-RGB and CLS attention pictures"
    ),
}

EvaluatorConfig = Annotated[
    knn.KnnConfig
    | linear.LinearConfig
    | logreg.LogRegConfig
    | hummingbird.HummingbirdConfig
    | overcluster.OverclusterConfig
    | linear_seg.LinearSegConfig
    | ood.OodConfig
    | pictures.PicturesConfig,
    Field(discriminator="kind"),
]
