"""The separable Gaussian blur against a float64 loop oracle and against torchvision's 2-D kernel."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from franca_core.data.blur import SeparableGaussianBlur, gaussian_kernel1d, separable_gaussian_blur


def reference_blur(image: np.ndarray, size: tuple[int, int], sigma: tuple[float, float]) -> np.ndarray:
    """Full 2-D correlation with reflect padding, written as loops in float64. image: [C, H, W]."""

    def kernel(k: int, s: float) -> np.ndarray:
        lim = (k - 1) / (2 * math.sqrt(2))
        x = np.linspace(-lim, lim, k)
        e = np.exp(-((x / s) ** 2))
        return e / e.sum()

    kx, ky = size
    k2 = np.outer(kernel(ky, sigma[1]), kernel(kx, sigma[0]))  # [ky, kx]
    c, h, w = image.shape
    pad = ((0, 0), (ky // 2, ky // 2), (kx // 2, kx // 2))
    padded = np.pad(image.astype(np.float64), pad, mode="reflect")
    out = np.zeros((c, h, w))
    for ch in range(c):
        for i in range(h):
            for j in range(w):
                out[ch, i, j] = (padded[ch, i : i + ky, j : j + kx] * k2).sum()
    return out


CASES = [((9, 9), (1.3, 1.3)), ((5, 3), (0.4, 2.0)), ((9, 9), (0.1, 0.1))]


@pytest.mark.parametrize(("size", "sigma"), CASES)
def test_float_blur_equals_the_float64_loop(size: tuple[int, int], sigma: tuple[float, float]) -> None:
    image = torch.rand(3, 11, 13, generator=torch.Generator().manual_seed(0))
    out = separable_gaussian_blur(image, size, sigma)
    expected = reference_blur(image.numpy(), size, sigma)
    np.testing.assert_allclose(out.numpy(), expected, rtol=0, atol=2e-6)


def test_kernel_is_torchvisions() -> None:
    for k, s in [(9, 0.1), (9, 1.0), (9, 2.0), (3, 0.7)]:
        ours = torch.tensor(gaussian_kernel1d(k, s))
        theirs = F._misc._get_gaussian_kernel1d(k, s, dtype=torch.float32, device=torch.device("cpu"))
        torch.testing.assert_close(ours, theirs)


def test_uint8_blur_matches_torchvision_to_one_grey_level() -> None:
    gen = torch.Generator().manual_seed(1)
    image = torch.randint(0, 256, (2, 3, 64, 80), dtype=torch.uint8, generator=gen)
    for sigma in (0.1, 0.8, 2.0):
        ours = separable_gaussian_blur(image, (9, 9), (sigma, sigma)).int()
        theirs = F.gaussian_blur(image, [9, 9], [sigma, sigma]).int()
        assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
        assert (ours - theirs).abs().max() <= 1
        assert (ours != theirs).float().mean() < 1e-3


def test_transform_draws_sigma_like_torchvision_and_keeps_types() -> None:
    image = tv_tensors.Image(torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8))
    torch.manual_seed(5)
    ours = SeparableGaussianBlur(9, sigma=(0.1, 2.0))(image)
    after_ours = torch.rand(3)
    torch.manual_seed(5)
    theirs = v2.GaussianBlur(9, sigma=(0.1, 2.0))(image)
    after_theirs = torch.rand(3)
    torch.testing.assert_close(after_ours, after_theirs)  # the same random stream consumed
    assert isinstance(ours, tv_tensors.Image) and (ours.int() - theirs.int()).abs().max() <= 1
    pil = Image.fromarray(np.zeros((16, 16, 3), dtype=np.uint8))
    assert isinstance(SeparableGaussianBlur(3)(pil), Image.Image)  # PIL left to torchvision


def test_even_kernel_is_refused() -> None:
    with pytest.raises(ValueError, match="odd"):
        separable_gaussian_blur(torch.zeros(1, 8, 8), (4, 3), (1.0, 1.0))
