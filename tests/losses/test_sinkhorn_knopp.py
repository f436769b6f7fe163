"""Sinkhorn-Knopp teacher targets against a float64 loop oracle (reference §4.1, §9.12)."""

from __future__ import annotations

import math

import pytest
import torch

from franca_core.losses import sinkhorn_knopp_levels, sinkhorn_knopp_targets


def sk_oracle(logits: torch.Tensor, temp: float, n_iterations: int) -> torch.Tensor:
    """The official iteration written with Python loops over prototypes and samples, in float64."""
    rows = logits.double().tolist()
    b, k = len(rows), len(rows[0])
    q = [[math.exp(rows[r][p] / temp) for r in range(b)] for p in range(k)]  # [K][b]
    for _ in range(n_iterations):
        for p in range(k):
            total = sum(q[p])
            q[p] = [v / total / k for v in q[p]]
        for r in range(b):
            total = sum(q[p][r] for p in range(k))
            for p in range(k):
                q[p][r] = q[p][r] / total / b
    return torch.tensor([[q[p][r] * b for p in range(k)] for r in range(b)], dtype=torch.float64)


@pytest.mark.parametrize("rows,protos", [(6, 4), (8, 16), (1, 5)])
@pytest.mark.parametrize("temp", [0.04, 0.07, 0.5])
@pytest.mark.parametrize("n_iterations", [1, 3, 7])
def test_matches_loop_oracle(rows: int, protos: int, temp: float, n_iterations: int) -> None:
    torch.manual_seed(rows * protos)
    logits = torch.randn(rows, protos)
    got = sinkhorn_knopp_targets(logits, temp, n_iterations)
    assert got.dtype == torch.float32 and got.shape == (rows, protos)
    torch.testing.assert_close(got.double(), sk_oracle(logits, temp, n_iterations), rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(got.sum(dim=1), torch.ones(rows))


def test_prototype_marginals_approach_uniform() -> None:
    torch.manual_seed(0)
    logits = torch.randn(32, 8)
    deviations = []
    for n_iterations in (1, 3, 10, 100, 1000):
        targets = sinkhorn_knopp_targets(logits, 0.1, n_iterations)  # [32, 8]
        marginal = targets.sum(dim=0)  # mass per prototype, uniform = 32 / 8
        deviations.append((marginal - 4.0).abs().max().item())
    assert deviations == sorted(deviations, reverse=True)
    assert deviations[-1] < 1e-4 < 1.0 < deviations[0]


def test_large_logits_do_not_overflow() -> None:
    torch.manual_seed(0)
    logits = torch.randn(10, 6)
    shifted = sinkhorn_knopp_targets(logits + 50.0, 0.04)  # exp(1250) overflows without the max shift
    assert torch.isfinite(shifted).all()
    torch.testing.assert_close(shifted, sinkhorn_knopp_targets(logits, 0.04))


def test_padding_rows_are_excluded_unless_official() -> None:
    torch.manual_seed(0)
    valid = torch.randn(7, 5)
    padded = torch.cat([valid, torch.zeros(3, 5)])  # iBOT's zero-input rows give constant logits
    ours = sinkhorn_knopp_targets(padded, 0.07, n_valid=7)
    official = sinkhorn_knopp_targets(padded, 0.07, n_valid=7, official_padding_rows=True)
    assert ours.shape == official.shape == (7, 5)
    torch.testing.assert_close(ours, sinkhorn_knopp_targets(valid, 0.07))
    torch.testing.assert_close(official.double(), sk_oracle(padded, 0.07, 3)[:7], rtol=1e-4, atol=1e-6)
    assert (ours - official).abs().max() > 1e-3


def test_padding_flag_is_a_no_op_without_padding() -> None:
    logits = torch.randn(9, 4)
    torch.testing.assert_close(
        sinkhorn_knopp_targets(logits, 0.05, n_valid=9, official_padding_rows=True),
        sinkhorn_knopp_targets(logits, 0.05),
    )


def test_no_valid_rows_and_bad_count() -> None:
    assert sinkhorn_knopp_targets(torch.randn(3, 4), 0.05, n_valid=0).shape == (0, 4)
    with pytest.raises(ValueError):
        sinkhorn_knopp_targets(torch.randn(3, 4), 0.05, n_valid=4)


def test_levels_are_processed_independently() -> None:
    levels = [torch.randn(6, k) for k in (2, 4, 8)]
    out = sinkhorn_knopp_levels(levels, 0.07, n_iterations=3)
    for logits, targets in zip(levels, out):
        torch.testing.assert_close(targets, sinkhorn_knopp_targets(logits, 0.07, 3))


def test_no_gradient_flows_to_the_teacher() -> None:
    logits = torch.randn(4, 3, requires_grad=True)
    assert not sinkhorn_knopp_targets(logits, 0.05).requires_grad
