"""Batch-subset stochastic depth (DINOv2's form, official above rate 0.1) against a float64 loop oracle."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import Tensor
from torch.utils.flop_counter import FlopCounterMode

from franca_core.config import PretrainConfig
from franca_core.models import build_backbone
from franca_core.models.layers import Block, DropPath
from franca_core.models.layers.drop_path import add_residual_batch_subset, subset_size, uses_batch_subset
from franca_core.train.build import build_backbone_from_config


def _branch(weight: Tensor, calls: list[int]) -> Callable[[Tensor], Tensor]:
    def branch(x: Tensor) -> Tensor:
        calls.append(x.shape[0])
        return torch.tanh(x @ weight)

    return branch


def naive_subset_residual(x: Tensor, weight: Tensor, rows: list[int]) -> Tensor:
    """Loop oracle: kept samples get x + B/kept * tanh(x W), the others stay x."""
    out = x.clone()
    scale = x.shape[0] / len(rows)
    for b in rows:
        for n in range(x.shape[1]):
            out[b, n] = x[b, n] + scale * torch.tanh(x[b, n] @ weight)
    return out


@pytest.mark.parametrize(("batch", "p"), [(10, 0.4), (7, 0.3), (3, 0.9), (1, 0.5)])
def test_subset_residual_matches_loop_oracle(batch: int, p: float) -> None:
    torch.manual_seed(0)
    x = torch.randn(batch, 4, 6, dtype=torch.float64)
    weight = torch.randn(6, 6, dtype=torch.float64)
    calls: list[int] = []
    torch.manual_seed(11)
    rows = torch.randperm(batch)[: subset_size(batch, p)].tolist()
    torch.manual_seed(11)
    got = add_residual_batch_subset(x, _branch(weight, calls), p)
    assert calls == [max(int(batch * (1 - p)), 1)]  # the branch ran on the kept samples only
    assert len(set(rows)) == len(rows)
    torch.testing.assert_close(got, naive_subset_residual(x, weight, rows), rtol=0, atol=1e-12)


def test_subset_residual_gradients_match_oracle() -> None:
    torch.manual_seed(1)
    x = torch.randn(8, 3, 5, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(5, 5, dtype=torch.float64, requires_grad=True)
    torch.manual_seed(5)
    rows = torch.randperm(8)[: subset_size(8, 0.4)].tolist()
    torch.manual_seed(5)
    got = add_residual_batch_subset(x, _branch(weight, []), 0.4)
    grads = torch.autograd.grad((got**2).sum(), (x, weight))
    oracle = naive_subset_residual(x, weight, rows)
    expected = torch.autograd.grad((oracle**2).sum(), (x, weight))
    for a, b in zip(grads, expected, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_subset_residual_is_unbiased() -> None:
    torch.manual_seed(2)
    x = torch.randn(6, 2, 3, dtype=torch.float64)
    weight = torch.randn(3, 3, dtype=torch.float64)
    draws = torch.stack([add_residual_batch_subset(x, _branch(weight, []), 0.4) for _ in range(6000)])
    expected = x + torch.tanh(x @ weight)
    # A kept sample adds 2r (3 of 6 kept), a dropped one 0: mean r, std |r| <= 1, SE <= 1/77 per entry.
    torch.testing.assert_close(draws.mean(0), expected, rtol=0, atol=0.06)


def test_block_runs_branches_on_the_subset_in_training_only() -> None:
    torch.manual_seed(3)
    block = Block(16, 2, ffn="mlp", drop_path=0.4, drop_path_batch_subset=True, init_values=0.5)
    seen: list[int] = []
    block.attn.register_forward_hook(lambda m, i, o: seen.append(i[0].shape[0]))
    block.mlp.register_forward_hook(lambda m, i, o: seen.append(i[0].shape[0]))
    x = torch.randn(10, 5, 16)
    block.train()
    y = block(x)
    assert seen == [6, 6] and y.shape == x.shape
    unchanged = (y - x).flatten(1).abs().amax(1) == 0  # samples dropped from both branches
    assert unchanged.sum() <= 4
    seen.clear()
    block.eval()
    block(x)
    assert seen == [10, 10]


def test_subset_block_skips_the_dropped_compute() -> None:
    block = Block(32, 2, ffn="swiglu", drop_path=0.4, drop_path_batch_subset=True, init_values=1e-5)
    per_sample = Block(32, 2, ffn="swiglu", drop_path=0.4, init_values=1e-5)
    x = torch.randn(10, 17, 32)

    def flops(module: Block) -> int:
        counter = FlopCounterMode(display=False)
        with counter:
            module.train()(x).sum().backward()
        return counter.get_total_flops()

    assert flops(block) == pytest.approx(0.6 * flops(per_sample), rel=1e-9)


def test_official_mode_switches_above_rate_0_1() -> None:
    assert not uses_batch_subset("official", 0.1) and uses_batch_subset("official", 0.4)
    assert uses_batch_subset("batch_subset", 0.05) and not uses_batch_subset("per_sample", 0.4)
    vit_b = build_backbone("vit_small", depth=2, drop_path_rate=0.1)
    vit_l = build_backbone("vit_small", depth=2, drop_path_rate=0.4)
    forced = build_backbone("vit_small", depth=2, drop_path_rate=0.4, drop_path_mode="per_sample")
    models = (vit_b, vit_l, forced)
    flags = [[m.batch_subset for m in model.modules() if isinstance(m, DropPath)] for model in models]
    assert flags == [[False] * 4, [True] * 4, [False] * 4]


def test_config_reaches_student_not_teacher(tiny_config: Callable[..., PretrainConfig]) -> None:
    cfg = tiny_config("backbone.drop_path_rate=0.4", "backbone.drop_path_mode=batch_subset")
    student = build_backbone_from_config(cfg, student=True)
    teacher = build_backbone_from_config(cfg, student=False)
    assert all(m.batch_subset for m in student.modules() if isinstance(m, DropPath))
    assert not any(isinstance(m, DropPath) for m in teacher.modules())
