"""Evaluation suites: which datasets, which evaluators, with which protocol parameters.

Built-in suites (``franca eval --suite NAME``), each a function returning a frozen :class:`SuiteConfig`:

- ``quick``: every evaluator on the photographs scikit-image ships (crops as classes, Voronoi mosaics as
  segmentation), protocols scaled down for a CPU in minutes. Needs no ``../shared`` and no download.
- ``shared``: ``../shared/datasets`` (override with ``FRANCA_SHARED_DATASETS``): clothing-10 for the
  image-level evaluators (held-out classes and CamVid frames as OOD), CamVid (11 classes, ignore 11) for
  the dense ones; protocol parameters as the papers', except where a note says otherwise.
- ``paper``: the published protocols on ImageNet-1k, Pascal VOC 2012, ADE20K and the OpenOOD ImageNet OOD
  sets; give their roots with ``--data NAME=PATH`` (``imagenet``, ``voc``, ``ade20k``, ``ninco``,
  ``ssb_hard``, ``inaturalist``, ``textures``, ``openimage_o``).

A YAML file with the same fields defines a custom suite.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

import yaml
from pydantic import model_validator

from franca_core.evaluation.config import (
    Ade20kData,
    DatasetConfig,
    ImageFolderData,
    MaskFolderData,
    SampleClassificationData,
    SampleMosaicData,
    StrictModel,
    UnlabeledFolderData,
    VocData,
)
from franca_core.evaluation.registry import EvaluatorConfig

UNSET_ROOT = "UNSET"


class SuiteConfig(StrictModel):
    """A named set of datasets and the evaluators run on them."""

    name: str
    """Suite name, written to results.json."""
    description: str = ""
    """One line on what the suite measures."""
    datasets: dict[str, DatasetConfig]
    """Datasets by the name evaluators use to refer to them."""
    evaluators: tuple[EvaluatorConfig, ...]
    """Evaluators in run order."""

    @model_validator(mode="after")
    def _check_references(self) -> SuiteConfig:
        keys = [e.key for e in self.evaluators]
        if len(keys) != len(set(keys)):
            raise ValueError(f"evaluator keys must be unique (add a tag): {keys}")
        for e in self.evaluators:
            names = [e.data, *getattr(e, "ood_data", ())]
            missing = [n for n in names if n not in self.datasets]
            if missing:
                raise ValueError(f"evaluator {e.key!r} refers to undefined datasets {missing}")
        return self


def quick_suite() -> SuiteConfig:
    """Every evaluator on scikit-image photographs; CPU minutes; protocols scaled down (K, seeds, steps)."""
    other = ("camera", "moon", "coins", "page", "text", "cell", "colorwheel", "clock")
    return SuiteConfig.model_validate(
        {
            "name": "quick",
            "description": "all evaluators on scikit-image sample photographs (no download, CPU minutes)",
            "datasets": {
                "photos": SampleClassificationData(per_class={"train": 24, "val": 8}),
                "other_photos": SampleClassificationData(per_class={"val": 4}, sources=other, seed=1),
                "mosaics": SampleMosaicData(count={"train": 24, "val": 16}),
            },
            "evaluators": [
                {"kind": "knn", "data": "photos"},
                {"kind": "linear", "data": "photos", "iterations": 300},
                {"kind": "logreg", "data": "photos", "c_values": [10.0**e for e in range(-4, 4)]},
                {
                    "kind": "ood",
                    "data": "photos",
                    "id_classes": list(range(7)),
                    "knn_k": 5,
                    "ood_data": ["other_photos"],
                },
                {"kind": "hummingbird", "data": "mosaics", "resolution": 224},
                {
                    "kind": "overcluster",
                    "data": "mosaics",
                    "resolution": 224,
                    "num_clusters": [20, 50],
                    "seeds": [0, 1, 2],
                    "niter": 30,
                    "nredo": 1,
                },
                {
                    "kind": "linear_seg",
                    "data": "mosaics",
                    "resolution": 224,
                    "epochs": 30,
                    "drop_at": 25,
                    "batch_size": 8,
                },
                {"kind": "pictures", "data": "mosaics", "resolution": 224, "num_images": 3},
            ],
        }
    )


def shared_datasets_root() -> Path:
    """``$FRANCA_SHARED_DATASETS``, else ``<repo>/../shared/datasets``."""
    env = os.environ.get("FRANCA_SHARED_DATASETS")
    return Path(env) if env else Path(__file__).resolve().parents[3] / "shared" / "datasets"


CAMVID_CLASSES = [
    "Sky",
    "Building",
    "Pole",
    "Road",
    "Pavement",
    "Tree",
    "SignSymbol",
    "Fence",
    "Car",
    "Pedestrian",
    "Bicyclist",
]


def shared_suite(root: Path | None = None) -> SuiteConfig:
    """clothing-10 (image level) and CamVid (dense) from ``../shared/datasets``."""
    root = root or shared_datasets_root()
    return SuiteConfig.model_validate(
        {
            "name": "shared",
            "description": "clothing-10 classification/OOD and CamVid segmentation from ../shared/datasets",
            "datasets": {
                "clothing10": ImageFolderData(root=root / "clothing10"),
                "camvid": MaskFolderData(
                    root=root / "camvid", num_classes=11, ignore_index=11, class_names=CAMVID_CLASSES
                ),
                "camvid_frames": UnlabeledFolderData(root=root / "camvid" / "images" / "test"),
            },
            "evaluators": [
                {"kind": "knn", "data": "clothing10", "eval_split": "test"},
                {"kind": "linear", "data": "clothing10", "eval_split": "test"},
                {"kind": "logreg", "data": "clothing10", "eval_split": "test", "metric": "per_class"},
                {
                    "kind": "ood",
                    "data": "clothing10",
                    "eval_split": "test",
                    "id_classes": [0, 2, 3, 4, 5, 7, 8, 9],  # hat and shoes held out as near-OOD
                    "ood_data": ["camvid_frames"],  # street scenes as far-OOD
                    "knn_k": 20,  # ~250 train images per class here, vs 1,300 on ImageNet (k = 50)
                },
                {"kind": "hummingbird", "data": "camvid"},
                {"kind": "overcluster", "data": "camvid"},
                # batch 16 instead of 128: CamVid train has 367 images, 128 would give 75 steps in all
                {"kind": "linear_seg", "data": "camvid", "batch_size": 16},
                {"kind": "pictures", "data": "camvid"},
            ],
        }
    )


def paper_suite() -> SuiteConfig:
    """The published protocols; dataset roots must be given with ``--data NAME=PATH``."""
    unset = Path(UNSET_ROOT)
    ood_names = ("ninco", "ssb_hard", "inaturalist", "textures", "openimage_o")
    voc_hb = {
        "data": "voc",
        "train_split": "trainaug",
        "resolution": 504,
        "augmentation_epochs": 2,
        "memory_size": 10_240_000,
        "ignore_to": 0,
    }
    return SuiteConfig.model_validate(
        {
            "name": "paper",
            "description": "ImageNet k-NN/linear/OOD, VOC + ADE20K dense protocols as published",
            "datasets": {
                "imagenet": ImageFolderData(root=unset),
                "voc": VocData(root=unset),
                "ade20k": Ade20kData(root=unset),
                **{name: UnlabeledFolderData(root=unset) for name in ood_names},
            },
            "evaluators": [
                {"kind": "knn", "data": "imagenet"},
                {"kind": "linear", "data": "imagenet", "iterations": 12_500, "selection": "eval"},
                {"kind": "ood", "data": "imagenet", "ood_data": list(ood_names)},
                {"kind": "hummingbird", "tag": "voc", **voc_hb},
                {
                    "kind": "hummingbird",
                    "tag": "ade20k",
                    **voc_hb,
                    "data": "ade20k",
                    "train_split": "training",
                    "eval_split": "validation",
                    "ignore_to": None,
                },
                {"kind": "overcluster", "data": "voc"},
                {"kind": "linear_seg", "tag": "voc", "data": "voc", "train_split": "trainaug"},
                {
                    "kind": "linear_seg",
                    "tag": "ade20k",
                    "data": "ade20k",
                    "train_split": "training",
                    "eval_split": "validation",
                },
                {"kind": "pictures", "data": "voc"},
            ],
        }
    )


BUILTIN_SUITES: dict[str, Callable[[], SuiteConfig]] = {
    "quick": quick_suite,
    "shared": shared_suite,
    "paper": paper_suite,
}


def with_data_roots(suite: SuiteConfig, roots: Mapping[str, Path]) -> SuiteConfig:
    """The suite with dataset roots (``root``, or ``path`` for manifests) replaced by name."""
    datasets = suite.model_dump()["datasets"]
    for name, path in roots.items():
        if name not in datasets:
            raise KeyError(
                f"--data {name}=...: the suite has no dataset {name!r} (it has {sorted(datasets)})"
            )
        field = "path" if datasets[name]["kind"] == "manifest" else "root"
        datasets[name][field] = Path(path)
    return SuiteConfig.model_validate({**suite.model_dump(), "datasets": datasets})


def unset_datasets(suite: SuiteConfig, used: set[str]) -> list[str]:
    """Names of datasets the evaluators use whose root was never given."""
    return sorted(n for n in used if str(getattr(suite.datasets[n], "root", "")) == UNSET_ROOT)


def load_suite(name_or_path: str, roots: Mapping[str, Path] | None = None) -> SuiteConfig:
    """A built-in suite by name, or a YAML file; then the ``roots`` overrides."""
    if name_or_path in BUILTIN_SUITES:
        suite = BUILTIN_SUITES[name_or_path]()
    else:
        path = Path(name_or_path)
        if not path.is_file():
            raise FileNotFoundError(
                f"no built-in suite {name_or_path!r} ({sorted(BUILTIN_SUITES)}) and no such file"
            )
        suite = SuiteConfig.model_validate(yaml.safe_load(path.read_text()))
    return with_data_roots(suite, roots or {})
