"""Hummingbird memory bank, overclustering and linear segmentation on constructed patch features."""

from __future__ import annotations

import pytest
import torch

from franca_core.evaluation import hummingbird, linear_seg, overcluster
from franca_core.evaluation.features import FeatureSet
from franca_core.evaluation.memory_bank import MemoryBank, patch_soft_labels, rare_class_indices

P = 4  # patch side in pixels for these constructed cases


def random_masks(n: int, grid: int, c: int, seed: int) -> torch.Tensor:
    """[n, grid*P, grid*P] masks that are constant on each P x P patch."""
    gen = torch.Generator().manual_seed(seed)
    per_patch = torch.randint(0, c, (n, grid, grid), generator=gen)
    return per_patch.repeat_interleave(P, 1).repeat_interleave(P, 2)


def stripe_masks(n: int, grid: int, c: int, seed: int) -> torch.Tensor:
    """Masks whose class is constant along each row of patches: bilinear upsampling of patch
    predictions is then exact (every pixel is nearer its own patch centre), so perfect features
    must score exactly 100 %."""
    gen = torch.Generator().manual_seed(seed)
    rows = torch.randint(0, c, (n, grid, 1), generator=gen).expand(n, grid, grid)
    return rows.repeat_interleave(P, 1).repeat_interleave(P, 2)


def onehot_features(masks: torch.Tensor, c: int, d: int, noise: float, seed: int) -> FeatureSet:
    """Patch features = one-hot of the patch class (+ noise) padded to d dims."""
    gen = torch.Generator().manual_seed(seed)
    per_patch = masks[:, ::P, ::P]
    feats = torch.nn.functional.one_hot(per_patch, d).float() + noise * torch.randn(
        *per_patch.shape, d, generator=gen
    )
    return FeatureSet(cls=feats.mean((1, 2)), targets=masks.to(torch.int16), patch=feats.half())


def test_soft_labels_hand_computed() -> None:
    mask = torch.tensor([[0, 0, 1, 1], [0, 255, 1, 2], [2, 2, 2, 2], [2, 2, 2, 2]])[None]  # 4x4, p = 2
    soft = patch_soft_labels(mask, 2, 3, ignore_index=255)
    torch.testing.assert_close(soft[0, 0, 0], torch.tensor([0.75, 0.0, 0.0]))  # ignore pixel adds nothing
    torch.testing.assert_close(soft[0, 0, 1], torch.tensor([0.0, 0.75, 0.25]))
    torch.testing.assert_close(soft[0, 1, 1], torch.tensor([0.0, 0.0, 1.0]))
    remapped = patch_soft_labels(mask, 2, 3, ignore_index=255, ignore_to=0)  # hbird's VOC quirk
    torch.testing.assert_close(remapped[0, 0, 0], torch.tensor([1.0, 0.0, 0.0]))


def test_rare_class_sampling_prefers_rare_classes() -> None:
    labels = torch.zeros(10, 3)
    labels[:8, 0] = 1.0  # 8 patches of a common class
    labels[8, 1] = 1.0  # 1 patch of a rare class
    # patch 9 is empty (ignore only): it goes last
    keep = rare_class_indices(labels, 2, torch.Generator().manual_seed(0))
    assert 8 in keep.tolist() and 9 not in keep.tolist()


def test_memory_bank_returns_stored_labels_for_exact_queries() -> None:
    keys = torch.eye(4, 6)
    labels = torch.eye(4, 3)[[0, 1, 2, 2]]
    bank = MemoryBank(keys, labels)
    pred = bank.predict(torch.eye(4, 6) * 5.0, k=2, temperature=0.02, method="torch")  # norm must not matter
    assert pred.argmax(1).tolist() == [0, 1, 2, 2]
    assert pred[0, 0] > 0.99  # cos 1 vs cos 0 at T = 0.02: weight e^50 : 1


@pytest.mark.parametrize("memory_size", [None, 200])
def test_hummingbird_perfect_features_give_full_miou(memory_size: int | None) -> None:
    c, grid = 4, 6
    train_masks = random_masks(12, grid, c, 0)
    train = onehot_features(train_masks, c, 8, 0.05, 2)
    cfg = hummingbird.HummingbirdConfig(data="x", memory_size=memory_size, search="torch", k=10)
    stripes = stripe_masks(5, grid, c, 1)
    result = hummingbird.compute(
        cfg, [train], onehot_features(stripes, c, 8, 0.05, 3), P, c, ignore_index=255
    )
    assert result.miou == pytest.approx(100.0) and result.miou_hungarian == pytest.approx(100.0)
    assert result.memory_patches == (12 * grid * grid if memory_size is None else 12 * (memory_size // 12))
    # on a random patch layout only pixels near corners where 3-4 classes meet can flip
    grid_masks = random_masks(5, grid, c, 1)
    result = hummingbird.compute(cfg, [train], onehot_features(grid_masks, c, 8, 0.05, 3), P, c, 255)
    assert result.miou > 90.0


def test_hummingbird_uninformative_features_score_low() -> None:
    c, grid = 4, 6
    train_masks, val_masks = random_masks(12, grid, c, 4), random_masks(5, grid, c, 5)
    gen = torch.Generator().manual_seed(6)
    noise = FeatureSet(
        cls=torch.zeros(12, 8),
        targets=train_masks.to(torch.int16),
        patch=torch.randn(12, grid, grid, 8, generator=gen),
    )
    val = FeatureSet(
        cls=torch.zeros(5, 8),
        targets=val_masks.to(torch.int16),
        patch=torch.randn(5, grid, grid, 8, generator=gen),
    )
    result = hummingbird.compute(
        hummingbird.HummingbirdConfig(data="x", search="torch"), [noise], val, P, c, 255
    )
    assert result.miou < 40.0  # chance for 4 balanced classes is about 1/7 IoU


def test_overcluster_on_class_aligned_features() -> None:
    pytest.importorskip("faiss")
    c, grid = 3, 8
    masks = random_masks(10, grid, c, 7)
    fs = onehot_features(masks, c, 16, 0.01, 8)
    cfg = overcluster.OverclusterConfig(
        data="x", num_clusters=(3, 6), seeds=(0, 1), niter=20, nredo=1, mask_size=grid * P, pca_dim=8
    )
    result = overcluster.compute(cfg, fs, c, ignore_index=255)
    k3, k6 = result.scores
    assert k3.greedy_mean == pytest.approx(100.0) and k3.hungarian_mean == pytest.approx(100.0)
    # over-clustering costs almost nothing once clusters are merged (the z-score lifts the 13 noise
    # dimensions to unit variance, so a few patches can land in a cluster of the wrong class)
    assert k6.greedy_mean > 99.0
    assert len(k6.miou_greedy) == 2 and k6.hungarian_mean <= k6.greedy_mean


def test_linear_seg_learns_onehot_features() -> None:
    c, grid = 3, 5
    train_masks, val_masks = random_masks(16, grid, c, 9), stripe_masks(6, grid, c, 10)
    train, val = onehot_features(train_masks, c, 8, 0.05, 11), onehot_features(val_masks, c, 8, 0.05, 12)
    cfg = linear_seg.LinearSegConfig(
        data="x", epochs=30, drop_at=25, batch_size=4, mask_size=grid * P, learning_rates=(0.1, 1.0)
    )
    result = linear_seg.compute(cfg, train, val, c, ignore_index=255)
    assert result.miou > 99.0 and len(result.miou_per_lr) == 2
