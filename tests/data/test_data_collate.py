"""Collate of multi-crop samples with stratified iBOT masks (reference §5.5), checked against loops."""

from __future__ import annotations

from typing import cast

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from franca_core.data import (
    MultiCropBatch,
    MultiCropCollator,
    MultiCropSample,
    collate_multicrop,
    mask_upperbound,
    ratio_bin_edges,
)
from franca_core.masking import CyclicMask, DinoV2BlockMask

N_GLOBAL, N_LOCAL, B = 2, 3, 32
N = 256


def _sample(b: int, n_local: int = N_LOCAL) -> MultiCropSample:
    """Crop k of sample b is filled with 100 * k + b, so the collated order can be read back."""
    return MultiCropSample(
        global_crops=[torch.full((3, 8, 8), 100.0 * k + b) for k in range(N_GLOBAL)],
        local_crops=[torch.full((3, 4, 4), 100.0 * k + b) for k in range(n_local)],
    )


def _batch(seed: int = 0, generator=None) -> MultiCropBatch:
    samples = [_sample(b) for b in range(B)]
    return collate_multicrop(samples, generator or CyclicMask(16), np.random.default_rng(seed))


def _naive_upperbound(n_images: int, num_patches: int, lo: float, hi: float) -> int:
    n_masked_samples = int(n_images * 0.5)
    total = 0
    for i in range(n_masked_samples):
        total += int(num_patches * (lo + (hi - lo) * (i + 1) / n_masked_samples))
    return total


def test_upperbound_matches_reference_and_naive_loop() -> None:
    assert mask_upperbound(256, ratio_bin_edges(64, 0.5, (0.1, 0.65))) == 3130  # reference §5.5
    assert mask_upperbound(1369, ratio_bin_edges(64, 0.5, (0.1, 0.65))) == 16789
    for n_images, num_patches in [(64, 256), (8, 196), (30, 1369), (2, 64)]:
        edges = ratio_bin_edges(n_images, 0.5, (0.1, 0.65))
        assert mask_upperbound(num_patches, edges) == _naive_upperbound(n_images, num_patches, 0.1, 0.65)
    assert _batch().upperbound == 3130


def test_crops_are_stacked_crop_major() -> None:
    batch = _batch()
    assert batch.global_crops.shape == (N_GLOBAL * B, 3, 8, 8)
    assert batch.local_crops.shape == (N_LOCAL * B, 3, 4, 4)
    assert (batch.n_global_crops, batch.n_local_crops, batch.batch_size) == (N_GLOBAL, N_LOCAL, B)
    for k in range(N_LOCAL):
        for b in range(B):
            assert batch.local_crops[k * B + b, 0, 0, 0] == 100 * k + b
            if k < N_GLOBAL:
                assert batch.global_crops[k * B + b, 0, 0, 0] == 100 * k + b


def test_mask_indices_weights_and_counts() -> None:
    batch = _batch(seed=3)
    assert batch.masks.dtype == torch.bool and batch.masks.shape == (N_GLOBAL * B, N)
    assert torch.equal(batch.mask_indices, torch.nonzero(batch.masks.flatten()).flatten())
    assert batch.n_masked == int(batch.masks.sum()) == batch.mask_indices.numel()
    assert batch.n_masked <= batch.upperbound
    per_image = torch.zeros(N_GLOBAL * B).index_add_(0, batch.mask_indices // N, batch.masks_weight)
    masked_rows = batch.masks.any(dim=1)
    assert torch.allclose(per_image[masked_rows], torch.ones(int(masked_rows.sum())))
    assert torch.all(per_image[~masked_rows] == 0)


def test_half_the_images_are_masked_with_stratified_ratios() -> None:
    for seed in range(5):
        batch = _batch(seed=seed)
        counts = batch.masks.sum(dim=1)
        masked = counts[counts > 0].sort().values
        assert masked.numel() == N_GLOBAL * B // 2
        edges = ratio_bin_edges(N_GLOBAL * B, 0.5, (0.1, 0.65))
        for i, count in enumerate(masked.tolist()):  # the i-th smallest count comes from bin i
            assert int(N * edges[i]) <= count <= int(N * edges[i + 1])


def test_masks_are_shuffled_and_seeded() -> None:
    a, b, c = _batch(seed=0), _batch(seed=0), _batch(seed=1)
    assert torch.equal(a.masks, b.masks) and torch.equal(a.masks_weight, b.masks_weight)
    assert not torch.equal(a.masks, c.masks)
    masked_rows = a.masks.any(dim=1)
    assert not torch.equal(masked_rows, torch.arange(N_GLOBAL * B) < N_GLOBAL * B // 2)


def test_dinov2_generator_stays_under_upperbound() -> None:
    batch = _batch(seed=2, generator=DinoV2BlockMask(16))
    assert 0 < batch.n_masked <= batch.upperbound


def test_to_casts_crops_only() -> None:
    batch = _batch().to("cpu", torch.float16)
    assert batch.global_crops.dtype == batch.local_crops.dtype == torch.float16
    assert batch.masks.dtype == torch.bool
    assert batch.mask_indices.dtype == torch.int64
    assert batch.masks_weight.dtype == torch.float32
    with pytest.raises(AttributeError):
        batch.n_masked = 0  # type: ignore[misc]


def test_no_local_crops_and_invalid_inputs() -> None:
    batch = collate_multicrop([_sample(0, 0), _sample(1, 0)], CyclicMask(16), np.random.default_rng(0))
    assert batch.local_crops.shape == (0, 3, 0, 0) and batch.n_local_crops == 0
    with pytest.raises(ValueError, match="empty"):
        collate_multicrop([], CyclicMask(16), np.random.default_rng(0))
    with pytest.raises(ValueError, match="same numbers"):
        collate_multicrop([_sample(0), _sample(1, 1)], CyclicMask(16), np.random.default_rng(0))


def test_collator_in_a_dataloader_is_reproducible() -> None:
    samples = cast(Dataset[MultiCropSample], [_sample(b) for b in range(16)])

    def run(epoch: int) -> list[MultiCropBatch]:
        collator = MultiCropCollator(CyclicMask(16), seed=5)
        collator.set_epoch(epoch)
        return list(DataLoader(samples, batch_size=4, collate_fn=collator))

    first, second, next_epoch = run(0), run(0), run(1)
    assert len(first) == 4 and all(isinstance(b, MultiCropBatch) for b in first)
    assert all(torch.equal(x.masks, y.masks) for x, y in zip(first, second))
    assert not torch.equal(first[0].masks, first[1].masks)  # a new draw per batch
    assert not torch.equal(first[0].masks, next_epoch[0].masks)  # and per epoch
