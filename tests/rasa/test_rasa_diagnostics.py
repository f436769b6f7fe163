"""Diagnostics and small pieces of the RASA loop (Franca §3.3, Fig. 5; evaluation-protocols §8)."""

from __future__ import annotations

import math

import pytest
import torch

from franca_core.rasa.diagnostics import (
    cluster_position_entropy,
    entropy_from_labels,
    position_probe,
)
from franca_core.rasa.head import grid_positions
from franca_core.rasa.train import chance_mse, cosine_lr, position_mse

GRID = (6, 6)
N = GRID[0] * GRID[1]


def test_grid_positions_rows_first() -> None:
    pos = grid_positions((2, 3))
    expected = torch.tensor([[0, 0], [0, 0.5], [0, 1], [1, 0], [1, 0.5], [1, 1]])
    torch.testing.assert_close(pos, expected)
    assert grid_positions((1, 1)).tolist() == [[0.5, 0.5]]


@pytest.mark.parametrize("g", [4, 16, 37])
def test_chance_mse_is_the_target_variance(g: int) -> None:
    assert chance_mse((g, g)) == pytest.approx((g + 1) / (12 * (g - 1)))
    zero = torch.zeros(2, 8)  # sigmoid(0) = 0.5 everywhere
    assert position_mse(zero, torch.randn(3, g * g, 8), (g, g)) == pytest.approx(chance_mse((g, g)), rel=1e-5)


def test_cosine_lr_endpoints() -> None:
    assert cosine_lr(0, 100, 2e-4, 0.0) == pytest.approx(2e-4)
    assert cosine_lr(50, 100, 2e-4, 0.0) == pytest.approx(1e-4)
    assert cosine_lr(100, 100, 2e-4, 1e-6) == pytest.approx(1e-6)


def test_probe_on_linear_and_on_positionless_features() -> None:
    gen = torch.Generator().manual_seed(0)
    pos = grid_positions(GRID, torch.float64)  # [N, 2]
    mixing = torch.randn(2, 16, generator=gen, dtype=torch.float64)
    linear = (pos @ mixing).expand(20, -1, -1) + 1e-3 * torch.randn(
        20, N, 16, generator=gen, dtype=torch.float64
    )
    perfect = position_probe(linear[:10], linear[10:], GRID)
    assert perfect.r2 > 0.999 and perfect.rmse_patches < 0.01
    noise = torch.randn(40, N, 16, generator=gen, dtype=torch.float64)
    blind = position_probe(noise[:20], noise[20:], GRID)
    assert abs(blind.r2) < 0.05
    assert blind.mse == pytest.approx(chance_mse(GRID), rel=0.1)


def test_entropy_extremes() -> None:
    k = N
    pinned = torch.arange(N).expand(30, -1)  # cluster c only ever at position c
    result = entropy_from_labels(pinned, GRID, k)
    assert result.mean == pytest.approx(0.0) and result.weighted_mean == pytest.approx(0.0)
    assert result.histograms.shape == (k, *GRID) and result.majority_map.flatten().tolist() == list(range(N))
    everywhere = torch.zeros(30, N, dtype=torch.long)  # one cluster, equally at every position
    result = entropy_from_labels(everywhere, GRID, 3)
    assert result.entropies[0] == pytest.approx(1.0) and result.sizes == (30 * N, 0, 0)
    assert result.mean == pytest.approx(1.0)  # empty clusters do not count
    shuffled = torch.randint(0, 4, (2000, N), generator=torch.Generator().manual_seed(0))
    assert entropy_from_labels(shuffled, GRID, 4).mean > 0.99


def test_cluster_entropy_sees_positional_features() -> None:
    gen = torch.Generator().manual_seed(1)
    content = torch.randn(40, N, 8, generator=gen)
    positional = 10 * grid_positions(GRID) @ torch.randn(2, 8, generator=gen)  # [N, 8], dominates content
    biased = cluster_position_entropy(content + positional, GRID, k=8, pca_dim=8)
    unbiased = cluster_position_entropy(content, GRID, k=8, pca_dim=8)
    assert biased.mean < 0.7 < 0.9 < unbiased.mean
    assert math.isclose(sum(unbiased.sizes), 40 * N)
