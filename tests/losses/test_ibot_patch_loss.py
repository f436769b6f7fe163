"""iBOT masked-patch loss against a loop-based float64 oracle (reference §4.5)."""

from __future__ import annotations

import math

import pytest
import torch

from franca_core.losses import LevelLoss, ibot_patch_loss, ibot_patch_loss_level


def ibot_oracle(
    student: torch.Tensor, teacher: torch.Tensor, weights: torch.Tensor, n_images: int, temp: float
) -> float:
    total = 0.0
    for s_row, t_row, w in zip(student.double().tolist(), teacher.double().tolist(), weights.tolist()):
        log_norm = math.log(sum(math.exp(s / temp) for s in s_row))
        total += w * sum(t * (s / temp - log_norm) for t, s in zip(t_row, s_row))
    return -total / n_images


def masked_batch(masked_per_image: list[int], k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Student logits, teacher probs and masks_weight for images with the given masked-token counts."""
    weights = torch.cat([torch.full((n,), 1.0 / n) for n in masked_per_image if n > 0])  # [M]
    student = torch.randn(weights.shape[0], k)
    teacher = torch.softmax(torch.randn(weights.shape[0], k) / 0.3, dim=-1)
    return student, teacher, weights


@pytest.mark.parametrize("masked_per_image", [[3, 0, 5, 1], [1], [4, 4]])
@pytest.mark.parametrize("k", [4, 16])
@pytest.mark.parametrize("temp", [0.1, 0.3])
def test_level_matches_oracle(masked_per_image: list[int], k: int, temp: float) -> None:
    torch.manual_seed(len(masked_per_image) * k)
    student, teacher, weights = masked_batch(masked_per_image, k)
    n_images = len(masked_per_image)
    got = ibot_patch_loss_level(student, teacher, weights, n_images, temp)
    assert got.item() == pytest.approx(ibot_oracle(student, teacher, weights, n_images, temp), rel=1e-5)


def test_each_masked_image_contributes_its_mean_token_loss() -> None:
    torch.manual_seed(0)
    student, teacher, weights = masked_batch([2, 0, 3], 6)
    per_token = -(teacher * torch.log_softmax(student / 0.1, dim=-1)).sum(dim=-1)  # [5]
    expected = (per_token[:2].mean() + per_token[2:].mean()) / 3  # the unmasked image adds 0
    torch.testing.assert_close(ibot_patch_loss_level(student, teacher, weights, 3), expected)


def test_padding_rows_are_ignored() -> None:
    torch.manual_seed(0)
    student, teacher, weights = masked_batch([2, 3], 8)
    padded_student = torch.cat([student, torch.randn(4, 8)])  # the official upperbound buffer
    padded_teacher = torch.cat([teacher, torch.full((4, 8), 1 / 8)])
    torch.testing.assert_close(
        ibot_patch_loss_level(padded_student, padded_teacher, weights, 2),
        ibot_patch_loss_level(student, teacher, weights, 2),
    )
    with pytest.raises(ValueError):
        ibot_patch_loss_level(student[:3], teacher, weights, 2)


@pytest.mark.parametrize("weights", [None, [1.0, 0.0, 3.0]])
def test_levels_are_summed(weights: list[float] | None) -> None:
    torch.manual_seed(0)
    masks_weight = torch.cat([torch.full((3,), 1 / 3), torch.full((2,), 1 / 2)])
    students = [torch.randn(5, k) for k in (4, 8, 16)]
    teachers = [torch.softmax(torch.randn(5, k), dim=-1) for k in (4, 8, 16)]
    loss = ibot_patch_loss(students, teachers, masks_weight, n_global_images=4, level_weights=weights)
    assert isinstance(loss, LevelLoss) and len(loss.levels) == 3
    per_level = [ibot_oracle(s, t, masks_weight, 4, 0.1) for s, t in zip(students, teachers)]
    ws = weights or [1.0, 1.0, 1.0]
    assert loss.total.item() == pytest.approx(sum(w * v for w, v in zip(ws, per_level)), rel=1e-5)
    assert [x.item() for x in loss.levels] == pytest.approx(per_level, rel=1e-5)


def test_gradient_and_dtype() -> None:
    student, teacher, weights = masked_batch([2, 2], 8)
    student = student.half().requires_grad_(True)
    loss = ibot_patch_loss([student], [teacher], weights, 2)
    assert loss.total.dtype == torch.float32
    loss.total.backward()
    assert student.grad is not None and torch.isfinite(student.grad).all()
