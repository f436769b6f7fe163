"""Learning, not just running: the ``debug`` preset trained on real photographs beats its random init.

Task (``CropsOfSourceDataset``): class c = "a crop of scikit-image photograph c", 17 classes. The
neighbour bank holds 20 plain crops per photograph; the held-out queries are other crops of the same
photographs seen through the colour distortions of the training augmentation (jitter, grayscale). A
random ViT separates the photographs mostly by colour statistics, which the distortion breaks;
self-distillation across augmented views learns features that survive it. Both backbones are
measured in this one test, with the DINOv2 weighted k-NN (k = 10, T = 0.07) on the CLS token.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import torch
from torch import Tensor, nn
from torchvision.transforms import v2

from franca_core.data.augment import IMAGENET_MEAN, IMAGENET_STD
from franca_core.data.sources import CropsOfSourceDataset, sample_images
from franca_core.evaluation.knn import knn_accuracies
from franca_core.models.pretrained import load_backbone

if TYPE_CHECKING:  # the fixture's type; conftest modules are not imported by name
    from tests.conftest import DebugPretrained

SCALE = (0.05, 0.3)


def distorted() -> v2.Compose:
    """The colour part of the training augmentation, applied to the held-out queries."""
    return v2.Compose(
        [
            v2.ToImage(),
            v2.RandomApply([v2.ColorJitter(0.4, 0.4, 0.2, 0.1)], p=0.8),
            v2.RandomGrayscale(p=0.2),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )


@torch.no_grad()
def cls_features(model: nn.Module, dataset: CropsOfSourceDataset, seed: int) -> tuple[Tensor, Tensor]:
    torch.manual_seed(seed)  # the query distortions are random: fix them
    images = torch.stack([dataset[i][0] for i in range(len(dataset))])
    features = torch.cat([model(images[i : i + 64]) for i in range(0, len(images), 64)])
    return features, torch.tensor(dataset.labels)


def knn_top1(model: nn.Module, bank: CropsOfSourceDataset, queries: CropsOfSourceDataset) -> float:
    model.eval()
    train, train_labels = cls_features(model, bank, seed=0)
    test, test_labels = cls_features(model, queries, seed=1)
    return knn_accuracies(train, train_labels, test, test_labels, ks=[10])[0].top1


@pytest.mark.slow
def test_debug_preset_learns_features_beyond_random_init(debug_pretrained: DebugPretrained) -> None:
    cfg = debug_pretrained.cfg
    images = sample_images()
    size = cfg.crops.global_size
    bank = CropsOfSourceDataset(images, 20, crop_size=size, split="train", scale=SCALE)
    queries = CropsOfSourceDataset(
        images, 30, crop_size=size, split="heldout", scale=SCALE, transform=distorted()
    )
    random_top1 = knn_top1(debug_pretrained.random_init(), bank, queries)  # the run's initial teacher
    trained_top1 = knn_top1(load_backbone(debug_pretrained.teacher_file), bank, queries)

    print(
        f"k-NN top-1 on distorted held-out crops: random init {random_top1:.1f}%, trained {trained_top1:.1f}%"
    )
    # 510 queries: one standard error is about 2.2 points, so +6 is well beyond noise.
    assert trained_top1 >= random_top1 + 6.0
