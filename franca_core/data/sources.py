"""Small image sources: a folder of images, the photographs shipped with scikit-image, and a labelled
"crops of source images" dataset.

`CropsOfSourceDataset` makes a cheap, real-image classification task for machines without datasets:
class c = "a random crop of source image c". A backbone that learned anything separates these
classes with k-NN or a linear probe far above chance, while a random one does much worse. Train and
held-out crops are drawn from different seed streams of the same images.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision.transforms import v2

from franca_core.data.augment import IMAGENET_MEAN, IMAGENET_STD, derive_seed

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp"})
# Natural photographs in skimage.data that ship with the wheel (no download). Left out: synthetic
# images (colorwheel, logo, horse), duplicates (cat = chelsea), tiny crops (microaneurysms) and
# files that need the optional `pooch` download (eagle, lily).
SKIMAGE_PHOTOS = (
    "astronaut",
    "brick",
    "camera",
    "cell",
    "chelsea",
    "clock",
    "coffee",
    "coins",
    "grass",
    "gravel",
    "hubble_deep_field",
    "immunohistochemistry",
    "moon",
    "page",
    "retina",
    "rocket",
    "text",
)
Split = Literal["train", "heldout"]


class ImageSource(Protocol):
    """Anything indexable that yields RGB PIL images."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Image.Image: ...


class ImageFolderSource(Dataset[Image.Image]):
    """All images under `root` (recursive, sorted by relative path), loaded as RGB PIL images."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"image folder does not exist or is not a directory: {self.root}")
        self.paths = sorted(
            p for p in self.root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        )
        if not self.paths:
            raise FileNotFoundError(
                f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found under {self.root}"
            )

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> Image.Image:
        with Image.open(self.paths[index]) as img:
            return img.convert("RGB")


class ImageListSource(Dataset[Image.Image]):
    """In-memory images as an `ImageSource`."""

    def __init__(self, images: Sequence[Image.Image]) -> None:
        if not images:
            raise ValueError("ImageListSource needs at least one image")
        self.images = [img.convert("RGB") for img in images]

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> Image.Image:
        return self.images[index]


def _skimage_photo(name: str) -> Image.Image:
    """One skimage.data photograph as an RGB PIL image (greyscale replicated to 3 channels)."""
    from skimage import data  # imported lazily: skimage is slow to import

    array = np.asarray(getattr(data, name)())
    if array.dtype != np.uint8:
        raise TypeError(f"skimage.data.{name} is {array.dtype}, expected uint8")
    return Image.fromarray(array).convert("RGB")


def sample_images(names: Sequence[str] = SKIMAGE_PHOTOS) -> ImageListSource:
    """The real photographs shipped by scikit-image, for runs without a dataset."""
    unknown = sorted(set(names) - set(SKIMAGE_PHOTOS))
    if unknown:
        raise ValueError(f"unknown sample images {unknown}; choose from {SKIMAGE_PHOTOS}")
    return ImageListSource([_skimage_photo(name) for name in names])


def default_eval_transform() -> Callable[[Image.Image], torch.Tensor]:
    """PIL -> float32 [3, H, W], ImageNet-normalised."""
    return v2.Compose(
        [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    )


def sample_crop_boxes(
    width: int, height: int, n: int, scale: tuple[float, float], rng: np.random.Generator
) -> list[tuple[int, int, int, int]]:
    """n boxes (left, top, right, bottom), area fraction in `scale`, aspect log-uniform in [3/4, 4/3]."""
    boxes = []
    for _ in range(n):
        area = rng.uniform(*scale) * width * height
        aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))  # w / h
        w = int(np.clip(round(np.sqrt(area * aspect)), 1, width))
        h = int(np.clip(round(np.sqrt(area / aspect)), 1, height))
        left = int(rng.integers(0, width - w + 1))
        top = int(rng.integers(0, height - h + 1))
        boxes.append((left, top, left + w, top + h))
    return boxes


class CropsOfSourceDataset(Dataset[tuple[torch.Tensor, int]]):
    """Label = index of the source image a random crop comes from; deterministic given the seed.

    Crops of `images[c]` are boxes drawn from rng(derive_seed(seed, split id, c)); the "train" and
    "heldout" splits use different split ids, hence different (possibly overlapping) crops. All
    source images are held in memory: this is meant for a few dozen images, not a dataset.
    """

    def __init__(
        self,
        images: ImageSource,
        crops_per_image: int,
        crop_size: int = 64,
        split: Split = "train",
        seed: int = 0,
        scale: tuple[float, float] = (0.1, 0.5),
        transform: Callable[[Image.Image], torch.Tensor] | None = None,
    ) -> None:
        if crops_per_image < 1:
            raise ValueError(f"crops_per_image must be >= 1, got {crops_per_image}")
        split_id = {"train": 0, "heldout": 1}[split]
        self.images = [images[i] for i in range(len(images))]
        self.crop_size = crop_size
        self.transform = transform if transform is not None else default_eval_transform()
        self.items: list[tuple[int, tuple[int, int, int, int]]] = []  # (label, box)
        for label, img in enumerate(self.images):
            rng = np.random.default_rng(derive_seed(seed, split_id, label))
            boxes = sample_crop_boxes(img.width, img.height, crops_per_image, scale, rng)
            self.items += [(label, box) for box in boxes]

    @property
    def num_classes(self) -> int:
        return len(self.images)

    @property
    def labels(self) -> list[int]:
        return [label for label, _ in self.items]

    def __len__(self) -> int:
        return len(self.items)

    def crop(self, index: int) -> Image.Image:
        """The PIL crop of item `index`, resized to crop_size x crop_size (bicubic)."""
        label, box = self.items[index]
        size = (self.crop_size, self.crop_size)
        return self.images[label].resize(size, Image.Resampling.BICUBIC, box=box)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.transform(self.crop(index)), self.items[index][0]
