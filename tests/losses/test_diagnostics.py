"""Target-entropy collapse monitor against a float64 loop oracle."""

from __future__ import annotations

import math

import pytest
import torch

from franca_core.losses import normalized_entropy, target_entropies


def oracle(probs: torch.Tensor) -> float:
    """Mean over rows of -sum p log p / ln K, with explicit loops in float64."""
    rows = probs.double().tolist()
    total = 0.0
    for row in rows:
        total += -sum(p * math.log(p) for p in row if p > 0)
    return total / len(rows) / math.log(len(rows[0]))


@pytest.mark.parametrize("k", [2, 7, 64])
def test_matches_the_loop_oracle(k: int) -> None:
    torch.manual_seed(k)
    probs = torch.distributions.Dirichlet(torch.full((k,), 0.3)).sample((9,))
    probs[0] = torch.zeros(k).index_fill_(0, torch.tensor([1]), 1.0)  # exact zeros: 0 log 0 = 0
    assert normalized_entropy(probs).item() == pytest.approx(oracle(probs), abs=1e-6)


def test_flat_targets_read_one_and_one_hot_targets_zero() -> None:
    flat = torch.full((4, 1024), 1 / 1024)
    one_hot = torch.eye(8)[:4]
    assert normalized_entropy(flat).item() == pytest.approx(1.0, abs=1e-6)
    assert normalized_entropy(one_hot).item() == 0.0
    assert normalized_entropy(torch.ones(3, 1)).item() == 0.0  # one prototype: nothing to spread over


def test_padding_rows_are_left_out_and_no_graph_is_kept() -> None:
    flat = torch.full((3, 16), 1 / 16, requires_grad=True)
    padded = torch.cat([flat, torch.zeros(5, 16)])  # official iBOT buffer: zero rows after the masked ones
    (all_rows,) = target_entropies([padded])
    (valid,) = target_entropies([padded], n_rows=3)
    assert valid.item() == pytest.approx(1.0) and all_rows.item() == pytest.approx(3 / 8)
    assert not valid.requires_grad
