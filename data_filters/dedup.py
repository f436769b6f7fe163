"""Decontamination, exact and near-duplicate removal across all shards, on a Dask cluster.

The steps, each a plain function of numpy blocks (testable without Dask) and fanned out by
``deduplicate``:

1. ``load_candidates`` per shard: rows that passed integrity and NSFW filtering.
2. ``find_contaminated`` per shard: rows within the decontamination radius of an evaluation image
   (multi-index search against the evaluation hashes), as DINOv2 does for its LVD-142M retrieval.
3. Exact duplicates on decoded pixels: blocks are split by pixel-hash bucket (a shuffle between
   workers), and in each bucket the earliest row of every group of equal hashes is kept.
4. Near duplicates: one multi-index over the distinct pHashes of all survivors, searched in chunks
   by many tasks; rows joined by pairs within the radius form connected components, and each
   component keeps its largest image (ties: earliest row).

Choosing a keeper per connected component means a chain A~B~C keeps one image even when A and C
are further apart than the radius; that is the usual trade-off of component-based dedup.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from operator import getitem
from pathlib import Path

import numpy as np
import pandas as pd
from distributed import Client, Future
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from data_filters.blocks import CandidateBlock, Drops
from data_filters.config import DedupConfig
from data_filters.hashing import popcount64
from data_filters.neardup import HashIndex, build_index, search, search_self
from data_filters.reasons import Reason


@dataclass(frozen=True)
class CandidateSource:
    """Files describing one shard's rows: its inspection and (optionally) its detector scores."""

    inspection_path: Path
    nsfw_path: Path | None


def load_candidates(
    source: CandidateSource, nsfw_threshold: float, excluded_rows: np.ndarray
) -> CandidateBlock:
    """Rows of one shard that passed inspection, the detector threshold and are not excluded."""
    columns = ["row_id", "reason", "pixel_hash", "phash", "width", "height"]
    frame = pd.read_parquet(source.inspection_path, columns=columns)
    frame = frame[frame["reason"].isna() & ~frame["row_id"].isin(excluded_rows)]
    if source.nsfw_path is not None:
        scores = pd.read_parquet(source.nsfw_path)
        unsafe = scores.loc[scores["score"] > nsfw_threshold, "row_id"]
        frame = frame[~frame["row_id"].isin(unsafe)]
    return CandidateBlock.from_frame(frame)


def find_contaminated(block: CandidateBlock, eval_index: HashIndex) -> Drops:
    """Rows within the eval index radius of an evaluation hash; ``duplicate_of`` = eval position."""
    if len(block) == 0 or len(eval_index) == 0:
        return Drops.none(Reason.EVAL_CONTAMINATION)
    query, target = search(eval_index, block.phash)
    distance = popcount64(block.phash[query] ^ eval_index.hashes[target])
    order = np.lexsort((target, distance, query))  # per query: closest eval image first
    query, target, distance = query[order], target[order], distance[order]
    first = np.concatenate(([True], query[1:] != query[:-1])) if len(query) else np.zeros(0, bool)
    return Drops(Reason.EVAL_CONTAMINATION, block.row_id[query[first]], target[first], distance[first])


def without(block: CandidateBlock, drops: Drops) -> CandidateBlock:
    """``block`` minus the dropped rows."""
    return block.take(~np.isin(block.row_id, drops.row_id))


def split_by_bucket(block: CandidateBlock, n_buckets: int) -> list[CandidateBlock]:
    """Partition rows by pixel hash, so equal hashes meet in the same bucket."""
    bucket = (block.hash_lo % np.uint64(n_buckets)).astype(np.int64)
    return [block.take(bucket == b) for b in range(n_buckets)]


def exact_duplicates(parts: Sequence[CandidateBlock]) -> Drops:
    """Within one bucket: every row whose pixels equal an earlier row's."""
    block = CandidateBlock.concat(parts)
    order = np.lexsort((block.row_id, block.hash_lo, block.hash_hi))
    hi, lo, rows = block.hash_hi[order], block.hash_lo[order], block.row_id[order]
    new_group = np.ones(len(rows), dtype=bool)
    new_group[1:] = (hi[1:] != hi[:-1]) | (lo[1:] != lo[:-1])
    keeper = rows[np.maximum.accumulate(np.where(new_group, np.arange(len(rows)), 0))]
    dup = ~new_group
    return Drops(Reason.DUPLICATE_EXACT, rows[dup], keeper[dup], np.zeros(int(dup.sum()), np.int64))


@dataclass(frozen=True)
class NearIndex:
    """Survivors of exact dedup and a multi-index over their distinct pHashes."""

    block: CandidateBlock
    first: np.ndarray  # (k,) position of the first row having each distinct pHash
    inverse: np.ndarray  # (n,) position of each row's pHash among the k distinct values
    index: HashIndex

    def __len__(self) -> int:
        """Number of distinct pHashes (the number of search queries)."""
        return len(self.index)


def build_near_index(
    parts: Sequence[CandidateBlock], drops: Sequence[Drops], config: DedupConfig
) -> NearIndex:
    """Gather the survivors of every shard and index their distinct pHashes."""
    block = CandidateBlock.concat(parts)
    block = without(block, Drops.concat(Reason.DUPLICATE_EXACT, drops))
    block = block.take(np.argsort(block.row_id, kind="stable"))
    distinct, first, inverse = np.unique(block.phash, return_index=True, return_inverse=True)
    index = build_index(distinct, config.hamming_radius, n_bands=config.n_bands)
    return NearIndex(block, first.astype(np.int64), inverse.astype(np.int64), index)


def near_pairs(near: NearIndex, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of distinct pHash values within the radius, for queries [start, stop)."""
    return search_self(near.index, start, stop)


def near_duplicates(near: NearIndex, pairs: Sequence[tuple[np.ndarray, np.ndarray]]) -> Drops:
    """Connected components of near pairs (and of equal pHashes); keep the largest image of each."""
    block, n = near.block, len(near.block)
    if n == 0:
        return Drops.none(Reason.DUPLICATE_NEAR)
    # graph over rows: every row linked to the first row with its pHash, plus one edge per pair
    first_row = near.first
    a = np.concatenate([np.arange(n), *(first_row[p[0]] for p in pairs)])
    b = np.concatenate([first_row[near.inverse], *(first_row[p[1]] for p in pairs)])
    graph = coo_matrix((np.ones(len(a), np.int8), (a, b)), shape=(n, n))
    _, component = connected_components(graph, directed=False)
    # keeper: most pixels, then smallest row id (rows are sorted by row id)
    order = np.lexsort((block.row_id, -block.pixels, component))
    starts = np.concatenate(([True], component[order][1:] != component[order][:-1]))
    keeper_pos = np.empty(n, dtype=np.int64)
    keeper_pos[component[order[starts]]] = order[starts]
    keeper = keeper_pos[component]
    dup = keeper != np.arange(n)
    distance = popcount64(block.phash[dup] ^ block.phash[keeper[dup]])
    return Drops(Reason.DUPLICATE_NEAR, block.row_id[dup], block.row_id[keeper[dup]], distance)


@dataclass(frozen=True)
class DedupDrops:
    """What ``deduplicate`` removed, by step."""

    contaminated: Drops
    exact: Drops
    near: Drops


def deduplicate(
    client: Client,
    sources: Sequence[CandidateSource],
    config: DedupConfig,
    nsfw_threshold: float,
    excluded_rows: np.ndarray,
    eval_index: HashIndex | None = None,
) -> DedupDrops:
    """Run decontamination, exact and near dedup over all shards on ``client``'s cluster."""
    excluded = client.scatter(excluded_rows, broadcast=True)
    blocks = client.map(
        load_candidates, list(sources), nsfw_threshold=nsfw_threshold, excluded_rows=excluded, pure=False
    )
    contaminated = Drops.none(Reason.EVAL_CONTAMINATION)
    if eval_index is not None and len(eval_index) > 0:
        eval_future = client.scatter(eval_index, broadcast=True)
        found = client.map(find_contaminated, blocks, eval_index=eval_future, pure=False)
        blocks = client.map(without, blocks, found, pure=False)
        contaminated = Drops.concat(Reason.EVAL_CONTAMINATION, client.gather(found))
    exact_futures = _exact(client, blocks, config) if config.exact else []
    exact = Drops.concat(Reason.DUPLICATE_EXACT, client.gather(exact_futures))
    near = _near(client, blocks, exact_futures, config) if config.near else Drops.none(Reason.DUPLICATE_NEAR)
    return DedupDrops(contaminated, exact, near)


def _exact(client: Client, blocks: list[Future], config: DedupConfig) -> list[Future]:
    n = config.hash_buckets
    split = client.map(split_by_bucket, blocks, n_buckets=n, pure=False)
    futures = []
    for bucket in range(n):
        parts = [client.submit(getitem, s, bucket, pure=False) for s in split]
        futures.append(client.submit(exact_duplicates, parts, pure=False))
    return futures


def _near(client: Client, blocks: list[Future], exact: list[Future], config: DedupConfig) -> Drops:
    near = client.submit(build_near_index, blocks, exact, config, pure=False)
    n_distinct = int(client.submit(len, near, pure=False).result())
    chunks = [(s, min(s + config.query_chunk, n_distinct)) for s in range(0, n_distinct, config.query_chunk)]
    pairs = [client.submit(near_pairs, near, s, e, pure=False) for s, e in chunks]
    result: Drops = client.submit(near_duplicates, near, pairs, pure=False).result()
    return result
