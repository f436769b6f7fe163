"""Shared helpers for the RASA tests: a tiny ViT whose position embedding carries a known, smooth signal.

A randomly initialised ViT has a weak positional signal at its output (pos_embed is trunc-normal 0.02 while
the patch embedding of a photograph is ~25x larger, and LayerScale 1e-5 makes the blocks near-identity), so
a fresh probe's R² is ~0.05. Tests that need a clear positional bias plant one: the grid coordinates and a
low-frequency cosine of each, along four orthonormal directions, like the smooth pos_embed of a trained ViT.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import pytest
import torch

from franca_core.models import build_backbone
from franca_core.models.vision_transformer import VisionTransformer
from franca_core.rasa.config import AugmentConfig, DataConfig, DiagnosticsConfig, RasaConfig, TrainConfig
from franca_core.rasa.head import grid_positions

BackboneFactory = Callable[..., VisionTransformer]


def make_positional_backbone(
    dim: int = 64, depth: int = 2, img_size: int = 112, amplitude: float = 8.0, seed: int = 0
) -> VisionTransformer:
    """A random tiny ViT (patch 14) whose patch position embeddings are amplitude * phi(row, col) @ U."""
    torch.manual_seed(seed)
    model = build_backbone("vit_small", embed_dim=dim, depth=depth, num_heads=2, img_size=img_size)
    side = img_size // 14
    pos = grid_positions((side, side), torch.float32)  # [N, 2] in [0, 1]
    phi = torch.cat([pos - 0.5, torch.cos(math.pi * pos)], dim=1)  # [N, 4]
    directions = torch.linalg.qr(torch.randn(dim, 4))[0].T  # [4, D] orthonormal rows
    with torch.no_grad():
        model.pos_embed[0, 1:] = amplitude * (phi / phi.std(0)) @ directions / math.sqrt(4)
    return model.eval()


@pytest.fixture(scope="session")
def positional_backbone() -> BackboneFactory:
    """The ``make_positional_backbone`` factory, for tests that build one or more such models."""
    return make_positional_backbone


@pytest.fixture(scope="session")
def small_rasa_config() -> RasaConfig:
    """RASA settings scaled to the 17 sample photographs at 112 px: seconds per round on one CPU thread."""
    return RasaConfig(
        name="test",
        augment=AugmentConfig(img_size=112),
        train=TrainConfig(epochs_per_round=20, batch_size=16, lr=1e-2),
        data=DataConfig(views_per_image=8, diag_views_per_image=4),
        diagnostics=DiagnosticsConfig(
            clusters=8, knn_crops_per_image=8, hummingbird_train_mosaics=8, hummingbird_val_mosaics=4
        ),
    )


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """Tiny tensors: one intra-op thread is faster than several fighting over two loaded cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
