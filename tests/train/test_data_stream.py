"""Training data: batches are pure functions of (data position, step, rank), for every source kind."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from franca_core.config import PretrainConfig
from franca_core.data.collate import MultiCropBatch
from franca_core.data.position import DataPosition
from franca_core.data.shards import DataError, list_tar_shards, scan_shard, shards_from_manifest
from franca_core.train.data import build_batches, check_data, initial_position

Tiny = Callable[..., PretrainConfig]


def take(cfg: PretrainConfig, start: DataPosition, n: int, rank: int = 0) -> list[MultiCropBatch]:
    return list(itertools.islice(build_batches(cfg, start, rank, pin=False), n))


def assert_same(a: MultiCropBatch, b: MultiCropBatch) -> None:
    for name in ("global_crops", "local_crops", "masks", "mask_indices", "masks_weight"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert (a.n_masked, a.upperbound) == (b.n_masked, b.upperbound)


def source_overrides(kind: str, image_folder: Path, shard_dir: Path) -> tuple[str, ...]:
    return {
        "sample_images": ("data.source=sample_images",),
        "folder": ("data.source=folder", f"data.path={image_folder}"),
        "webdataset": (
            "data.source=webdataset",
            f"data.path={shard_dir / 'shards'}",
            "data.shuffle_window=4",
        ),
        "manifest": (
            "data.source=manifest",
            f"data.path={shard_dir / 'manifest.parquet'}",
            "data.shuffle_window=4",
        ),
    }[kind]


@pytest.mark.parametrize("kind", ["folder", "manifest"])
@pytest.mark.parametrize("workers", [0, 2])
def test_resuming_at_a_position_gives_the_uninterrupted_batches(
    tiny_config: Tiny, image_folder: Path, shard_dir: Path, kind: str, workers: int
) -> None:
    cfg = tiny_config(*source_overrides(kind, image_folder, shard_dir), f"data.num_workers={workers}")
    fresh = initial_position(cfg, world_size=1)
    uninterrupted = take(cfg, fresh, 5)
    resumed = take(cfg, fresh.advanced_to(3), 2)
    for a, b in zip(uninterrupted[3:], resumed, strict=True):
        assert_same(a, b)
    assert not torch.equal(uninterrupted[0].global_crops, uninterrupted[1].global_crops)


def test_indexed_batches_do_not_depend_on_worker_count(tiny_config: Tiny, image_folder: Path) -> None:
    base = source_overrides("folder", image_folder, image_folder)
    serial = take(tiny_config(*base), initial_position(tiny_config(*base), 1), 3)
    parallel_cfg = tiny_config(*base, "data.num_workers=2")
    for a, b in zip(serial, take(parallel_cfg, initial_position(parallel_cfg, 1), 3), strict=True):
        assert_same(a, b)


def test_two_ranks_split_the_one_rank_batch(tiny_config: Tiny) -> None:
    """Rank r of 2 (batch 2) sees images r*2..r*2+1 of the 1-rank batch of 4, with the same masks."""
    one = tiny_config("masking.group_size=2")
    two = tiny_config("masking.group_size=2", "data.batch_size_per_rank=2")
    whole = take(one, initial_position(one, 1), 2)
    halves = [take(two, initial_position(two, 2), 2, rank=r) for r in (0, 1)]
    for step in range(2):
        g = whole[step].global_crops.view(2, 4, *whole[step].global_crops.shape[1:])  # [n_g, B, 3, H, W]
        m = whole[step].masks.view(2, 4, -1)
        for rank in (0, 1):
            part = halves[rank][step]
            assert torch.equal(part.global_crops, g[:, 2 * rank : 2 * rank + 2].flatten(0, 1))
            assert torch.equal(part.masks, m[:, 2 * rank : 2 * rank + 2].flatten(0, 1))


def test_manifest_keeps_kept_keys_and_skips_undecodable_images(tiny_config: Tiny, shard_dir: Path) -> None:
    shards = shards_from_manifest(shard_dir / "manifest.parquet")
    keys = {ref.key for i, s in enumerate(shards) for ref in scan_shard(s, i)}
    assert len(keys) == 13 and not keys & {"000003", "000011"}
    assert (
        sum(1 for _ in scan_shard(list_tar_shards(shard_dir / "shards")[0], 0)) == 5
    )  # json members skipped
    cfg = tiny_config(*source_overrides("manifest", shard_dir, shard_dir))
    for batch in take(cfg, initial_position(cfg, 1), 4):  # 16 images > 12 decodable: wraps into epoch 2
        assert batch.global_crops.shape[0] == 2 * 4


def test_a_new_stream_layout_starts_a_new_generation(tiny_config: Tiny, shard_dir: Path) -> None:
    cfg = tiny_config(*source_overrides("webdataset", shard_dir, shard_dir))
    old = initial_position(cfg, 1).advanced_to(6)
    moved = old.continued_as(replace(initial_position(cfg, 2), step=0))
    assert (moved.step, moved.origin_step, moved.generation, moved.world_size) == (6, 6, 1, 2)
    assert old.continued_as(initial_position(cfg, 1)) == old
    assert DataPosition.from_dict(moved.to_dict()) == moved


def test_clear_errors_for_bad_data(tiny_config: Tiny, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        check_data(tiny_config("data.source=folder", f"data.path={tmp_path / 'nope'}"))
    with pytest.raises(DataError, match="empty dataset"):
        check_data(tiny_config("data.source=folder", f"data.path={tmp_path}"))
    with pytest.raises(DataError, match=r"needs data\.path"):
        check_data(tiny_config("data.source=webdataset"))
    with pytest.raises(DataError, match=r"no \.tar shards"):
        check_data(tiny_config("data.source=webdataset", f"data.path={tmp_path}"))
    pq.write_table(pa.Table.from_pylist([{"key": "a"}]), tmp_path / "m.parquet")
    with pytest.raises(DataError, match="lacks column"):
        check_data(tiny_config("data.source=manifest", f"data.path={tmp_path / 'm.parquet'}"))
