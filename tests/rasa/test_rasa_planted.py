"""RASA on synthetic features with planted positional directions (Franca §3.3; issue 6 acceptance).

Features = content (Gaussian, independent of position) + a known embedding of the grid position along four
orthonormal directions: the centred row and column (linearly decodable) and their squares (not linearly
decodable, so RASA may leave them). RASA must remove the linearly decodable position (a fresh probe's R² falls
near 0), its removed planes must contain the two linear directions, and every component orthogonal to the
removed planes must be exactly unchanged (float64).
"""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from franca_core.rasa.config import TrainConfig
from franca_core.rasa.diagnostics import position_probe
from franca_core.rasa.features import CachedPatches
from franca_core.rasa.head import grid_positions
from franca_core.rasa.train import RasaTrainResult, train_rasa

GRID = (8, 8)
DIM = 48
FAST = TrainConfig(rounds=9, epochs_per_round=25, batch_size=16, lr=1e-2, seed=0)
Planted = tuple[Tensor, Tensor, Tensor, RasaTrainResult]


def planted_features(n_images: int, directions: Tensor, amplitude: float, seed: int) -> Tensor:
    """[M, N, D] = N(0, 1) content + amplitude * phi(row, col) @ directions, phi = centred (a, b, a², b²)."""
    g = torch.Generator().manual_seed(seed)
    content = torch.randn(n_images, GRID[0] * GRID[1], DIM, generator=g, dtype=torch.float64)
    pos = grid_positions(GRID, torch.float64) - 0.5  # [N, 2]
    phi = torch.cat([pos, pos**2 - (pos**2).mean(0)], dim=1)  # [N, 4]
    return content + amplitude * (phi / phi.std(0)) @ directions  # [N, 4] @ [4, D] -> [N, D], broadcast


@pytest.fixture(scope="module")
def planted() -> Planted:
    gen = torch.Generator().manual_seed(1)
    directions = torch.linalg.qr(torch.randn(DIM, 4, generator=gen, dtype=torch.float64))[0].T  # [4, D]
    train = planted_features(96, directions, 2.0, seed=2)
    heldout = planted_features(48, directions, 2.0, seed=3)
    result = train_rasa(CachedPatches(train.float()), GRID, DIM, FAST, val_tokens=train[:32].float())
    return train, heldout, directions, result


def _removed_span(result: RasaTrainResult) -> Tensor:
    """Orthonormal basis [D, 2T] of the span of every removed plane."""
    weights = torch.cat([w.detach().double() for w in result.head.plane_weights()])  # [2T, D]
    return torch.linalg.qr(weights.T)[0]


def test_fresh_probe_r2_falls_near_zero(planted: Planted) -> None:
    train, heldout, _, result = planted
    before = position_probe(train, heldout, GRID)
    fold = result.head.folded_matrix()  # float64 [D, D]
    after = position_probe(train @ fold, heldout @ fold, GRID)
    assert before.r2 > 0.6, before
    assert after.r2 < 0.03, after
    assert after.mse > 3 * before.mse
    assert 2 <= result.rounds_kept < FAST.rounds and result.stopped_early  # stops once nothing is left


def test_removed_planes_contain_the_linear_directions(planted: Planted) -> None:
    _, _, directions, result = planted
    basis = _removed_span(result)  # [D, 2T]
    captured = (directions @ basis).norm(dim=1)  # [4] norm of each direction's projection onto the span
    assert captured[:2].min() > 0.97, captured  # row and column directions: removed
    assert captured[2:].max() < 0.8, captured  # the squares carry no linear position: mostly left alone


def test_orthogonal_components_unchanged_exactly(planted: Planted) -> None:
    _, heldout, _, result = planted
    head = result.head.double()
    after = head(heldout)  # sequential removal, float64
    basis = _removed_span(result)
    complement = torch.eye(DIM, dtype=torch.float64) - basis @ basis.T  # projector onto the complement
    torch.testing.assert_close(after @ complement, heldout @ complement, rtol=0, atol=1e-12)
    # ... and the change lies inside the removed span
    torch.testing.assert_close((heldout - after) @ basis @ basis.T, heldout - after, rtol=0, atol=1e-12)
    # the last plane is removed completely
    last = torch.linalg.qr(head.pos_pred.weight.detach().T)[0]  # [D, 2]
    assert (after @ last).abs().max() < 1e-12
