"""Projection heads: Matryoshka (nested) clustering heads and the plain DINOv2 head (reference §3.1)."""

from franca_core.heads.layers import WeightNormPrototypes, build_mlp, count_parameters
from franca_core.heads.matryoshka import (
    DINOHead,
    HeadMode,
    HeadOutput,
    MatryoshkaHead,
    MatryoshkaMode,
    ProjectionHead,
    build_head,
    head_parameter_count,
    nesting_dims,
    prototype_counts,
)

__all__ = [
    "DINOHead",
    "HeadMode",
    "HeadOutput",
    "MatryoshkaHead",
    "MatryoshkaMode",
    "ProjectionHead",
    "WeightNormPrototypes",
    "build_head",
    "build_mlp",
    "count_parameters",
    "head_parameter_count",
    "nesting_dims",
    "prototype_counts",
]
