"""Training data from a config: source -> plan -> ``TrainStream`` -> DataLoader (one per rank).

The four ``data.source`` kinds (``config/pretrain.py``): the scikit-image photographs, an image
folder, a directory of webdataset shards, and a curation ``manifest.parquet``. The first two are
random access (``IndexedPlan``), the last two streams (``ShardStreamPlan``). :func:`check_data` runs
before anything heavy so that a wrong path fails in a second with a clear message.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from franca_core.config.pretrain import PretrainConfig
from franca_core.data.collate import MultiCropBatch
from franca_core.data.position import DataPosition, PlanKind, StepMasker
from franca_core.data.shards import DataError, ShardFile, list_tar_shards, shards_from_manifest
from franca_core.data.sources import ImageFolderSource, ImageSource, sample_images
from franca_core.data.stream import BatchPlan, IndexedPlan, ShardStreamPlan, TrainStream
from franca_core.train.build import build_augmentation, build_mask_generator


def plan_kind(cfg: PretrainConfig) -> PlanKind:
    return "stream" if cfg.data.source in ("webdataset", "manifest") else "indexed"


def _required_path(cfg: PretrainConfig) -> Path:
    if cfg.data.path is None:
        raise DataError(f"data.source={cfg.data.source} needs data.path (e.g. data.path=/data/images)")
    path = Path(cfg.data.path).expanduser()
    if not path.exists():
        raise DataError(f"data path does not exist: {path}")
    return path


def open_source(cfg: PretrainConfig) -> ImageSource:
    """The random-access source of an indexed config."""
    if cfg.data.source == "sample_images":
        return sample_images()
    path = _required_path(cfg)
    if not path.is_dir():
        raise DataError(f"data.source=folder needs a directory, got a file: {path}")
    try:
        return ImageFolderSource(path)
    except FileNotFoundError as err:
        raise DataError(f"empty dataset: {err}") from err


def open_shards(cfg: PretrainConfig) -> list[ShardFile]:
    """The shards of a streaming config."""
    path = _required_path(cfg)
    return shards_from_manifest(path) if cfg.data.source == "manifest" else list_tar_shards(path)


def check_data(cfg: PretrainConfig) -> int:
    """Open the configured data once; returns the number of images (indexed) or shards (streams)."""
    if plan_kind(cfg) == "stream":
        return len(open_shards(cfg))
    count = len(open_source(cfg))
    if count == 0:
        raise DataError("empty dataset: the source holds no images")
    return count


def initial_position(cfg: PretrainConfig, world_size: int) -> DataPosition:
    """The position of a fresh run (or the layout a resumed position is read with)."""
    return DataPosition(
        kind=plan_kind(cfg),
        step=0,
        samples_seen=0,
        world_size=world_size,
        num_workers=cfg.data.num_workers,
        batch_size_per_rank=cfg.data.batch_size_per_rank,
    )


def build_plan(cfg: PretrainConfig, start: DataPosition, rank: int) -> BatchPlan:
    d = cfg.data
    if start.kind == "stream":
        return ShardStreamPlan(open_shards(cfg), start, rank, d.seed, d.shuffle_window, d.max_short_side)
    return IndexedPlan(open_source(cfg), start, rank, d.seed, d.max_short_side)


def build_masker(cfg: PretrainConfig) -> StepMasker:
    m = cfg.masking
    group = m.group_size or cfg.data.batch_size_per_rank
    if cfg.data.batch_size_per_rank % group:
        raise DataError(f"masking.group_size={group} must divide data.batch_size_per_rank")
    return StepMasker(
        build_mask_generator(cfg), cfg.data.seed, group, m.sample_probability, (m.ratio_min, m.ratio_max)
    )


def _ignore_stop_signals(worker_id: int) -> None:
    """Loader workers leave SIGTERM/SIGUSR1 to the trainer.

    SLURM and ``timeout`` signal the whole process group: a worker dying on SIGTERM would make the
    trainer's next batch raise before it could checkpoint. Workers exit with the loader instead.
    """
    for sig in (signal.SIGTERM, signal.SIGUSR1):
        signal.signal(sig, signal.SIG_IGN)


def build_batches(cfg: PretrainConfig, start: DataPosition, rank: int, pin: bool) -> Iterator[MultiCropBatch]:
    """Endless batches of ``rank`` from ``start``: loader batch n is step ``start.step + n``."""
    stream = TrainStream(
        build_plan(cfg, start, rank), build_augmentation(cfg), build_masker(cfg), start, rank
    )
    workers = cfg.data.num_workers
    loader = DataLoader(
        stream,
        batch_size=None,
        num_workers=workers,
        pin_memory=pin,
        prefetch_factor=2 if workers else None,
        worker_init_fn=_ignore_stop_signals if workers else None,
        # The loader draws its worker base seed from this generator, not from the global RNG, so
        # creating a loader does not shift the training RNG (drop path) of a resumed run.
        generator=torch.Generator().manual_seed(cfg.data.seed),
    )
    return iter(loader)
