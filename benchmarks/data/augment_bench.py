"""CPU cost of the multi-crop augmentation per image, and of the two pieces made faster.

A data-loader worker runs ``MultiCropAugmentation`` once per image; on the GPU that budget decides how
many cores feed one GPU (a ViT-B/14 step on an H100 takes 160-190 images/s). Printed, one thread:

- the full augmentation (2 global + n local crops) per image, for the ``debug`` and ViT-B crop sizes;
- Gaussian blur: ``v2.GaussianBlur`` (2-D depthwise conv, the baseline) vs ``SeparableGaussianBlur``;
- per-crop reseeding: ``torch.manual_seed`` (the baseline: on a CUDA build it also queues lazy
  CUDA/XPU/MTIA seeding with a formatted stack trace each) vs ``torch.default_generator.manual_seed``.

    python benchmarks/data/augment_bench.py
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
from torchvision.transforms import v2

from franca_core.data.augment import MultiCropAugmentation
from franca_core.data.blur import SeparableGaussianBlur
from franca_core.data.sources import sample_images


def best_ms(fn: Callable[[], object], repeats: int, rounds: int = 3) -> float:
    """Best of ``rounds`` mean wall times (ms) of ``repeats`` calls, after one warm-up call."""
    fn()
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(repeats):
            fn()
        best = min(best, (time.perf_counter() - start) / repeats * 1e3)
    return best


def with_torchvision_blur(aug: MultiCropAugmentation) -> MultiCropAugmentation:
    """The same augmentation with every separable blur swapped back to ``v2.GaussianBlur`` (baseline)."""
    for branch in (*aug.global_transforms, aug.local_transform):
        for step in branch.transforms:
            if isinstance(step, v2.RandomApply):
                step.transforms = [
                    v2.GaussianBlur(t.kernel_size, t.sigma) if isinstance(t, SeparableGaussianBlur) else t
                    for t in step.transforms
                ]
    return aug


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(1)
    photo = sample_images().images[0].convert("RGB").resize((384, 288))
    print(f"torch {torch.__version__}, 1 thread, best of 3 x {args.repeats}")
    for name, (g, loc, n) in {"debug": (112, 56, 6), "vitb14": (224, 96, 10)}.items():
        aug = MultiCropAugmentation(g, loc, n_local=n)
        base_aug = with_torchvision_blur(MultiCropAugmentation(g, loc, n_local=n))
        ms = best_ms(lambda aug=aug: aug(photo, seed=0), args.repeats)
        base = best_ms(lambda aug=base_aug: aug(photo, seed=0), args.repeats)
        print(
            f"multi-crop {name:<7} ({g}/{loc} px, 2+{n} crops): {ms:6.1f} ms/image = {1e3 / ms:5.0f} "
            f"img/s/core; with torchvision's blur {base:6.1f} ms ({base / ms:.2f}x)"
        )
    for size in (224, 96):
        crop = torch.randint(0, 256, (3, size, size), dtype=torch.uint8)
        base = best_ms(lambda c=crop: v2.GaussianBlur(9, (0.1, 2.0))(c), args.repeats * 5)
        fast = best_ms(lambda c=crop: SeparableGaussianBlur(9, (0.1, 2.0))(c), args.repeats * 5)
        print(f"blur {size} px: torchvision {base:.2f} ms, separable {fast:.2f} ms ({base / fast:.2f}x)")
    base = best_ms(lambda: torch.manual_seed(1234), args.repeats * 50)
    fast = best_ms(lambda: torch.default_generator.manual_seed(1234), args.repeats * 50)
    print(
        f"reseed: torch.manual_seed {base * 1e3:.1f} us, CPU generator only {fast * 1e3:.1f} us "
        f"({base / fast:.0f}x; 8 to 12 reseeds per image)"
    )


if __name__ == "__main__":
    main()
