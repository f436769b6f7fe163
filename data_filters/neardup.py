"""Hamming-radius search over 64-bit hashes by multi-index hashing, and its brute-force oracle.

Multi-index hashing (Norouzi, Punjani & Fleet, "Fast Search in Hamming Space with Multi-Index
Hashing", CVPR 2012): cut each 64-bit hash into m disjoint bands. If two hashes differ in at most
r bits, by pigeonhole some band differs in at most floor(r / m) bits. So for every band we look up
all values within that small sub-radius (r' = 0 is plain banding: the bands must be equal), take
the union as candidates, and verify each candidate with a popcount. Each band has a direct-address
table (bucket offsets of the band value, CSR style), so a probe is two array gathers.

The number of bands is chosen by a cost model (table size + probes + expected candidates for
uniform hashes), which keeps the search close to linear up to about 2^22 hashes per band table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations

import numpy as np

from data_filters.hashing import popcount64

HASH_BITS = 64
MAX_BAND_BITS = 24  # direct-address table of 2^24 offsets = 128 MiB at most
MAX_MASKS = 50_000


@dataclass(frozen=True)
class BandPlan:
    """How the 64 bits are cut: band widths (low bits first) and the per-band sub-radius."""

    radius: int
    widths: tuple[int, ...]

    @property
    def n_bands(self) -> int:
        return len(self.widths)

    @property
    def sub_radius(self) -> int:
        return self.radius // self.n_bands

    @property
    def starts(self) -> tuple[int, ...]:
        return tuple(int(s) for s in np.cumsum((0, *self.widths[:-1])))


def band_widths(n_bands: int) -> tuple[int, ...]:
    """Split 64 bits into ``n_bands`` widths differing by at most one."""
    base, extra = divmod(HASH_BITS, n_bands)
    return tuple(base + 1 if i < extra else base for i in range(n_bands))


def _n_masks(width: int, sub_radius: int) -> int:
    return sum(math.comb(width, k) for k in range(sub_radius + 1))


def plan_cost(n_index: int, n_queries: int, radius: int, n_bands: int) -> float:
    """Estimated cost of a search with ``n_bands`` bands, in units of one table entry (~10 ns).

    Weights measured on a 2-core x86 machine: building a table costs ~1 unit per entry, a probe
    ~1 unit per query and mask, a candidate (expand, verify, deduplicate) ~6 units.
    """
    width = max(band_widths(n_bands))
    probes = n_bands * _n_masks(width, radius // n_bands)  # per query
    candidates = probes * n_index / 2.0**width  # per query, for uniform hashes
    return n_bands * 2.0**width + n_queries * (probes + 6.0 * candidates)


def plan_bands(n_index: int, n_queries: int, radius: int, n_bands: int | None = None) -> BandPlan:
    """The cheapest feasible band plan, or the one with ``n_bands`` bands when given."""
    if n_bands is not None:
        return BandPlan(radius, band_widths(n_bands))
    feasible = [
        m
        for m in range(3, 17)
        if max(band_widths(m)) <= MAX_BAND_BITS and _n_masks(max(band_widths(m)), radius // m) <= MAX_MASKS
    ]
    best = min(feasible, key=lambda m: plan_cost(n_index, n_queries, radius, m))
    return BandPlan(radius, band_widths(best))


def flip_masks(width: int, sub_radius: int) -> np.ndarray:
    """All ``width``-bit masks with at most ``sub_radius`` bits set, as int64 (0 first)."""
    masks = [0]
    for k in range(1, sub_radius + 1):
        masks.extend(sum(1 << b for b in bits) for bits in combinations(range(width), k))
    return np.array(masks, dtype=np.int64)


def _band_values(hashes: np.ndarray, start: int, width: int) -> np.ndarray:
    return ((hashes >> np.uint64(start)) & np.uint64((1 << width) - 1)).astype(np.int64)


@dataclass(frozen=True)
class BandTable:
    """Ids of one band sorted by band value, and where each value's run starts (CSR)."""

    start: int
    width: int
    offsets: np.ndarray  # (2^width + 1,) int32 (int64 beyond 2^31 hashes)
    order: np.ndarray  # (n,) int64 ids, grouped by band value


@dataclass(frozen=True)
class HashIndex:
    """Multi-index over a set of 64-bit hashes; picklable, so it can be sent to Dask workers."""

    hashes: np.ndarray  # (n,) uint64
    plan: BandPlan
    tables: tuple[BandTable, ...]

    def __len__(self) -> int:
        return len(self.hashes)


def build_index(
    hashes: np.ndarray, radius: int, n_queries: int | None = None, n_bands: int | None = None
) -> HashIndex:
    """Index ``hashes`` for searches within ``radius``; ``n_queries`` tunes the band plan."""
    hashes = np.ascontiguousarray(hashes, dtype=np.uint64)
    plan = plan_bands(len(hashes), len(hashes) if n_queries is None else n_queries, radius, n_bands)
    tables = []
    for start, width in zip(plan.starts, plan.widths):
        values = _band_values(hashes, start, width)
        order = np.argsort(values, kind="stable").astype(np.int64)
        counts = np.bincount(values, minlength=1 << width)
        offset_type = np.int32 if len(hashes) < 2**31 else np.int64  # half the cache footprint
        offsets = np.concatenate(([0], np.cumsum(counts))).astype(offset_type)
        tables.append(BandTable(start, width, offsets, order))
    return HashIndex(hashes, plan, tuple(tables))


def search(index: HashIndex, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (query position, index id) within the index radius, sorted, without repeats."""
    return _search(index, np.ascontiguousarray(queries, dtype=np.uint64), None)


def search_self(index: HashIndex, start: int = 0, stop: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (a, b), a < b, of index ids within the radius, probing from ids in [start, stop).

    The union over chunks covering [0, n) is every pair (a pair can come from two chunks). For a
    flip mask, a pair is probed only from the endpoint whose band has the mask's highest bit at 0,
    which halves the probes of a self-join.
    """
    stop = len(index) if stop is None else stop
    ids = np.arange(start, stop, dtype=np.int64)
    return _search(index, index.hashes[start:stop], ids)


def _search(index: HashIndex, queries: np.ndarray, ids: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    found_a: list[np.ndarray] = []
    found_b: list[np.ndarray] = []
    for table in index.tables:
        values = _band_values(queries, table.start, table.width)
        by_value = np.argsort(values, kind="stable")  # probing in value order keeps gathers cache-local
        values = values[by_value]
        for mask in flip_masks(table.width, index.plan.sub_radius):
            probing, positions = values, by_value
            if ids is not None and mask:
                lower = (values & (1 << (int(mask).bit_length() - 1))) == 0
                probing, positions = values[lower], by_value[lower]
            q, t = _probe(table, probing ^ mask)
            q = positions[q]
            close = popcount64(queries[q] ^ index.hashes[t]) <= index.plan.radius
            q, t = q[close], t[close]
            if ids is not None:
                q, t = np.minimum(ids[q], t), np.maximum(ids[q], t)
                q, t = q[q < t], t[q < t]
            found_a.append(q)
            found_b.append(t)
    return _unique_pairs(found_a, found_b, len(index))


def _probe(table: BandTable, probes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All (probe position, id) whose band value equals the probe value."""
    lo = table.offsets[probes]
    counts = table.offsets[1:][probes] - lo
    hit = np.flatnonzero(counts)  # most probes find nothing
    lo, counts = lo[hit].astype(np.int64), counts[hit].astype(np.int64)
    total = int(counts.sum())
    q = np.repeat(hit, counts)
    # position inside each run: global position minus where the probe's run begins
    run_begin = np.repeat(np.cumsum(counts) - counts, counts)
    positions = np.repeat(lo, counts) + (np.arange(total, dtype=np.int64) - run_begin)
    return q, table.order[positions]


def _unique_pairs(qs: list[np.ndarray], ts: list[np.ndarray], n_index: int) -> tuple[np.ndarray, np.ndarray]:
    if not qs:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    codes = np.unique(np.concatenate(qs) * max(n_index, 1) + np.concatenate(ts))
    return codes // max(n_index, 1), codes % max(n_index, 1)


def self_pairs(hashes: np.ndarray, radius: int, n_bands: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """All pairs (i < j) with Hamming distance <= radius, by multi-index hashing (one process)."""
    return search_self(build_index(hashes, radius, n_bands=n_bands))


def brute_force_pairs(hashes: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray]:
    """Oracle: all pairs (i < j) within ``radius`` by comparing every pair."""
    hashes = np.ascontiguousarray(hashes, dtype=np.uint64)
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    for i in range(len(hashes) - 1):
        close = np.nonzero(popcount64(hashes[i + 1 :] ^ hashes[i]) <= radius)[0] + i + 1
        rows.append(np.full(len(close), i, dtype=np.int64))
        cols.append(close.astype(np.int64))
    if not rows:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(rows), np.concatenate(cols)
