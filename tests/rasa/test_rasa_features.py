"""Image sources, seeded views and feature batches of the RASA stage."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from PIL import Image

from franca_core.models.vision_transformer import VisionTransformer
from franca_core.rasa.config import AugmentConfig, TrainConfig
from franca_core.rasa.features import (
    CachedPatches,
    StreamedPatches,
    ViewsDataset,
    open_images,
    split_indices,
    train_transform,
)
from franca_core.rasa.train import train_rasa


def _write_images(folder: Path, n: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"img{i}.png"
        Image.new("RGB", (40 + i, 30), color=(10 * i, 50, 100)).save(path)
        paths.append(path)
    return paths


def test_open_images_sample_folder_and_manifests(tmp_path: Path) -> None:
    assert len(open_images("sample")) == 17
    assert len(open_images("sample", max_images=5)) == 5
    paths = _write_images(tmp_path / "imgs", 3)
    assert len(open_images(tmp_path / "imgs")) == 3
    (tmp_path / "list.csv").write_text("path,label\n" + "".join(f"imgs/{p.name},x\n" for p in paths))
    assert open_images(tmp_path / "list.csv")[2].size == (42, 30)
    (tmp_path / "list.txt").write_text("# images\n" + "".join(f"{p}\n" for p in paths))
    assert len(open_images(tmp_path / "list.txt")) == 3
    with pytest.raises(FileNotFoundError):
        open_images(tmp_path / "missing")
    (tmp_path / "bad.txt").write_text("nope.png\n")
    with pytest.raises(FileNotFoundError, match="do not exist"):
        open_images(tmp_path / "bad.txt")


@pytest.mark.parametrize("n", [2, 17, 100])
def test_split_is_a_partition(n: int) -> None:
    train, held = split_indices(n, 0.3, seed=0)
    assert train and held and sorted(train + held) == list(range(n))
    assert split_indices(n, 0.3, seed=0) == (train, held)
    with pytest.raises(ValueError):
        split_indices(1, 0.3, 0)


def test_views_are_seeded_and_leave_the_global_rng_alone() -> None:
    images = open_images("sample", max_images=2)
    views = ViewsDataset(images, train_transform(AugmentConfig(), 56), views=3, seed=5)
    assert len(views) == 6 and views[4].shape == (3, 56, 56)
    state = torch.random.get_rng_state()
    assert torch.equal(views[4], views[4])
    assert torch.equal(torch.random.get_rng_state(), state)
    assert not torch.equal(views[3], views[4])
    other_epoch = ViewsDataset(images, train_transform(AugmentConfig(), 56), views=3, seed=5, epoch=1)
    assert not torch.equal(views[4], other_epoch[4])


def test_cached_batches_cover_each_view_once() -> None:
    tokens = torch.arange(10.0).reshape(10, 1, 1).expand(10, 4, 3)
    batches = CachedPatches(tokens)
    seen = torch.cat([b[:, 0, 0] for b in batches.epoch(0, 4, torch.Generator().manual_seed(0))])
    assert batches.steps_per_epoch(4) == 3 and sorted(seen.tolist()) == list(range(10))


def test_streamed_views_train_a_round(positional_backbone: Callable[..., VisionTransformer]) -> None:
    model = positional_backbone(dim=32, depth=1, img_size=56, amplitude=3.0)
    images = open_images("sample", max_images=4)
    stream = StreamedPatches(model, images, train_transform(AugmentConfig(), 56), seed=0)
    batch = next(stream.epoch(0, 3, torch.Generator().manual_seed(0)))
    assert batch.shape == (3, 16, 32) and stream.steps_per_epoch(3) == 2
    cfg = TrainConfig(rounds=2, epochs_per_round=2, batch_size=2, lr=1e-2, early_stop_min_gain=None)
    result = train_rasa(stream, (4, 4), 32, cfg)
    assert result.rounds_run == 2 and result.head.n_pre_layers == 1
