"""Fixtures for the evaluation tests: a tiny random ViT, small suites, and the shared datasets if present."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch


@pytest.fixture(scope="session")
def tiny_backbone() -> torch.nn.Module:
    """A random-init ViT with head_dim 64 (so an official-layout file of it reloads exactly), 112 px grid."""
    factory = pytest.importorskip("franca_core.models.factory")
    torch.manual_seed(0)
    return factory.build_backbone("vit_small", embed_dim=128, depth=2, num_heads=2, img_size=112).eval()


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    return tmp_path / "out"
