"""Typed configuration of evaluation data: one frozen pydantic model per dataset kind.

Each dataset config knows how to read one split (``load(split)``). Evaluator configs (one per evaluator
module) derive from :class:`EvalConfig`; a suite (``suites.py``) names its datasets and lists evaluators
that refer to them by name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from franca_core.evaluation import datasets as ds
from franca_core.evaluation.sample_data import CLASSIFICATION_SOURCES, sample_classification, sample_mosaics

Task = Literal["classification", "segmentation"]


class StrictModel(BaseModel):
    """Frozen, and unknown keys are errors (a typo in a YAML suite fails loudly)."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class _DataBase(StrictModel):
    task: ClassVar[Task]
    max_images: int | None = None
    """Keep a fixed random subset (seed 0) of at most this many images per split; None keeps all."""

    def _subset_indices(self, n: int) -> list[int] | None:
        if self.max_images is None or n <= self.max_images:
            return None
        return sorted(np.random.default_rng(0).choice(n, self.max_images, replace=False).tolist())


class _ClassificationData(_DataBase):
    task: ClassVar[Task] = "classification"

    def load(self, split: str) -> ds.ClassificationSplit:
        data = self._read(split)
        idx = self._subset_indices(len(data))
        return data if idx is None else data.subset(idx)

    def _read(self, split: str) -> ds.ClassificationSplit:
        raise NotImplementedError


class _SegmentationData(_DataBase):
    task: ClassVar[Task] = "segmentation"

    def load(self, split: str) -> ds.SegmentationSplit:
        data = self._read(split)
        idx = self._subset_indices(len(data))
        return data if idx is None else data.subset(idx)

    def _read(self, split: str) -> ds.SegmentationSplit:
        raise NotImplementedError


class ImageFolderData(_ClassificationData):
    """``root/<split>/<class>/*.jpg`` (ImageNet, clothing-10)."""

    kind: Literal["image_folder"] = "image_folder"
    root: Path
    """Dataset root holding one folder per split."""
    classes: tuple[str, ...] | None = None
    """Class folder names in label order; None: sorted folder names of the split."""

    def _read(self, split: str) -> ds.ClassificationSplit:
        return ds.read_image_folder(self.root, split, self.classes)


class ManifestData(_ClassificationData):
    """A CSV with ``path,label[,split]`` columns."""

    kind: Literal["manifest"] = "manifest"
    path: Path
    """The CSV file; image paths are relative to its folder."""

    def _read(self, split: str) -> ds.ClassificationSplit:
        return ds.read_manifest(self.path, split)


class UnlabeledFolderData(_ClassificationData):
    """Every image under ``root`` (OOD sets); the split name is ignored."""

    kind: Literal["unlabeled_folder"] = "unlabeled_folder"
    root: Path
    """Folder searched recursively for images."""

    def _read(self, split: str) -> ds.ClassificationSplit:
        return ds.read_unlabeled_folder(self.root)


class SampleClassificationData(_ClassificationData):
    """Crops of the photographs scikit-image ships, one class per photograph (no download)."""

    kind: Literal["sample_classification"] = "sample_classification"
    per_class: dict[str, int] = Field(default_factory=lambda: {"train": 24, "val": 8, "test": 8})
    """Number of crops per class for each split name."""
    size: int = 224
    """Side of the square crops in pixels."""
    seed: int = 0
    """Seed of the crop positions."""
    sources: tuple[str, ...] = CLASSIFICATION_SOURCES
    """scikit-image sample names, one class each."""

    def _read(self, split: str) -> ds.ClassificationSplit:
        if split not in self.per_class:
            raise ds.DatasetError(f"sample data has no split {split!r} (splits: {sorted(self.per_class)})")
        return sample_classification(split, self.per_class[split], self.size, self.seed, self.sources)


class MaskFolderData(_SegmentationData):
    """``root/<images_dir>/<split>/*`` + ``root/<masks_dir>/<split>/*.png`` paired by stem (CamVid)."""

    kind: Literal["mask_folder"] = "mask_folder"
    root: Path
    """Dataset root."""
    num_classes: int
    """Number of real classes; mask ids lie in [0, num_classes) or equal ``ignore_index``."""
    ignore_index: int = 255
    """Mask id excluded from training and scoring."""
    images_dir: str = "images"
    """Folder (under root) holding one image folder per split."""
    masks_dir: str = "masks"
    """Folder (under root) holding one mask folder per split."""
    class_names: tuple[str, ...] | None = None
    """Optional class names, for plots and reports."""

    def _read(self, split: str) -> ds.SegmentationSplit:
        return ds.read_mask_folder(
            self.root,
            split,
            self.num_classes,
            self.ignore_index,
            self.images_dir,
            self.masks_dir,
            self.class_names,
        )


class VocData(_SegmentationData):
    """Pascal VOC 2012 (``train``, ``val``, ``trainaug``); 21 classes, ignore 255."""

    kind: Literal["voc"] = "voc"
    root: Path
    """VOCdevkit or VOC2012 folder."""

    def _read(self, split: str) -> ds.SegmentationSplit:
        return ds.read_voc(self.root, split)


class Ade20kData(_SegmentationData):
    """ADEChallengeData2016 (``training``, ``validation``); 151 ids, id 0 ignored."""

    kind: Literal["ade20k"] = "ade20k"
    root: Path
    """ADEChallengeData2016 folder or its parent."""

    def _read(self, split: str) -> ds.SegmentationSplit:
        return ds.read_ade20k(self.root, split)


class SampleMosaicData(_SegmentationData):
    """Voronoi mosaics of scikit-image photographs with exact masks (no download)."""

    kind: Literal["sample_mosaics"] = "sample_mosaics"
    count: dict[str, int] = Field(default_factory=lambda: {"train": 32, "val": 16})
    """Number of mosaics for each split name."""
    size: int = 224
    """Side of the square mosaics in pixels."""
    seed: int = 0
    """Seed of the layouts and crops."""

    def _read(self, split: str) -> ds.SegmentationSplit:
        if split not in self.count:
            raise ds.DatasetError(f"sample data has no split {split!r} (splits: {sorted(self.count)})")
        return sample_mosaics(split, self.count[split], self.size, self.seed)


DatasetConfig = Annotated[
    ImageFolderData
    | ManifestData
    | UnlabeledFolderData
    | SampleClassificationData
    | MaskFolderData
    | VocData
    | Ade20kData
    | SampleMosaicData,
    Field(discriminator="kind"),
]
ClassificationDataConfig = ImageFolderData | ManifestData | UnlabeledFolderData | SampleClassificationData
SegmentationDataConfig = MaskFolderData | VocData | Ade20kData | SampleMosaicData


class EvalConfig(StrictModel):
    """Fields every evaluator config has; each evaluator adds its protocol parameters."""

    kind: str
    """Registry name of the evaluator."""
    tag: str | None = None
    """Distinguishes two runs of one evaluator in a suite: results go under ``kind/tag``."""

    @property
    def key(self) -> str:
        return self.kind if self.tag is None else f"{self.kind}/{self.tag}"
