"""Evaluation transforms and the torch datasets that apply them to a split.

Protocol facts (``shared/reference/evaluation-protocols.md``):
- classification (DINOv2 ``make_classification_eval_transform``): Resize(256/224 x res, bicubic),
  CenterCrop(res), ImageNet mean/std; the same for train and val (no augmentation);
- dense evaluators (Hummingbird, Leopart/NeCo): a square resize of image (bilinear, antialiased) and mask
  (nearest) to ``res x res``;
- Hummingbird memory augmentation: colour jitter 0.1 (brightness, contrast, saturation, hue), each
  applied with probability 0.5, then one RandomResizedCrop(res, scale=(0.5, 2.0)) shared by image
  (bilinear) and mask (nearest). Random draws are seeded by (seed, epoch, index) so that augmented
  features are reproducible and can be cached.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset
from torchvision import transforms as T

from franca_core.evaluation.datasets import ClassificationSplit, SegmentationSplit

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def classification_transform(resolution: int) -> T.Compose:
    """DINOv2's eval transform scaled to ``resolution`` (224 -> Resize 256, CenterCrop 224)."""
    return T.Compose(
        [
            T.Resize(round(resolution * 256 / 224), interpolation=T.InterpolationMode.BICUBIC),
            T.CenterCrop(resolution),
            T.ToTensor(),
            T.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )


def _normalize(img: Image.Image) -> Tensor:
    return TF.normalize(TF.to_tensor(img), IMAGENET_MEAN, IMAGENET_STD)


def resize_mask(mask: Tensor, size: int | tuple[int, int]) -> Tensor:
    """Nearest-neighbour resize of integer masks [..., H, W] (exact for ids < 2**24)."""
    hw = (size, size) if isinstance(size, int) else size
    lead = mask.shape[:-2]
    flat = mask.reshape(-1, 1, *mask.shape[-2:]).float()
    out = F.interpolate(flat, size=hw, mode="nearest")
    return out.reshape(*lead, *hw).to(mask.dtype)


class ClassificationDataset(Dataset[tuple[Tensor, int]]):
    """(image [3, res, res], label) pairs of a split under the classification eval transform."""

    def __init__(self, split: ClassificationSplit, resolution: int):
        self.split = split
        self.resolution = resolution
        self.transform = classification_transform(resolution)
        self.fingerprint = f"cls:{split.fingerprint}:res{resolution}"

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        return self.transform(self.split.image(i)), int(self.split.labels[i])


@dataclass(frozen=True)
class HbirdAugment:
    """Seeded Hummingbird memory-bank augmentation for one pass (``epoch``) over the train split."""

    epoch: int
    seed: int = 0
    jitter: float = 0.1
    jitter_p: float = 0.5
    scale: tuple[float, float] = (0.5, 2.0)

    def __call__(self, img: Image.Image, mask: Tensor, size: int, index: int) -> tuple[Image.Image, Tensor]:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(hash((self.seed, self.epoch, index)) % (2**31))
            img = self._jitter(img)
            i, j, h, w = T.RandomResizedCrop.get_params(img, scale=list(self.scale), ratio=[3 / 4, 4 / 3])
        img = TF.resized_crop(img, i, j, h, w, [size, size], T.InterpolationMode.BILINEAR, antialias=True)
        mask = TF.resized_crop(mask[None], i, j, h, w, [size, size], T.InterpolationMode.NEAREST)[0]
        return img, mask

    def _jitter(self, img: Image.Image) -> Image.Image:
        j = self.jitter
        ops = (
            lambda im: TF.adjust_brightness(im, float(torch.empty(1).uniform_(1 - j, 1 + j))),
            lambda im: TF.adjust_contrast(im, float(torch.empty(1).uniform_(1 - j, 1 + j))),
            lambda im: TF.adjust_saturation(im, float(torch.empty(1).uniform_(1 - j, 1 + j))),
            lambda im: TF.adjust_hue(im, float(torch.empty(1).uniform_(-j, j))),
        )
        for op in ops:
            if torch.rand(1).item() < self.jitter_p:
                img = op(img)
        return img


class SegmentationDataset(Dataset[tuple[Tensor, Tensor]]):
    """(image [3, res, res], mask [res, res] int64) pairs: square resize, optional memory augmentation."""

    def __init__(self, split: SegmentationSplit, resolution: int, augment: HbirdAugment | None = None):
        self.split = split
        self.resolution = resolution
        self.augment = augment
        self.fingerprint = f"seg:{split.fingerprint}:res{resolution}:aug{augment}"

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        img = self.split.image(i)
        mask = torch.from_numpy(self.split.mask(i))
        size = self.resolution
        if self.augment is not None:
            img, mask = self.augment(img, mask, size, i)
            return _normalize(img), mask.long()
        img = img.resize((size, size), Image.Resampling.BILINEAR)
        return _normalize(img), resize_mask(mask, size).long()
