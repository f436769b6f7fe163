"""Linear probe, logistic regression and OOD scores on constructed features with known answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from franca_core.evaluation import linear, logreg, ood
from franca_core.evaluation.features import FeatureSet


def clusters(
    n_per: int, c: int, d: int, noise: float, seed: int, offset: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(c).repeat_interleave(n_per)
    feats = 3 * torch.eye(c, d)[labels] + offset + noise * torch.randn(len(labels), d, generator=gen)
    return feats, labels


def featureset(feats: torch.Tensor, labels: torch.Tensor) -> FeatureSet:
    # last-block CLS = feats; earlier blocks carry noise only; avgpool carries the signal again.
    noise = torch.randn(len(feats), 3, feats.shape[1], generator=torch.Generator().manual_seed(9))
    blocks = torch.cat([noise, feats[:, None]], dim=1)
    return FeatureSet(cls=feats, targets=labels, blocks_cls=blocks, avgpool=feats.clone())


def test_linear_inputs_follow_dinov2_layout() -> None:
    fs = featureset(*clusters(2, 3, 5, 0.1, 0))
    assert linear.linear_inputs(fs, 1, False).shape == (6, 5)
    assert linear.linear_inputs(fs, 4, True).shape == (6, 25)
    torch.testing.assert_close(linear.linear_inputs(fs, 1, False), fs.cls)


def test_linear_probe_grid_on_separable_features() -> None:
    train, test = featureset(*clusters(30, 4, 12, 0.3, 1)), featureset(*clusters(10, 4, 12, 0.3, 2))
    cfg = linear.LinearConfig(data="x", iterations=150, batch_size=32)
    result = linear.compute(cfg, train, test)
    assert len(result.heads) == 13 * 2 * 2  # the 52 DINOv2 heads
    assert result.top1 == 100.0
    assert "10% of train" in result.selection_split
    # the tiniest learning rate barely moves its N(0, 0.01) head: it cannot be the selected one
    assert not result.best_head.endswith("lr1e-05")


def test_logreg_sweep_and_refit() -> None:
    x_tr, y_tr = clusters(30, 3, 6, 0.5, 3)
    x_te, y_te = clusters(10, 3, 6, 0.5, 4)
    cfg = logreg.LogRegConfig(data="x", c_values=(1e-6, 1e-2, 1.0))
    result = logreg.compute(cfg, x_tr.numpy(), y_tr.numpy(), x_te.numpy(), y_te.numpy())
    assert result.top1 == 100.0 and result.per_class_accuracy == 100.0
    assert [s.c for s in result.sweep] == [1e-6, 1e-2, 1.0]
    assert result.best_c in (1e-2, 1.0)  # C = 1e-6 is regularised to a constant predictor
    assert len(logreg.dinov2_c_grid()) == 45 and logreg.dinov2_c_grid()[0] == pytest.approx(1e-6)


def test_ood_on_separable_clusters() -> None:
    train, train_labels = clusters(40, 3, 10, 0.2, 5)
    test, test_labels = clusters(10, 3, 10, 0.2, 6)
    far, _ = clusters(10, 3, 10, 0.2, 7, offset=-4.0)  # another region of feature space entirely
    far = far + torch.tensor([0, 0, 0, 0, 0, 0, 0, 0, 0, 12.0])  # a direction ID never uses
    cfg = ood.OodConfig(data="x", knn_k=5, search="torch", probe_c_values=(1.0,))
    result = ood.compute(cfg, train, train_labels, test, test_labels, {"far": far})
    assert result.id_accuracy == 100.0
    (far_set,) = result.sets
    assert far_set.knn.auroc == pytest.approx(100.0) and far_set.knn.fpr_at_95_tpr == pytest.approx(0.0)


def test_ood_indistinguishable_sets_score_near_chance() -> None:
    train, train_labels = clusters(60, 3, 10, 1.0, 8)
    test, test_labels = clusters(60, 3, 10, 1.0, 9)
    same, _ = clusters(60, 3, 10, 1.0, 10)  # drawn from the ID distribution
    cfg = ood.OodConfig(data="x", knn_k=10, search="torch", probe_c_values=(1.0,))
    (s,) = ood.compute(cfg, train, train_labels, test, test_labels, {"same": same}).sets
    assert 35.0 < s.knn.auroc < 65.0 and 35.0 < s.msp.auroc < 65.0


def test_knn_score_is_minus_kth_distance() -> None:
    train = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    query = torch.tensor([[2.0, 0.0]])  # normalised: (1, 0); distances 0, sqrt 2, 2
    np.testing.assert_allclose(ood.knn_scores(train, query, 2, "torch"), [-np.sqrt(2)], rtol=1e-6)
    np.testing.assert_allclose(ood.knn_scores(train, query, 3, "torch"), [-2.0], rtol=1e-6)
