"""Multi-crop augmentation (reference §3.2): shapes, seeding, and the blur probabilities (§9.17)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch
from PIL import Image

from franca_core.data import MultiCropAugmentation, MultiCropSample, derive_seed, sample_images


@pytest.fixture(autouse=True)
def single_thread() -> Iterator[None]:
    """Small-image transforms run faster on one thread and do not stall when the CPU is shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    return sample_images(["chelsea"])[0]


@pytest.fixture(scope="module")
def small_photo(photo: Image.Image) -> Image.Image:
    return photo.resize((64, 48))


def _small(n_local: int = 2, **kwargs) -> MultiCropAugmentation:
    return MultiCropAugmentation(global_size=32, local_size=16, n_local=n_local, **kwargs)


def _all_crops(sample: MultiCropSample) -> list[torch.Tensor]:
    return [*sample.global_crops, *sample.local_crops]


def test_default_shapes_and_normalisation(photo: Image.Image) -> None:
    sample = MultiCropAugmentation()(photo, seed=0)
    assert len(sample.global_crops) == 2 and len(sample.local_crops) == 8
    assert all(c.shape == (3, 224, 224) and c.dtype == torch.float32 for c in sample.global_crops)
    assert all(c.shape == (3, 98, 98) for c in sample.local_crops)
    assert all(type(c) is torch.Tensor for c in _all_crops(sample))  # plain tensors, not tv_tensors
    pixels = torch.cat([c.flatten() for c in _all_crops(sample)])
    assert -2.2 < pixels.min() < 0 < pixels.max() < 2.7  # ImageNet-normalised range


def test_seeded_calls_are_deterministic_and_leave_global_rng_alone(small_photo: Image.Image) -> None:
    aug = _small()
    state = torch.get_rng_state()
    a, b, c = aug(small_photo, seed=11), aug(small_photo, seed=11), aug(small_photo, seed=12)
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(x, y) for x, y in zip(_all_crops(a), _all_crops(b)))
    assert not any(torch.equal(x, y) for x, y in zip(_all_crops(a), _all_crops(c)))


def test_unseeded_calls_follow_the_global_rng(small_photo: Image.Image) -> None:
    aug = _small()
    torch.manual_seed(0)
    a = aug(small_photo)
    torch.manual_seed(0)
    b = aug(small_photo)
    assert all(torch.equal(x, y) for x, y in zip(_all_crops(a), _all_crops(b)))


def test_each_crop_depends_only_on_seed_and_index(small_photo: Image.Image) -> None:
    two, five = _small(n_local=2)(small_photo, seed=4), _small(n_local=5)(small_photo, seed=4)
    assert all(torch.equal(x, y) for x, y in zip(_all_crops(two), _all_crops(five)[:4]))


def test_derive_seed_is_stable_and_distinct() -> None:
    assert derive_seed(1, 2, 3) == derive_seed(1, 2, 3)
    seeds = {derive_seed(0, epoch, index) for epoch in range(5) for index in range(200)}
    assert len(seeds) == 1000 and all(0 <= s < 2**63 for s in seeds)


def _blur_rates(aug: MultiCropAugmentation, image: Image.Image, n_samples: int) -> list[float]:
    """Fraction of crops on which each branch's GaussianBlur actually ran (forward hooks count calls)."""
    calls = [0, 0, 0]
    hooks = [
        blur.register_forward_hook(lambda *_, i=i: calls.__setitem__(i, calls[i] + 1))
        for i, blur in enumerate(aug.blur_transforms)
    ]
    try:
        for seed in range(n_samples):
            aug(image, seed=seed)
    finally:
        for hook in hooks:
            hook.remove()
    return [calls[0] / n_samples, calls[1] / n_samples, calls[2] / (n_samples * aug.n_local)]


@pytest.mark.parametrize(
    ("official", "expected"), [(False, (1.0, 0.1, 0.5)), (True, (0.0, 0.9, 0.5))], ids=["correct", "official"]
)
def test_measured_blur_probabilities(small_photo: Image.Image, official: bool, expected: tuple) -> None:
    aug = _small(official_blur_inversion=official)
    assert aug.blur_probabilities == pytest.approx(expected)
    rates = _blur_rates(aug, small_photo, n_samples=400)
    # Binomial std at n = 400: 0.015 for p = 0.1 / 0.9; local p = 0.5 over 800 crops: 0.018.
    assert rates == pytest.approx(expected, abs=0.06)


def test_blur_shows_in_the_pixels(small_photo: Image.Image) -> None:
    """Same seeds, same RNG consumption (a RandomApply always draws once): only the blur differs."""
    no_blur, correct = _small(blur_probabilities=(0.0, 0.0, 0.0)), _small()
    official = _small(official_blur_inversion=True)
    changed, sharper = 0, 0
    for seed in range(40):
        reference = no_blur(small_photo, seed=seed).global_crops[0]
        blurred = correct(small_photo, seed=seed).global_crops[0]
        assert torch.equal(official(small_photo, seed=seed).global_crops[0], reference)  # p = 0.0
        changed += not torch.equal(blurred, reference)
        sharper += _high_freq(reference) > _high_freq(blurred)
    assert changed >= 36 and sharper >= 36  # sigma near 0.1 barely changes a uint8 image


def _high_freq(img: torch.Tensor) -> float:
    return float(
        (img[:, 1:, :] - img[:, :-1, :]).abs().mean() + (img[:, :, 1:] - img[:, :, :-1]).abs().mean()
    )


def test_works_on_every_sample_image_and_input_type() -> None:
    aug = MultiCropAugmentation(n_local=2)
    images = sample_images()
    for i in range(len(images)):
        sample = aug(images[i], seed=i)
        assert all(torch.isfinite(c).all() for c in _all_crops(sample))
        assert sample.global_crops[1].shape == (3, 224, 224)
    grey = Image.fromarray(np.full((40, 50), 128, dtype=np.uint8))  # mode "L"
    assert _small()(grey, seed=0).global_crops[0].shape == (3, 32, 32)
    tensor = torch.randint(0, 256, (3, 40, 50), dtype=torch.uint8)
    assert _small()(tensor, seed=0).local_crops[0].shape == (3, 16, 16)
    with pytest.raises(ValueError, match="3, H, W"):
        _small()(torch.zeros(1, 40, 50, dtype=torch.uint8))
