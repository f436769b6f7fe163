"""KoLeo regulariser against a loop-based float64 oracle (reference §4.4)."""

from __future__ import annotations

import math

import pytest
import torch

from franca_core.losses import koleo_loss, koleo_loss_per_crop


def koleo_oracle(x: torch.Tensor, eps: float = 1e-8) -> float:
    rows = x.double().tolist()
    unit = []
    for row in rows:
        norm = max(math.sqrt(sum(v * v for v in row)), eps)
        unit.append([v / norm for v in row])
    total = 0.0
    for i, u in enumerate(unit):
        dots = [sum(a * b for a, b in zip(u, w)) if j != i else -math.inf for j, w in enumerate(unit)]
        j = max(range(len(unit)), key=dots.__getitem__)
        # torch.pairwise_distance adds eps to the difference before the norm (as DINOv2's KoLeoLoss).
        dist = math.sqrt(sum((a - b + eps) ** 2 for a, b in zip(u, unit[j])))
        total += math.log(dist + eps)
    return -total / len(unit)


@pytest.mark.parametrize("n,dim", [(2, 3), (5, 8), (16, 4)])
@pytest.mark.parametrize("scale", [0.1, 10.0])
def test_matches_oracle(n: int, dim: int, scale: float) -> None:
    torch.manual_seed(n * dim)
    x = scale * torch.randn(n, dim)
    assert koleo_loss(x).item() == pytest.approx(koleo_oracle(x), rel=1e-5)


@pytest.mark.parametrize("n_global_crops", [1, 2, 3])
def test_per_crop_sum(n_global_crops: int) -> None:
    torch.manual_seed(0)
    x = torch.randn(n_global_crops * 6, 5)
    expected = sum(koleo_oracle(chunk) for chunk in x.chunk(n_global_crops))
    assert koleo_loss_per_crop(x, n_global_crops).item() == pytest.approx(expected, rel=1e-5)


def test_fp32_with_autocast_off() -> None:
    torch.manual_seed(0)
    x = torch.randn(8, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = koleo_loss(x.bfloat16())
    assert got.dtype == torch.float32
    assert got.item() == pytest.approx(koleo_oracle(x.bfloat16().float()), rel=1e-5)


def test_spread_points_score_lower_than_clustered() -> None:
    torch.manual_seed(0)
    spread = torch.eye(6)
    clustered = torch.ones(6, 6) + 0.01 * torch.randn(6, 6)
    assert koleo_loss(spread) < koleo_loss(clustered)


def test_gradient_and_errors() -> None:
    x = torch.randn(6, 4, requires_grad=True)
    koleo_loss_per_crop(x, 2).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    with pytest.raises(ValueError):
        koleo_loss(torch.randn(1, 4))
    with pytest.raises(ValueError):
        koleo_loss_per_crop(torch.randn(5, 4), 2)
