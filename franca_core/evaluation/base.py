"""The one small interface every evaluator shares (in the spirit of big_vision's evaluators).

An evaluator is a function ``evaluate(config, ctx) -> result``: ``config`` is its frozen pydantic
protocol config (a subclass of :class:`~franca_core.evaluation.config.EvalConfig`), ``ctx`` gives it
features of named dataset splits and a folder for plots, and ``result`` is a frozen dataclass whose
``headline()`` names the few numbers worth a summary line. Evaluators are chosen by name from the plain
dict ``EVALUATORS`` in ``registry.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import torch
from torch import nn

from franca_core.evaluation import datasets as ds
from franca_core.evaluation.config import DatasetConfig, EvalConfig
from franca_core.evaluation.features import FeatureRequest, FeatureSet, FeatureSource
from franca_core.evaluation.transforms import ClassificationDataset, HbirdAugment, SegmentationDataset

DEFAULT_CLASSIFICATION_REQUEST = FeatureRequest(last_blocks=4)


class EvalResult(Protocol):
    """What every evaluator returns: a dataclass with its metrics and a short headline."""

    def headline(self) -> dict[str, float]: ...


ConfigT = TypeVar("ConfigT", bound=EvalConfig)
ResultT = TypeVar("ResultT", bound=EvalResult, covariant=True)


@dataclass(frozen=True)
class EvaluatorSpec(Generic[ConfigT]):
    """A registry entry: the evaluator's config type and its function."""

    config: type[ConfigT]
    evaluate: Callable[[ConfigT, EvalContext], EvalResult]
    summary: str


@dataclass
class EvalContext:
    """Features of named datasets for the evaluators of one suite run (memoised in memory)."""

    source: FeatureSource
    datasets: Mapping[str, DatasetConfig]
    out_dir: Path
    backbone: nn.Module | None = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    _splits: dict[tuple[str, str], Any] = field(default_factory=dict, repr=False)
    _features: dict[tuple[Any, ...], FeatureSet] = field(default_factory=dict, repr=False)

    def _config(self, name: str, task: str) -> DatasetConfig:
        if name not in self.datasets:
            raise KeyError(f"unknown dataset {name!r}; the suite defines {sorted(self.datasets)}")
        cfg = self.datasets[name]
        if cfg.task != task:
            raise ValueError(f"dataset {name!r} is a {cfg.task} dataset, a {task} one is needed")
        return cfg

    def classification_split(self, name: str, split: str) -> ds.ClassificationSplit:
        key = (name, split)
        if key not in self._splits:
            self._splits[key] = self._config(name, "classification").load(split)
        return self._splits[key]  # type: ignore[no-any-return]

    def segmentation_split(self, name: str, split: str) -> ds.SegmentationSplit:
        key = (name, split)
        if key not in self._splits:
            self._splits[key] = self._config(name, "segmentation").load(split)
        return self._splits[key]  # type: ignore[no-any-return]

    def classification_features(
        self, name: str, split: str, resolution: int, request: FeatureRequest | None = None
    ) -> FeatureSet:
        """Features of a classification split under the DINOv2 eval transform; targets = labels."""
        # One pass gives CLS, the last 4 blocks' CLS and avgpool: every image-level evaluator shares it.
        request = request or DEFAULT_CLASSIFICATION_REQUEST
        key = ("cls", name, split, resolution, request)
        if key not in self._features:
            data = ClassificationDataset(self.classification_split(name, split), resolution)
            self._features[key] = self.source.extract(data, request)
        return self._features[key]

    def segmentation_features(
        self,
        name: str,
        split: str,
        resolution: int,
        request: FeatureRequest | None = None,
        augment: HbirdAugment | None = None,
    ) -> FeatureSet:
        """Features of a segmentation split resized to ``resolution``; targets = masks at that size."""
        request = request or FeatureRequest(patch=True)
        key = ("seg", name, split, resolution, request, augment)
        if key not in self._features:
            data = SegmentationDataset(self.segmentation_split(name, split), resolution, augment)
            self._features[key] = self.source.extract(data, request)
        return self._features[key]

    def plot_path(self, config: EvalConfig, name: str) -> Path:
        """Where an evaluator writes a plot: ``out_dir/plots/<kind>[_<tag>]_<name>.png``."""
        folder = self.out_dir / "plots"
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"{config.key.replace('/', '_')}_{name}.png"
