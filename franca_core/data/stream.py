"""Resumable training streams: the images each rank and DataLoader worker reads at every step.

A rank's DataLoader has W workers; batch n of the loader comes from worker n mod W (the DataLoader
takes batches round-robin), so each worker produces every W-th batch and the order does not depend on
timing. Two plans say which images form rank r's batch n (steps counted from the data position):

- :class:`IndexedPlan`, for random-access sources (image folder, sample images): one global order,
  epoch e being a permutation of the N images seeded by (seed, e). Step s covers global positions
  [cursor + s G, cursor + (s + 1) G) and rank r takes its B consecutive ones, so the images of a step
  do not depend on the number of ranks or workers. Crops use ``derive_seed(seed, epoch, index)``,
  the convention of ``MultiCropDataset``.
- :class:`ShardStreamPlan`, for webdataset shards read sequentially (DINOv2/Franca stream LAION the
  same way, reference §3.2 'Datasets'). Every (rank, worker) stream reads its own shards (shard order
  permuted per epoch; with fewer shards than streams, every stream reads all shards and keeps every
  k-th sample), shuffled within windows of ``shuffle_window`` samples. Resuming skips the samples a
  stream already consumed by scanning tar headers only.

:class:`TrainStream` turns a plan into ``MultiCropBatch`` es with the masks of ``StepMasker``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol, TypeVar

import numpy as np
import torch
from PIL import Image
from torch.utils.data import IterableDataset, get_worker_info

from franca_core.data.augment import MultiCropAugmentation, derive_seed
from franca_core.data.collate import MultiCropBatch, collate_multicrop
from franca_core.data.position import DataPosition, StepMasker, attach_masks
from franca_core.data.shards import DataError, SampleRef, ShardFile, read_image, scan_shard
from franca_core.data.sources import ImageSource

T = TypeVar("T")
SeededImage = tuple[Image.Image, int]  # an image and the seed of its crops


class BatchPlan(Protocol):
    """Which images rank ``rank`` uses for its loader batches (n = 0, 1, ... from the data position)."""

    def batches(self, worker: int, num_workers: int) -> Iterator[tuple[int, list[SeededImage]]]:
        """(n, images of batch n) for the batches n = worker, worker + W, ... of this rank."""
        ...


def downscale(img: Image.Image, max_short_side: int | None) -> Image.Image:
    """Shrink ``img`` so its shorter side is at most ``max_short_side`` (bicubic); else unchanged."""
    short = min(img.size)
    if max_short_side is None or short <= max_short_side:
        return img
    scale = max_short_side / short
    size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    return img.resize(size, Image.Resampling.BICUBIC)


@dataclass
class IndexedPlan:
    """A seeded global order over a random-access source; see the module docstring."""

    source: ImageSource
    start: DataPosition
    rank: int
    seed: int
    max_short_side: int | None = None

    def __post_init__(self) -> None:
        if len(self.source) == 0:
            raise DataError("the dataset is empty")
        self._orders: dict[int, np.ndarray] = {}

    def _order(self, epoch: int) -> np.ndarray:
        if epoch not in self._orders:
            self._orders = {epoch: np.random.default_rng((self.seed, epoch)).permutation(len(self.source))}
        return self._orders[epoch]

    def images(self, n: int) -> list[SeededImage]:
        """The images of loader batch ``n`` for this rank."""
        size, batch = len(self.source), self.start.batch_size_per_rank
        first = self.start.samples_seen + n * self.start.global_batch + self.rank * batch
        out = []
        for position in range(first, first + batch):
            epoch = position // size
            index = int(self._order(epoch)[position % size])
            image = downscale(self.source[index], self.max_short_side)
            out.append((image, derive_seed(self.seed, epoch, index)))
        return out

    def batches(self, worker: int, num_workers: int) -> Iterator[tuple[int, list[SeededImage]]]:
        for n in itertools.count(worker, num_workers):
            yield n, self.images(n)


def _chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


@dataclass
class ShardStreamPlan:
    """Per-(rank, worker) streams over webdataset shards; see the module docstring."""

    shards: Sequence[ShardFile]
    start: DataPosition
    rank: int
    seed: int
    shuffle_window: int = 2048
    max_short_side: int | None = None

    def _epoch(self, stream: int, n_streams: int, epoch: int) -> Iterator[SampleRef]:
        rng = np.random.default_rng((self.seed, self.start.generation, epoch))
        order = [int(i) for i in rng.permutation(len(self.shards))]
        if len(order) >= n_streams:
            for index in order[stream::n_streams]:
                yield from scan_shard(self.shards[index], index)
            return
        every = itertools.chain.from_iterable(scan_shard(self.shards[i], i) for i in order)
        yield from itertools.islice(every, stream, None, n_streams)

    def refs(self, stream: int, n_streams: int) -> Iterator[tuple[int, SampleRef]]:
        """The endless, window-shuffled (epoch, sample) sequence of one stream."""
        tagged = (
            (epoch, ref)
            for epoch in itertools.count()
            for ref in self._epoch_checked(stream, n_streams, epoch)
        )
        for window, chunk in enumerate(_chunks(tagged, self.shuffle_window)):
            rng = np.random.default_rng((self.seed, self.start.generation, stream, window))
            yield from (chunk[int(i)] for i in rng.permutation(len(chunk)))

    def _epoch_checked(self, stream: int, n_streams: int, epoch: int) -> Iterator[SampleRef]:
        empty = True
        for ref in self._epoch(stream, n_streams, epoch):
            empty = False
            yield ref
        if empty:
            raise DataError(
                f"data stream {stream} of {n_streams} found no images in {len(self.shards)} shard(s)"
            )

    def _decode(self, ref: SampleRef) -> Image.Image | None:
        try:
            return downscale(read_image(self.shards[ref.shard].path, ref), self.max_short_side)
        except OSError:
            return None

    def _images(self, refs: list[tuple[int, SampleRef]]) -> list[SeededImage]:
        """Decode one batch; an undecodable image is replaced by the next decodable one of the batch
        (with its own crop seed), so every batch consumes exactly B samples of the stream."""
        decoded = [self._decode(ref) for _, ref in refs]
        if all(image is None for image in decoded):
            raise DataError(f"no decodable image among {[ref.key for _, ref in refs]}")
        n = len(decoded)
        out = []
        for slot, (epoch, ref) in enumerate(refs):
            image = next(img for k in range(n) if (img := decoded[(slot + k) % n]) is not None)
            out.append((image, derive_seed(self.seed, self.start.generation, epoch, ref.shard, ref.index)))
        return out

    def batches(self, worker: int, num_workers: int) -> Iterator[tuple[int, list[SeededImage]]]:
        batch = self.start.batch_size_per_rank
        first = self.start.step - self.start.origin_step + worker  # rank batch index since origin
        stream = self.rank * num_workers + first % num_workers
        refs = self.refs(stream, self.start.world_size * num_workers)
        consumed = first // num_workers  # batches this stream produced before
        for _ in itertools.islice(refs, consumed * batch):
            pass
        for n in itertools.count(worker, num_workers):
            yield n, self._images(list(itertools.islice(refs, batch)))


@contextmanager
def _one_thread(enabled: bool) -> Iterator[None]:
    """Augment with one intra-op thread in the main process (DataLoader workers already use one)."""
    before = torch.get_num_threads()
    if enabled:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if enabled:
            torch.set_num_threads(before)


class TrainStream(IterableDataset[MultiCropBatch]):
    """Endless batches of one rank: plan -> augmentation -> collate -> step masks.

    Use with ``DataLoader(stream, batch_size=None, num_workers=W)``; yields ``MultiCropBatch``. Loader
    batch n is step ``start.step + n``.
    """

    def __init__(
        self,
        plan: BatchPlan,
        augmentation: MultiCropAugmentation,
        masker: StepMasker,
        start: DataPosition,
        rank: int,
    ) -> None:
        self.plan, self.augmentation, self.masker = plan, augmentation, masker
        self.start, self.rank = start, rank

    def __iter__(self) -> Iterator[MultiCropBatch]:
        info = get_worker_info()
        worker, num_workers = (0, 1) if info is None else (info.id, info.num_workers)
        batch = self.start.batch_size_per_rank
        for n, images in self.plan.batches(worker, num_workers):
            with _one_thread(info is None):
                samples = [self.augmentation(image, seed=seed) for image, seed in images]
            stacked = collate_multicrop(samples, self.masker.generator, np.random.default_rng(0), 0.0)
            masks, upperbound = self.masker.masks(self.start.step + n, self.rank * batch, batch)
            yield attach_masks(stacked, masks, upperbound)
