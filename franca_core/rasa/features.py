"""Images, training views and frozen-backbone patch features for RASA (Franca §3.3; reference §7.2).

RASA trains only a Linear(D, 2) on the frozen backbone's ``x_norm_patchtokens``, so the backbone runs once
per view: ``CachedPatches`` keeps the features of a fixed set of augmented views in memory, while
``StreamedPatches`` recomputes fresh views every epoch as the official code does (for data sets whose features
do not fit in memory). Both yield raw patch-token batches [B, N, D]; the rounds loop removes earlier planes.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import InterpolationMode, v2
from tqdm.auto import tqdm

from franca_core.data.augment import IMAGENET_MEAN, IMAGENET_STD, derive_seed
from franca_core.data.blur import SeparableGaussianBlur
from franca_core.data.sources import ImageFolderSource, ImageListSource, ImageSource, sample_images
from franca_core.models.vision_transformer import VisionTransformer
from franca_core.rasa.config import AugmentConfig

Transform = Callable[[Image.Image], Tensor]
SAMPLE = "sample"


# ------------------------------------------------------------------------------------------- images
class _PathListSource(Dataset[Image.Image]):
    """Images listed by path (a manifest), loaded lazily as RGB."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self.paths = list(paths)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> Image.Image:
        with Image.open(self.paths[index]) as img:
            return img.convert("RGB")


def _read_manifest(path: Path) -> list[Path]:
    """Image paths of a CSV with a ``path`` column or of a text file with one path a line (relative to it)."""
    with path.open(newline="") as handle:
        if path.suffix.lower() == ".csv":
            rows = list(csv.DictReader(handle))
            if not rows or "path" not in rows[0]:
                raise ValueError(f"{path}: a CSV manifest needs a 'path' column")
            names = [row["path"] for row in rows]
        else:
            names = [line.strip() for line in handle if line.strip() and not line.startswith("#")]
    paths = [p if p.is_absolute() else path.parent / p for p in map(Path, names)]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"{path}: {len(missing)} listed images do not exist, e.g. {missing[:3]}")
    if not paths:
        raise ValueError(f"{path}: the manifest lists no images")
    return paths


def open_images(data: str | Path, max_images: int | None = None) -> ImageSource:
    """``"sample"`` (the scikit-image photographs), an image folder, or a CSV / text list of image paths."""
    source: ImageSource
    if str(data) == SAMPLE:
        source = sample_images()
    elif Path(data).is_dir():
        source = ImageFolderSource(data)
    elif Path(data).is_file():
        source = _PathListSource(_read_manifest(Path(data)))
    else:
        raise FileNotFoundError(f"--data {data!r} is neither 'sample', an image folder nor a manifest file")
    if max_images is not None and len(source) > max_images:
        source = ImageListSource([source[i] for i in range(max_images)])
    return source


def split_indices(
    n: int, heldout_fraction: float, seed: int, max_heldout: int | None = None
) -> tuple[list[int], list[int]]:
    """(train, held-out) image indices from a seeded permutation; both non-empty, held-out capped."""
    if n < 2:
        raise ValueError(f"RASA needs at least 2 images (one to train, one held out), got {n}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    n_held = min(n - 1, max(1, round(n * heldout_fraction)), max_heldout or n)
    return sorted(order[n_held:]), sorted(order[:n_held])


# ------------------------------------------------------------------------------------------- views
def train_transform(cfg: AugmentConfig, size: int) -> v2.Compose:
    """PIL -> normalised [3, size, size]: the official RASA training augmentations (reference §7.2).

    The official Normalize uses std 0.255 for blue (a typo for 0.225); the ImageNet value is used here.
    """
    s = cfg.jitter_strength
    blur_kernel = max(3, (size // 10) | 1)  # odd, about 10 % of the crop
    return v2.Compose(
        [
            v2.ToImage(),
            v2.RandomResizedCrop(size, scale=cfg.crop_scale, antialias=True),
            v2.RandomApply([v2.ColorJitter(0.8 * s, 0.8 * s, 0.8 * s, 0.2 * s)], p=0.8),
            v2.RandomGrayscale(p=cfg.grayscale_p),
            v2.RandomApply([SeparableGaussianBlur(blur_kernel, sigma=(0.1, 2.0))], p=cfg.blur_p),
            v2.RandomHorizontalFlip(p=cfg.hflip_p),
            v2.RandomVerticalFlip(p=cfg.vflip_p),
            v2.RandomApply([v2.RandomRotation(90, interpolation=InterpolationMode.NEAREST)], p=cfg.rotate_p),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )


def diagnostic_transform(size: int, scale: tuple[float, float] = (0.5, 1.0)) -> v2.Compose:
    """PIL -> normalised [3, size, size]: a random crop only, so content keeps its natural layout."""
    return v2.Compose(
        [
            v2.ToImage(),
            v2.RandomResizedCrop(size, scale=scale, antialias=True),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )


class ViewsDataset(Dataset[Tensor]):
    """``views`` augmented views per image; view (i, v) of epoch e is a pure function of (seed, e, i, v)."""

    def __init__(self, images: ImageSource, transform: Transform, views: int, seed: int, epoch: int = 0):
        self.images, self.transform, self.views, self.seed, self.epoch = images, transform, views, seed, epoch

    def __len__(self) -> int:
        return len(self.images) * self.views

    def __getitem__(self, index: int) -> Tensor:
        image, view = divmod(index, self.views)
        with torch.random.fork_rng(devices=[]), _one_thread():  # torchvision v2 draws from the global RNG
            torch.default_generator.manual_seed(derive_seed(self.seed, self.epoch, image, view))
            return self.transform(self.images[image])


@contextmanager
def _one_thread() -> Iterator[None]:
    """Run small per-image tensor ops on one thread (as DataLoader workers do): many threads on tiny ops
    mostly wait on each other, which made the views ~20x slower on a loaded 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class Subset(Dataset[Image.Image]):
    """The images ``indices`` of a source."""

    def __init__(self, images: ImageSource, indices: Sequence[int]) -> None:
        self.images, self.indices = images, list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> Image.Image:
        return self.images[self.indices[index]]


# ------------------------------------------------------------------------------------------- features
@torch.no_grad()  # not inference_mode: the cached tokens feed an autograd graph later
def _patch_tokens(backbone: VisionTransformer, images: Tensor) -> Tensor:
    """x_norm_patchtokens [B, N, D] float32 of an image batch (computed in bf16 on CUDA)."""
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=images.device.type == "cuda"):
        out = backbone.forward_features(images)
    return out.x_norm_patchtokens.float()


def extract_patch_tokens(
    backbone: VisionTransformer,
    views: Dataset[Tensor],
    batch_size: int,
    num_workers: int = 0,
    desc: str = "features",
) -> Tensor:
    """x_norm_patchtokens [M, N, D] of every view, float32 on the CPU, in dataset order."""
    device = next(backbone.parameters()).device
    loader = DataLoader(views, batch_size=batch_size, num_workers=num_workers, shuffle=False)
    return torch.cat(
        [_patch_tokens(backbone, images.to(device)).cpu() for images in tqdm(loader, desc=desc, leave=False)]
    )


class PatchBatches(Protocol):
    """Raw patch-token batches [B, N, D] of the training views, one pass per call."""

    def epoch(self, epoch: int, batch_size: int, generator: torch.Generator) -> Iterator[Tensor]: ...

    def steps_per_epoch(self, batch_size: int) -> int: ...


@dataclass
class CachedPatches:
    """Features of fixed views held in memory; every epoch shuffles them."""

    tokens: Tensor  # [M, N, D]

    def steps_per_epoch(self, batch_size: int) -> int:
        return -(-self.tokens.shape[0] // batch_size)

    def epoch(self, epoch: int, batch_size: int, generator: torch.Generator) -> Iterator[Tensor]:
        order = torch.randperm(self.tokens.shape[0], generator=generator)
        for start in range(0, len(order), batch_size):
            yield self.tokens[order[start : start + batch_size]]


@dataclass
class StreamedPatches:
    """Fresh augmented views every epoch, through the frozen backbone (the official, uncached way)."""

    backbone: VisionTransformer
    images: ImageSource
    transform: Transform
    seed: int
    num_workers: int = 0

    def steps_per_epoch(self, batch_size: int) -> int:
        return -(-len(self.images) // batch_size)

    def epoch(self, epoch: int, batch_size: int, generator: torch.Generator) -> Iterator[Tensor]:
        views = ViewsDataset(self.images, self.transform, 1, self.seed, epoch=epoch)
        loader = DataLoader(
            views, batch_size=batch_size, shuffle=True, generator=generator, num_workers=self.num_workers
        )
        device = next(self.backbone.parameters()).device
        for images in loader:
            yield _patch_tokens(self.backbone, images.to(device))


__all__ = [
    "SAMPLE",
    "CachedPatches",
    "PatchBatches",
    "StreamedPatches",
    "Subset",
    "ViewsDataset",
    "diagnostic_transform",
    "extract_patch_tokens",
    "open_images",
    "split_indices",
    "train_transform",
]
