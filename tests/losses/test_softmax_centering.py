"""Per-level softmax centering with an EMA center (reference §4.1 item 4, §9.14)."""

from __future__ import annotations

import math

import pytest
import torch

from franca_core.losses import SoftmaxCentering

LEVELS = (4, 8, 16)


def centered_softmax_oracle(logits: torch.Tensor, center: torch.Tensor, temp: float) -> torch.Tensor:
    out = []
    for row in logits.double().tolist():
        scaled = [(v - c) / temp for v, c in zip(row, center.double().flatten().tolist())]
        norm = sum(math.exp(s) for s in scaled)
        out.append([math.exp(s) / norm for s in scaled])
    return torch.tensor(out, dtype=torch.float64)


def test_one_center_buffer_per_level() -> None:
    centering = SoftmaxCentering(LEVELS)
    assert [tuple(centering.center(i).shape) for i in range(3)] == [(1, 4), (1, 8), (1, 16)]
    assert set(centering.state_dict()) == {"center_0", "center_1", "center_2"}
    assert all(torch.all(centering.center(i) == 0) for i in range(3))


@pytest.mark.parametrize("momentum", [0.9, 0.5])
@pytest.mark.parametrize("temp", [0.04, 0.1])
def test_targets_then_ema_update(momentum: float, temp: float) -> None:
    torch.manual_seed(0)
    centering = SoftmaxCentering(LEVELS, momentum=momentum)
    expected_centers = [torch.zeros(1, k, dtype=torch.float64) for k in LEVELS]
    for _ in range(3):
        logits = [torch.randn(6, k) for k in LEVELS]
        targets = centering.targets(logits, temp)
        for level, (t, z) in enumerate(zip(targets, logits)):
            assert t.shape == z.shape
            oracle = centered_softmax_oracle(z, expected_centers[level], temp)
            torch.testing.assert_close(t.double(), oracle, rtol=1e-4, atol=1e-6)
        centering.update(logits)
        for level, z in enumerate(logits):
            batch_mean = torch.tensor([[sum(col) / 6 for col in zip(*z.double().tolist())]])
            expected_centers[level] = momentum * expected_centers[level] + (1 - momentum) * batch_mean
            torch.testing.assert_close(centering.center(level).double(), expected_centers[level])


def test_padding_rows_are_ignored() -> None:
    torch.manual_seed(0)
    valid = [torch.randn(5, k) for k in LEVELS]
    padded = [torch.cat([z, 100 * torch.ones(3, z.shape[1])]) for z in valid]
    a, b = SoftmaxCentering(LEVELS), SoftmaxCentering(LEVELS)
    a.update(valid)
    b.update(padded, n_valid=5)
    for level in range(3):
        torch.testing.assert_close(a.center(level), b.center(level))
    assert b.targets(padded, 0.1, n_valid=5)[0].shape == (5, 4)


def test_empty_batch_keeps_centers() -> None:
    centering = SoftmaxCentering(LEVELS)
    centering.update([torch.ones(2, k) for k in LEVELS])
    before = [centering.center(i).clone() for i in range(3)]
    centering.update([torch.ones(2, k) for k in LEVELS], n_valid=0)
    for level in range(3):
        torch.testing.assert_close(centering.center(level), before[level])


def test_level_width_mismatch_raises() -> None:
    with pytest.raises(ValueError):
        SoftmaxCentering(LEVELS).update([torch.randn(2, 4), torch.randn(2, 8)])
