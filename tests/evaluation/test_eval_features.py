"""Feature extraction on a tiny random ViT: fields, equivalences, the on-disk cache; pictures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from franca_core.evaluation import pictures
from franca_core.evaluation.features import BackboneFeatures, FeatureRequest, extract_batch
from franca_core.evaluation.sample_data import sample_classification, sample_mosaics
from franca_core.evaluation.transforms import ClassificationDataset, HbirdAugment, SegmentationDataset


def test_extract_batch_fields_and_equivalences(tiny_backbone: torch.nn.Module) -> None:
    x = torch.randn(3, 3, 112, 84)  # non-square: an 8 x 6 patch grid
    plain = extract_batch(tiny_backbone, x, FeatureRequest(patch=True))  # type: ignore[arg-type]
    blocks = extract_batch(tiny_backbone, x, FeatureRequest(patch=True, last_blocks=2))  # type: ignore[arg-type]
    assert plain["cls"].shape == (3, 128) and plain["patch"].shape == (3, 8, 6, 128)
    assert blocks["blocks_cls"].shape == (3, 2, 128) and blocks["avgpool"].shape == (3, 128)
    # the last block after the final norm is x_norm_clstoken / x_norm_patchtokens
    torch.testing.assert_close(blocks["cls"], plain["cls"])
    torch.testing.assert_close(blocks["patch"], plain["patch"])
    torch.testing.assert_close(blocks["blocks_cls"][:, -1], plain["cls"])
    torch.testing.assert_close(blocks["avgpool"], plain["patch"].mean(dim=(1, 2)))


def test_rasa_features(tiny_backbone: torch.nn.Module) -> None:
    model = pytest.importorskip("franca_core.models.factory").build_backbone(
        "vit_small", embed_dim=128, depth=2, num_heads=2, img_size=112
    )
    fold = torch.eye(128) - torch.eye(128)[:, :2] @ torch.eye(128)[:2]  # remove the first 2 directions
    model.attach_rasa(fold)
    out = extract_batch(model, torch.randn(2, 3, 56, 56), FeatureRequest(patch=True, rasa=True))
    torch.testing.assert_close(out["patch_rasa"], out["patch"] @ fold)
    with pytest.raises(ValueError, match="patch_token_rasa"):
        extract_batch(tiny_backbone, torch.randn(1, 3, 56, 56), FeatureRequest(rasa=True))  # type: ignore[arg-type]


def test_cache_roundtrip_does_not_rerun_the_model(tiny_backbone: torch.nn.Module, tmp_path: Path) -> None:
    data = ClassificationDataset(sample_classification("val", 1, size=64), 56)
    src = BackboneFeatures(tiny_backbone, "tiny", tmp_path, batch_size=4, progress=False)
    first = src.extract(data, FeatureRequest(last_blocks=2))
    assert first.cls.shape == (10, 128) and first.targets.tolist() == list(range(10))
    assert len(list(tmp_path.glob("*.pt"))) == 1

    class Exploding(torch.nn.Module):
        patch_size = 14

        def forward_features(self, x: torch.Tensor) -> None:
            raise AssertionError("the cache should have answered")

    cached = BackboneFeatures(Exploding(), "tiny", tmp_path, progress=False).extract(
        data, FeatureRequest(last_blocks=2)
    )
    torch.testing.assert_close(cached.blocks_cls, first.blocks_cls)
    other = BackboneFeatures(tiny_backbone, "other-weights", tmp_path, progress=False)
    assert other.cache_path(data, FeatureRequest(last_blocks=2)) != src.cache_path(
        data, FeatureRequest(last_blocks=2)
    )


def test_segmentation_dataset_and_seeded_augmentation() -> None:
    split = sample_mosaics("train", 2, size=64)
    plain = SegmentationDataset(split, 56)
    img, mask = plain[0]
    assert img.shape == (3, 56, 56) and mask.shape == (56, 56) and mask.dtype == torch.int64
    aug = SegmentationDataset(split, 56, HbirdAugment(epoch=0))
    a1, m1 = aug[1]
    a2, m2 = aug[1]
    assert torch.equal(a1, a2) and torch.equal(m1, m2)  # reproducible, hence cacheable
    a3, _ = SegmentationDataset(split, 56, HbirdAugment(epoch=1))[1]
    assert not torch.equal(a1, a3)
    assert set(m1.unique().tolist()) <= set(range(split.num_classes)) | {split.ignore_index}


def test_attention_hook_matches_backbone_helper(tiny_backbone: torch.nn.Module) -> None:
    x = torch.randn(2, 3, 56, 56)
    mine = pictures.attention_from_qkv_hook(tiny_backbone, x)
    assert mine.shape == (2, 2, 17, 17)
    torch.testing.assert_close(mine.sum(-1), torch.ones(2, 2, 17))
    helper = getattr(tiny_backbone, "get_last_self_attention", None)
    if helper is not None:
        torch.testing.assert_close(mine, helper(x), rtol=1e-4, atol=1e-5)
    maps = pictures.cls_attention_maps(tiny_backbone, x, 14)
    assert maps.shape == (2, 2, 4, 4)


def test_foreground_mask_picks_the_centre() -> None:
    gen = torch.Generator().manual_seed(0)
    patch = 0.05 * torch.randn(10, 10, 16, generator=gen)
    patch[3:7, 3:7, 0] += 1.0  # a distinct object in the centre
    for sign in (1.0, -1.0):  # the PCA sign is arbitrary: the rule must not depend on it
        fg = pictures.foreground_mask(sign * patch)
        assert fg[3:7, 3:7].all() and fg.sum() == 16
    rgb, mask = pictures.pca_rgb([patch, patch.flip(0)])[0]
    assert rgb.shape == (10, 10, 3) and mask.shape == (10, 10)
    assert np.all(rgb[~mask] == 0) and rgb.max() <= 1.0
