"""Dedup across shards on a 2-worker Dask LocalCluster equals a brute-force, all-pairs oracle."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from curate_photos import HAS_PHOTOS, photo_rows
from distributed import Client, LocalCluster

from data_filters.cluster import local_cluster_options
from data_filters.config import DaskConfig, DedupConfig
from data_filters.dedup import CandidateSource, deduplicate
from data_filters.neardup import build_index

RADIUS, EVAL_RADIUS, THRESHOLD = 4, 6, 0.5


@pytest.fixture(scope="module")
def two_workers() -> Iterator[Client]:
    options = DaskConfig(n_workers=2, threads_per_worker=1, processes=True, memory_limit="1GiB")
    with LocalCluster(**local_cluster_options(options)) as cluster, Client(cluster) as client:
        yield client


def _flip(value: int, rng: np.random.Generator, n_bits: int) -> int:
    for bit in rng.choice(64, size=n_bits, replace=False):
        value ^= 1 << int(bit)
    return value


def synthetic_rows(n: int, seed: int) -> pd.DataFrame:
    """Rows with exact-duplicate groups, near-duplicate chains, failed rows and varied sizes."""
    rng = np.random.default_rng(seed)
    phash = [int(v) for v in rng.integers(0, 2**63, size=n)]
    pixel = [f"{int(v):032x}" for v in rng.integers(0, 2**62, size=n)]
    for _ in range(n // 5):  # near duplicates, some chained, some just outside the radius
        a, b = (int(i) for i in rng.integers(0, n, size=2))
        phash[b] = _flip(phash[a], rng, int(rng.integers(0, RADIUS + 3)))
    for _ in range(n // 10):  # exact duplicates: same pixels, hence same pHash
        a, b = (int(i) for i in rng.integers(0, n, size=2))
        pixel[b], phash[b] = pixel[a], phash[a]
    reason = ["decode_error" if r < 0.05 else None for r in rng.random(n)]
    return pd.DataFrame(
        {
            "row_id": np.arange(n, dtype=np.int64),
            "reason": pd.Series(reason, dtype=object),
            "pixel_hash": pixel,
            "phash": pd.Series(phash, dtype="UInt64"),
            "width": pd.Series(rng.integers(64, 900, size=n), dtype="Int64"),
            "height": pd.Series(rng.integers(64, 900, size=n), dtype="Int64"),
        }
    )


def oracle(
    rows: pd.DataFrame, unsafe: set[int], excluded: set[int], eval_hashes: list[int]
) -> tuple[set[int], dict[int, int], dict[int, int]]:
    """Contaminated rows, exact drops {row: keeper}, near drops {row: keeper}, by plain loops."""
    live = rows[rows["reason"].isna() & ~rows["row_id"].isin(unsafe | excluded)]
    ids, phash = live["row_id"].tolist(), [int(v) for v in live["phash"]]
    pixels = dict(zip(ids, (live["width"] * live["height"]).tolist()))
    contaminated = {
        i for i, h in zip(ids, phash) if any(bin(h ^ e).count("1") <= EVAL_RADIUS for e in eval_hashes)
    }
    exact: dict[int, int] = {}
    first: dict[str, int] = {}
    for i, digest in zip(ids, live["pixel_hash"]):
        if i in contaminated:
            continue
        if digest in first:
            exact[i] = first[digest]
        else:
            first[digest] = i
    rest = [(i, h) for i, h in zip(ids, phash) if i not in contaminated and i not in exact]
    parent = {i: i for i, _ in rest}

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    for x in range(len(rest)):
        for y in range(x + 1, len(rest)):
            if bin(rest[x][1] ^ rest[y][1]).count("1") <= RADIUS:
                parent[root(rest[x][0])] = root(rest[y][0])
    groups: dict[int, list[int]] = {}
    for i, _ in rest:
        groups.setdefault(root(i), []).append(i)
    near: dict[int, int] = {}
    for members in groups.values():
        keeper = min(members, key=lambda i: (-pixels[i], i))
        near.update({i: keeper for i in members if i != keeper})
    return contaminated, exact, near


def test_dedup_on_two_workers_equals_brute_force(tmp_path: Path, two_workers: Client) -> None:
    rows = synthetic_rows(900, seed=5)
    rng = np.random.default_rng(9)
    sources = []
    for shard, part in enumerate([rows.iloc[0:300], rows.iloc[300:600], rows.iloc[600:]]):
        inspection = tmp_path / f"inspect_{shard}.parquet"
        part.to_parquet(inspection, index=False)
        scores = pd.DataFrame({"row_id": part["row_id"], "score": rng.random(len(part)) * 0.6})
        scores.to_parquet(tmp_path / f"nsfw_{shard}.parquet", index=False)
        sources.append(CandidateSource(inspection, tmp_path / f"nsfw_{shard}.parquet"))
    all_scores = pd.concat(pd.read_parquet(s.nsfw_path) for s in sources if s.nsfw_path is not None)
    unsafe = set(all_scores.loc[all_scores["score"] > THRESHOLD, "row_id"].tolist())
    excluded = set(range(0, 900, 37))  # e.g. punsafe drops
    eval_hashes = [_flip(int(rows["phash"].iloc[i]), rng, 3) for i in (11, 222, 444)] + [12345]
    eval_index = build_index(np.array(eval_hashes, dtype=np.uint64), EVAL_RADIUS)

    config = DedupConfig(hamming_radius=RADIUS, query_chunk=97, hash_buckets=4)
    excluded_ids = np.array(sorted(excluded), dtype=np.int64)
    drops = deduplicate(two_workers, sources, config, THRESHOLD, excluded_ids, eval_index)

    contaminated, exact, near = oracle(rows, unsafe, excluded, eval_hashes)
    assert set(drops.contaminated.row_id.tolist()) == contaminated and contaminated
    assert dict(zip(drops.exact.row_id.tolist(), drops.exact.duplicate_of.tolist())) == exact and exact
    assert dict(zip(drops.near.row_id.tolist(), drops.near.duplicate_of.tolist())) == near and near
    assert (drops.exact.distance == 0).all()


def test_dedup_can_be_switched_off(tmp_path: Path, two_workers: Client) -> None:
    rows = synthetic_rows(200, seed=1)
    rows.to_parquet(tmp_path / "inspect.parquet", index=False)
    sources = [CandidateSource(tmp_path / "inspect.parquet", None)]
    config = DedupConfig(exact=False, near=False)
    drops = deduplicate(two_workers, sources, config, THRESHOLD, np.zeros(0, np.int64))
    assert len(drops.exact) == len(drops.near) == len(drops.contaminated) == 0


@pytest.mark.skipif(not HAS_PHOTOS, reason="../shared/datasets/clothing10 absent")
def test_dedup_of_real_photos_on_two_workers_equals_brute_force(tmp_path: Path, two_workers: Client) -> None:
    """Real photographs and their resized / re-encoded / cropped / lossless copies, in three shards."""
    assert DedupConfig().hamming_radius == RADIUS  # the configured default is what the oracle uses
    rows = photo_rows()
    rows = rows.sample(frac=1.0, random_state=3).reset_index(drop=True)  # copies in other shards
    rows["row_id"] = np.arange(len(rows), dtype=np.int64)
    columns = ["row_id", "reason", "pixel_hash", "phash", "width", "height"]
    sources = []
    per_shard = -(-len(rows) // 3)
    for shard, start in enumerate(range(0, len(rows), per_shard)):
        part = rows[columns].iloc[start : start + per_shard]
        part.to_parquet(tmp_path / f"inspect_{shard}.parquet", index=False)
        sources.append(CandidateSource(tmp_path / f"inspect_{shard}.parquet", None))
    config = DedupConfig(query_chunk=64, hash_buckets=4)
    drops = deduplicate(two_workers, sources, config, THRESHOLD, np.zeros(0, np.int64))

    _, exact, near = oracle(rows[columns], set(), set(), [])
    assert dict(zip(drops.exact.row_id.tolist(), drops.exact.duplicate_of.tolist())) == exact
    assert dict(zip(drops.near.row_id.tolist(), drops.near.duplicate_of.tolist())) == near
    same_pixels = rows[rows["variant"].isin(["original", "png"])].groupby("source")["row_id"]
    planted = {frozenset(ids.tolist()) for _, ids in same_pixels if len(ids) == 2}
    assert {frozenset(pair) for pair in exact.items()} == planted  # the lossless copies, nothing else
    assert len(near) >= 2 * len(planted)  # the resized and re-encoded copies at least
