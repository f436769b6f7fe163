"""DINO CLS loss against a loop-based float64 oracle of the official pairing (reference §4.3)."""

from __future__ import annotations

import math

import pytest
import torch

from franca_core.losses import DinoLoss, LevelLoss, dino_cls_loss, dino_cls_loss_level, n_dino_terms


def cross_entropy(teacher_row: list[float], student_row: list[float], temp: float) -> float:
    """-sum_k t_k log softmax(s / temp)_k with explicit loops."""
    log_norm = math.log(sum(math.exp(s / temp) for s in student_row))
    return -sum(t * (s / temp - log_norm) for t, s in zip(teacher_row, student_row))


def pair_mean(teacher: list[list[float]], student: list[list[float]], temp: float) -> float:
    return sum(cross_entropy(t, s, temp) for t, s in zip(teacher, student)) / len(teacher)


def official_oracle(
    s_global: torch.Tensor, s_local: torch.Tensor, t_global: torch.Tensor, temp: float
) -> tuple[float, float]:
    """Official n_g = 2 formula: swapped teacher, local / N and global * 2 / N with N = 2 n_l + 2."""
    batch = t_global.shape[0] // 2
    teacher = t_global.double().tolist()
    t_chunks = [teacher[:batch], teacher[batch:]]
    swapped = t_chunks[1] + t_chunks[0]
    local_rows = s_local.double().tolist()
    n_local = len(local_rows) // batch
    local = sum(
        pair_mean(t_chunk, local_rows[i * batch : (i + 1) * batch], temp)
        for i in range(n_local)
        for t_chunk in t_chunks
    )
    global_ = pair_mean(swapped, s_global.double().tolist(), temp)
    n_terms = 2 * n_local + 2
    return local / n_terms, global_ * 2 / n_terms


def random_inputs(
    batch: int, n_global: int, n_local: int, k: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    s_global = torch.randn(n_global * batch, k)
    s_local = torch.randn(n_local * batch, k)
    t_global = torch.softmax(torch.randn(n_global * batch, k) / 0.5, dim=-1)
    return s_global, s_local, t_global


def test_official_divisor() -> None:
    assert n_dino_terms(2, 8) == 18
    assert n_dino_terms(2, 0) == 2


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("n_local", [0, 1, 4])
@pytest.mark.parametrize("k", [5, 16])
@pytest.mark.parametrize("temp", [0.1, 0.25])
def test_level_matches_official_oracle(batch: int, n_local: int, k: int, temp: float) -> None:
    torch.manual_seed(batch * 100 + n_local * 10 + k)
    s_global, s_local, t_global = random_inputs(batch, 2, n_local, k)
    local, global_ = dino_cls_loss_level(s_global, s_local, t_global, student_temp=temp)
    exp_local, exp_global = official_oracle(s_global, s_local, t_global, temp)
    assert local.item() == pytest.approx(exp_local, rel=1e-5, abs=1e-6)
    assert global_.item() == pytest.approx(exp_global, rel=1e-5)


def test_more_than_two_global_crops_uses_all_cross_view_pairs() -> None:
    torch.manual_seed(0)
    batch, n_global, n_local, k, temp = 2, 3, 2, 6, 0.1
    s_global, s_local, t_global = random_inputs(batch, n_global, n_local, k)
    chunk = lambda x, i: x.double().tolist()[i * batch : (i + 1) * batch]  # noqa: E731
    local = sum(
        pair_mean(chunk(t_global, j), chunk(s_local, i), temp) for i in range(n_local) for j in range(3)
    )
    glob = sum(
        pair_mean(chunk(t_global, j), chunk(s_global, i), temp) for i in range(3) for j in range(3) if i != j
    )
    got_local, got_global = dino_cls_loss_level(s_global, s_local, t_global, n_global, temp)
    n_terms = n_dino_terms(3, 2)
    assert got_local.item() == pytest.approx(local / n_terms, rel=1e-5)
    assert got_global.item() == pytest.approx(glob / n_terms, rel=1e-5)


@pytest.mark.parametrize("weights", [None, [0.5, 1.0, 2.0]])
def test_levels_are_summed(weights: list[float] | None) -> None:
    torch.manual_seed(0)
    inputs = [random_inputs(2, 2, 3, k) for k in (4, 8, 16)]
    loss = dino_cls_loss(
        [s_g for s_g, _, _ in inputs],
        [s_l for _, s_l, _ in inputs],
        [t_g for _, _, t_g in inputs],
        level_weights=weights,
    )
    assert isinstance(loss, DinoLoss) and len(loss.levels) == 3
    ws = weights or [1.0, 1.0, 1.0]
    expected = sum(w * sum(official_oracle(*x, 0.1)) for w, x in zip(ws, inputs))
    assert loss.total.item() == pytest.approx(expected, rel=1e-5)
    for level, x in enumerate(inputs):
        assert loss.levels[level].item() == pytest.approx(sum(official_oracle(*x, 0.1)), rel=1e-5)


def test_gradient_reaches_student_only() -> None:
    s_global, s_local, t_global = random_inputs(2, 2, 2, 8)
    s_global.requires_grad_(True)
    s_local.requires_grad_(True)
    loss = dino_cls_loss([s_global], [s_local], [t_global])
    loss.total.backward()
    assert s_global.grad is not None and s_local.grad is not None
    assert torch.isfinite(s_global.grad).all() and s_local.grad.abs().sum() > 0
    assert not loss.detached().total.requires_grad


def test_fp16_logits_give_fp32_loss() -> None:
    s_global, s_local, t_global = random_inputs(2, 2, 2, 8)
    local, global_ = dino_cls_loss_level(s_global.half(), s_local.half(), t_global)
    assert local.dtype == global_.dtype == torch.float32


def test_shape_errors() -> None:
    s_global, s_local, t_global = random_inputs(2, 2, 2, 8)
    with pytest.raises(ValueError):
        dino_cls_loss_level(s_global[:3], s_local, t_global)
    with pytest.raises(ValueError):
        dino_cls_loss_level(s_global, s_local[:3], t_global)
    with pytest.raises(ValueError):
        LevelLoss.from_levels([torch.tensor(1.0)], weights=[1.0, 2.0])
