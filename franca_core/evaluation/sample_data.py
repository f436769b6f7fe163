"""Small real-image evaluation data built from the photographs scikit-image ships (no download).

Two deterministic generators, for the ``quick`` suite and for tests on a machine without ``../shared``
(the recommendation of ``shared/reference/evaluation-protocols.md`` section 10):

- **Classification** ("which photograph is this crop from?"): each class is one source photograph or
  texture. Train crops come from the left 60 % of the photo and val/test crops from the right 40 %, so
  evaluation asks to recognise unseen parts of a known photo. Crops are random squares (35-70 % of the
  region's short side) with random horizontal flips.
- **Segmentation mosaics**: a Voronoi partition of the canvas into 3-6 cells, each filled with a crop of
  one source photo; the label map is the exact source id of every pixel, with a 2-pixel band of the ignore
  index along cell borders (VOC-style boundaries). Train and val mosaics draw from disjoint photo regions
  as above. Real pixels, synthetic layout, exact masks.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image
from scipy import ndimage

from franca_core.evaluation.datasets import ClassificationSplit, DatasetError, SegmentationSplit, _fingerprint

CLASSIFICATION_SOURCES = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "retina",
    "hubble_deep_field",
    "immunohistochemistry",
    "brick",
    "grass",
    "gravel",
)
SEGMENTATION_SOURCES = ("brick", "grass", "gravel", "coffee", "chelsea", "hubble_deep_field")
SAMPLE_IGNORE_INDEX = 255
_TRAIN_FRACTION = 0.6


def _photo(name: str) -> np.ndarray:
    import skimage.data

    loader: Callable[[], np.ndarray] | None = getattr(skimage.data, name, None)
    if loader is None:
        raise DatasetError(f"scikit-image has no sample image {name!r}")
    img = np.asarray(loader())
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return np.ascontiguousarray(img[..., :3].astype(np.uint8))


def _region(img: np.ndarray, split: str) -> np.ndarray:
    """Left 60 % of the columns for ``train``, the rest for any other split."""
    cut = int(img.shape[1] * _TRAIN_FRACTION)
    return img[:, :cut] if split == "train" else img[:, cut:]


def _random_crop(
    region: np.ndarray, rng: np.random.Generator, size: int, scale: tuple[float, float]
) -> np.ndarray:
    """A random square crop covering ``scale`` of the short side, resized to ``size`` and maybe flipped."""
    h, w = region.shape[:2]
    side = max(8, int(min(h, w) * rng.uniform(*scale)))
    y = int(rng.integers(0, h - side + 1))
    x = int(rng.integers(0, w - side + 1))
    crop = Image.fromarray(region[y : y + side, x : x + side]).resize((size, size), Image.Resampling.BICUBIC)
    out = np.asarray(crop)
    return out[:, ::-1].copy() if rng.random() < 0.5 else out


def sample_classification(
    split: str,
    per_class: int,
    size: int = 224,
    seed: int = 0,
    sources: tuple[str, ...] = CLASSIFICATION_SOURCES,
) -> ClassificationSplit:
    """``per_class`` crops of each source photo; ``split`` 'train' uses the left region, others the right."""
    rng = np.random.default_rng([seed, 0 if split == "train" else 1 + len(split)])
    images, labels = [], []
    for cid, name in enumerate(sources):
        region = _region(_photo(name), split)
        for _ in range(per_class):
            images.append(_random_crop(region, rng, size, (0.35, 0.7)))
            labels.append(cid)
    fp = _fingerprint("sample_classification", split, per_class, size, seed, sources)
    return ClassificationSplit(images, labels, list(sources), fp)


def _voronoi_labels(size: int, n_cells: int, rng: np.random.Generator) -> np.ndarray:
    """[size, size] cell index of the nearest of ``n_cells`` random seed points."""
    seeds = rng.uniform(0, size, (n_cells, 2))
    yy, xx = np.mgrid[0:size, 0:size]
    d2 = (yy[..., None] - seeds[:, 0]) ** 2 + (xx[..., None] - seeds[:, 1]) ** 2  # [H, W, n]
    return d2.argmin(axis=-1)


def _border_band(cells: np.ndarray, width: int) -> np.ndarray:
    """Boolean mask of pixels within ``width`` of a cell border."""
    edge = np.zeros(cells.shape, dtype=bool)
    edge[:-1] |= cells[:-1] != cells[1:]
    edge[:, :-1] |= cells[:, :-1] != cells[:, 1:]
    return ndimage.binary_dilation(edge, iterations=width)


def _mosaic(regions: list[np.ndarray], size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    n_cells = int(rng.integers(3, 7))
    cells = _voronoi_labels(size, n_cells, rng)
    cell_class = rng.integers(0, len(regions), n_cells)
    image = np.zeros((size, size, 3), dtype=np.uint8)
    for c in range(n_cells):
        fill = _random_crop(regions[cell_class[c]], rng, size, (0.5, 0.9))
        image[cells == c] = fill[cells == c]
    mask = cell_class[cells].astype(np.int64)
    mask[_border_band(cells, 2)] = SAMPLE_IGNORE_INDEX
    return image, mask


def sample_mosaics(
    split: str, count: int, size: int = 224, seed: int = 0, sources: tuple[str, ...] = SEGMENTATION_SOURCES
) -> SegmentationSplit:
    """``count`` Voronoi mosaics of ``sources``; label = source index, border band = ignore (255)."""
    rng = np.random.default_rng([seed, 10 if split == "train" else 11 + len(split)])
    regions = [_region(_photo(name), split) for name in sources]
    images, masks = [], []
    for _ in range(count):
        image, mask = _mosaic(regions, size, rng)
        images.append(image)
        masks.append(mask)
    fp = _fingerprint("sample_mosaics", split, count, size, seed, sources)
    return SegmentationSplit(images, masks, len(sources), SAMPLE_IGNORE_INDEX, fp, list(sources))
