"""Multi-crop augmentation of DINOv2 / Franca (Franca, arXiv 2507.14137; reference §3.2, §9.17).

Each image gives 2 global crops and `n_local` local crops:

- geometry: RandomResizedCrop (bicubic) + horizontal flip 0.5, global scale (0.32, 1), local (0.05, 0.32);
- colour: ColorJitter(0.4, 0.4, 0.2, 0.1) with p 0.8, then grayscale with p 0.2;
- Gaussian blur (kernel 9, sigma in [0.1, 2]; torchvision's kernel, computed separably by
  ``blur.SeparableGaussianBlur``) with p 1.0 (global 1), 0.1 (global 2), 0.5 (local);
  global 2 also gets RandomSolarize(128) with p 0.2;
- ImageNet normalisation.

The official DINOv2 and Franca code passes 1 - p to its random-apply, so the blur probabilities it
actually trains with are 0.0 / 0.9 / 0.5 (reference §9.17, dinov2 PR #411). The default here applies
the intended ones; `official_blur_inversion=True` reproduces the official run.

Determinism: torchvision.transforms.v2 draws from the global torch RNG. `__call__(img, seed=s)`
runs inside `torch.random.fork_rng` and reseeds the global CPU generator with `derive_seed(s, k)`
before crop k, so every crop is a pure function of (image, s, k) and the caller's RNG state is left
untouched. Use `derive_seed(base_seed, epoch, index)` as the per-sample seed to resume exactly.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from PIL import Image
from torchvision import tv_tensors
from torchvision.transforms import InterpolationMode, v2

from franca_core.data.blur import SeparableGaussianBlur

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
BLUR_KERNEL_SIZE = 9
BLUR_SIGMA = (0.1, 2.0)
Scale = tuple[float, float]


@dataclasses.dataclass(frozen=True)
class MultiCropSample:
    """The crops of one image, each a normalised float32 tensor."""

    global_crops: list[torch.Tensor]  # n_global x [3, S, S]
    local_crops: list[torch.Tensor]  # n_local x [3, s, s]


def derive_seed(*keys: int) -> int:
    """A 63-bit seed that depends on every key (numpy SeedSequence hashing); keys must be >= 0."""
    lo, hi = np.random.SeedSequence(list(keys)).generate_state(2, dtype=np.uint32)
    return (int(hi) << 31) ^ int(lo)


def _to_image(img: Image.Image | torch.Tensor) -> tv_tensors.Image:
    """PIL (any mode) or uint8 tensor [3, H, W] -> uint8 tv_tensors.Image [3, H, W]."""
    if isinstance(img, Image.Image):
        return v2.functional.to_image(img.convert("RGB"))
    if img.ndim != 3 or img.shape[0] != 3:
        raise ValueError(f"expected a [3, H, W] tensor, got shape {tuple(img.shape)}")
    return tv_tensors.Image(img)


class MultiCropAugmentation:
    """DINOv2 / Franca multi-crop: 2 global crops + `n_local` local crops per image."""

    def __init__(
        self,
        global_size: int = 224,
        local_size: int = 98,
        global_scale: Scale = (0.32, 1.0),
        local_scale: Scale = (0.05, 0.32),
        n_local: int = 8,
        blur_probabilities: tuple[float, float, float] = (1.0, 0.1, 0.5),
        solarize_probability: float = 0.2,
        official_blur_inversion: bool = False,
    ) -> None:
        """blur_probabilities: intended p for (global 1, global 2, local).

        official_blur_inversion: use 1 - p instead, as the official DINOv2 / Franca code does.
        """
        if n_local < 0:
            raise ValueError(f"n_local must be >= 0, got {n_local}")
        self.n_local = n_local
        self.official_blur_inversion = official_blur_inversion
        self.blur_probabilities = tuple(1.0 - p if official_blur_inversion else p for p in blur_probabilities)
        # One GaussianBlur object per branch, kept so callers (and tests) can inspect or hook them.
        self.blur_transforms = tuple(
            SeparableGaussianBlur(BLUR_KERNEL_SIZE, sigma=BLUR_SIGMA) for _ in range(3)
        )
        solarize = v2.RandomSolarize(threshold=128, p=solarize_probability)  # uint8 threshold
        p1, p2, p3 = self.blur_probabilities
        b1, b2, b3 = self.blur_transforms
        self.global_transforms = (
            self._branch(global_size, global_scale, [v2.RandomApply([b1], p=p1)]),
            self._branch(global_size, global_scale, [v2.RandomApply([b2], p=p2), solarize]),
        )
        self.local_transform = self._branch(local_size, local_scale, [v2.RandomApply([b3], p=p3)])

    @staticmethod
    def _branch(size: int, scale: Scale, extra: list[v2.Transform]) -> v2.Compose:
        """uint8 image -> crop, flip, colour, `extra` (blur, solarize) -> normalised float [3, size, size]."""
        return v2.Compose(
            [
                v2.RandomResizedCrop(
                    size, scale=scale, interpolation=InterpolationMode.BICUBIC, antialias=True
                ),
                v2.RandomHorizontalFlip(p=0.5),
                v2.RandomApply([v2.ColorJitter(0.4, 0.4, 0.2, 0.1)], p=0.8),
                v2.RandomGrayscale(p=0.2),
                *extra,
                v2.ToDtype(torch.float32, scale=True),
                v2.Normalize(IMAGENET_MEAN, IMAGENET_STD),
            ]
        )

    def __call__(self, img: Image.Image | torch.Tensor, seed: int | None = None) -> MultiCropSample:
        """Crops of `img`. With `seed`, crop k uses the global torch RNG seeded by derive_seed(seed, k)."""
        image = _to_image(img)
        transforms = [*self.global_transforms, *[self.local_transform] * self.n_local]
        if seed is None:
            crops = [t(image).as_subclass(torch.Tensor) for t in transforms]
        else:
            with torch.random.fork_rng(devices=[]):
                crops = []
                for k, t in enumerate(transforms):
                    # The CPU generator only: torch.manual_seed also queues lazy CUDA/XPU/MTIA seeding,
                    # each recording a formatted stack trace (15% of the augmentation's CPU time).
                    torch.default_generator.manual_seed(derive_seed(seed, k))
                    crops.append(t(image).as_subclass(torch.Tensor))
        return MultiCropSample(global_crops=crops[:2], local_crops=crops[2:])
