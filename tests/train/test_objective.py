"""The assembled Franca objective: training on real images lowers the loss; EMA and flags behave."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from franca_core.config import PRESETS, PretrainConfig
from franca_core.data.collate import MultiCropBatch, collate_multicrop
from franca_core.data.dataset import MultiCropDataset
from franca_core.data.sources import sample_images
from franca_core.train.build import build_augmentation, build_mask_generator, build_objective
from franca_core.train.objective import FrancaObjective


def tiny_config(**loss: object) -> PretrainConfig:
    """The debug preset with the paper's Sinkhorn-Knopp targets unless ``loss`` says otherwise."""
    cfg = PRESETS["debug"]()
    return cfg.model_copy(
        update={"loss": cfg.loss.model_copy(update={"centering": "sinkhorn_knopp", **loss})}
    )


@pytest.fixture(scope="module")
def batch() -> MultiCropBatch:
    cfg = tiny_config()
    dataset = MultiCropDataset(sample_images(), build_augmentation(cfg), base_seed=0)
    samples = [dataset[i] for i in range(8)]
    return collate_multicrop(samples, build_mask_generator(cfg), np.random.default_rng(0), 0.5, (0.1, 0.65))


def train_terms(objective: FrancaObjective, batch: MultiCropBatch, steps: int) -> list[tuple[float, float]]:
    """(total, DINO) loss per step of a plain AdamW loop on one fixed batch."""
    opt = torch.optim.AdamW(objective.student.parameters(), lr=2e-3)
    losses = []
    for _ in range(steps):
        out = objective(batch, teacher_temp=0.04)
        opt.zero_grad()
        out.total.backward()
        opt.step()
        objective.update_teacher(0.9)
        losses.append((out.total.item(), out.dino.total.item()))
    return losses


def train(objective: FrancaObjective, batch: MultiCropBatch, steps: int) -> list[float]:
    return [total for total, _ in train_terms(objective, batch, steps)]


def test_training_steps_lower_the_loss_on_real_images(batch: MultiCropBatch) -> None:
    torch.manual_seed(0)
    objective = build_objective(tiny_config())
    terms = train_terms(objective, batch, steps=12)
    losses, dino = [t for t, _ in terms], [d for _, d in terms]
    assert all(np.isfinite(losses))
    assert np.mean(losses[-3:]) < np.mean(losses[:3]) - 0.05
    # The clustering term itself learns: it falls below the uniform-prediction value sum_l log K_l
    # (a stuck head sits at exactly that value while KoLeo alone lowers the total).
    uniform = sum(math.log(k) for k in objective.teacher.dino_head.n_prototypes)
    assert np.mean(dino[-3:]) < uniform - 0.3


def test_every_student_parameter_gets_a_gradient(batch: MultiCropBatch) -> None:
    torch.manual_seed(0)
    objective = build_objective(tiny_config())
    objective(batch, teacher_temp=0.04).total.backward()
    missing = [n for n, p in objective.student.named_parameters() if p.requires_grad and p.grad is None]
    assert missing == []
    assert all(p.grad is None for p in objective.teacher.parameters())


def test_loss_breakdown_adds_up(batch: MultiCropBatch) -> None:
    torch.manual_seed(0)
    objective = build_objective(tiny_config())
    out = objective(batch, teacher_temp=0.04)
    expected = out.dino.total + out.ibot.total + 0.1 * out.koleo
    torch.testing.assert_close(out.total, expected)
    assert len(out.dino.levels) == len(out.ibot.levels) == 5


def test_ema_update_matches_formula(batch: MultiCropBatch) -> None:
    torch.manual_seed(0)
    objective = build_objective(tiny_config())
    with torch.no_grad():
        for p in objective.student.parameters():
            p.add_(torch.randn_like(p))
    before_t = [p.clone() for p in objective.teacher.parameters()]
    student = [p.clone() for p in objective.student.parameters()]
    objective.update_teacher(0.75)
    for t0, s, t1 in zip(before_t, student, objective.teacher.parameters()):
        torch.testing.assert_close(t1, 0.75 * t0 + 0.25 * s)


def test_teacher_starts_equal_to_student() -> None:
    objective = build_objective(tiny_config())
    for (name, s), t in zip(objective.student.state_dict().items(), objective.teacher.state_dict().values()):
        assert torch.equal(s, t), name


@pytest.mark.parametrize("flags", [{"centering": "softmax"}, {"official_sk_padding_rows": True}])
def test_alternative_target_modes_train(batch: MultiCropBatch, flags: dict[str, object]) -> None:
    torch.manual_seed(0)
    losses = train(build_objective(tiny_config(**flags)), batch, steps=3)
    assert all(np.isfinite(losses))


def test_padding_flag_changes_ibot_targets_only_through_padding(batch: MultiCropBatch) -> None:
    torch.manual_seed(0)
    correct = build_objective(tiny_config())
    official = build_objective(tiny_config(official_sk_padding_rows=True))
    official.load_state_dict(correct.state_dict())
    a = correct.teacher_targets(batch, 0.04)
    b = official.teacher_targets(batch, 0.04)
    for x, y in zip(a.dino, b.dino):
        torch.testing.assert_close(x, y)
    assert batch.upperbound > batch.n_masked
    assert any(not torch.allclose(x, y) for x, y in zip(a.ibot, b.ibot))
