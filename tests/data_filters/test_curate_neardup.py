"""Multi-index Hamming search equals brute force (issue 5 acceptance), on many shapes of data.

Synthetic hashes cover the corner cases; real photographs with resized / re-encoded / cropped copies
(``curate_photos``, skipped without ``../shared/datasets``) cover the hashes the stage really sees.
"""

from __future__ import annotations

import numpy as np
import pytest
from curate_photos import HAS_PHOTOS, photo_rows
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from data_filters.config import DecontamConfig, DedupConfig
from data_filters.hashing import popcount64
from data_filters.neardup import (
    band_widths,
    brute_force_pairs,
    build_index,
    flip_masks,
    plan_bands,
    search,
    search_self,
    self_pairs,
)


def planted(n: int, radius: int, seed: int, fraction: float = 0.1) -> np.ndarray:
    """Random 64-bit hashes with copies flipped in 0..radius+1 bits (pairs just in and out)."""
    rng = np.random.default_rng(seed)
    hashes = rng.integers(0, np.iinfo(np.uint64).max, size=n, dtype=np.uint64, endpoint=True)
    for _ in range(int(n * fraction)):
        source, target = rng.integers(0, n, size=2)
        bits = rng.choice(64, size=int(rng.integers(0, radius + 2)), replace=False)
        hashes[target] = hashes[source] ^ np.uint64(sum(1 << int(b) for b in bits))
    return hashes


def clustered(n: int, seed: int) -> np.ndarray:
    """Few centres, many close hashes, repeats: the worst case for buckets."""
    rng = np.random.default_rng(seed)
    centres = rng.integers(0, np.iinfo(np.uint64).max, size=5, dtype=np.uint64, endpoint=True)
    flips = rng.integers(0, 64, size=(n, 3))
    noise = np.array([(1 << int(a)) | (1 << int(b)) | (1 << int(c)) for a, b, c in flips], dtype=np.uint64)
    return centres[rng.integers(0, 5, size=n)] ^ np.where(rng.random(n) < 0.3, np.uint64(0), noise)


def as_set(pairs: tuple[np.ndarray, np.ndarray]) -> set[tuple[int, int]]:
    return set(zip(pairs[0].tolist(), pairs[1].tolist()))


@pytest.mark.parametrize("radius", [0, 1, 3, 4, 6, 8])
@pytest.mark.parametrize("n_bands", [None, 3, 5, 9])
def test_self_join_equals_brute_force(radius: int, n_bands: int | None) -> None:
    hashes = planted(1200, radius, seed=radius)
    expected = brute_force_pairs(hashes, radius)
    found = self_pairs(hashes, radius, n_bands)
    assert as_set(found) == as_set(expected)
    assert np.array_equal(found[0], expected[0]) and np.array_equal(found[1], expected[1])


def test_clustered_hashes_with_repeats_equal_brute_force() -> None:
    hashes = clustered(800, seed=3)
    assert as_set(self_pairs(hashes, 4)) == as_set(brute_force_pairs(hashes, 4))


def test_chunked_self_join_union_equals_brute_force() -> None:
    hashes = planted(1500, 5, seed=7)
    index = build_index(hashes, 5)
    parts = [search_self(index, s, min(s + 256, len(hashes))) for s in range(0, len(hashes), 256)]
    a = np.concatenate([p[0] for p in parts])
    b = np.concatenate([p[1] for p in parts])
    assert (a < b).all()
    assert set(zip(a.tolist(), b.tolist())) == as_set(brute_force_pairs(hashes, 5))


def test_cross_search_equals_brute_force() -> None:
    index_hashes = planted(900, 6, seed=11)
    rng = np.random.default_rng(12)
    queries = index_hashes[rng.integers(0, 900, size=300)] ^ np.uint64(0b1011)  # 3 bits away
    queries[::2] = rng.integers(0, np.iinfo(np.uint64).max, size=150, dtype=np.uint64, endpoint=True)
    found = as_set(search(build_index(index_hashes, 6, n_queries=300), queries))
    distance = popcount64(queries[:, None] ^ index_hashes[None, :])  # (300, 900)
    expected = set(zip(*(a.tolist() for a in np.nonzero(distance <= 6))))
    assert found == expected and len(expected) >= 150


def test_empty_and_single_inputs() -> None:
    assert as_set(self_pairs(np.zeros(0, np.uint64), 4)) == set()
    assert as_set(self_pairs(np.array([7], np.uint64), 4)) == set()
    assert as_set(self_pairs(np.array([7, 7], np.uint64), 0)) == {(0, 1)}


def test_band_plan_is_feasible_and_uses_pigeonhole() -> None:
    assert band_widths(3) == (22, 21, 21) and sum(band_widths(7)) == 64
    small, large = plan_bands(10_000, 10_000, 4), plan_bands(1_000_000, 1_000_000, 4)
    assert small.n_bands > large.n_bands  # more, narrower bands while tables stay cheap
    assert max(large.widths) <= 24
    masks = flip_masks(5, 2)
    assert len(masks) == 1 + 5 + 10 and masks[0] == 0 and int(popcount64(masks.astype(np.uint64)).max()) == 2


needs_photos = pytest.mark.skipif(not HAS_PHOTOS, reason="../shared/datasets/clothing10 absent")


def all_pairs_within(hashes: np.ndarray, radius: int) -> set[tuple[int, int]]:
    """Every (i, j), i < j, at Hamming distance <= radius, from the full distance matrix."""
    n = len(hashes)
    distance = popcount64((hashes[:, None] ^ hashes[None, :]).reshape(-1)).reshape(n, n)
    i, j = np.nonzero(np.triu(distance <= radius, k=1))
    return set(zip(i.tolist(), j.tolist()))


def groups(pairs: set[tuple[int, int]], n: int) -> set[frozenset[int]]:
    """Connected components (two or more members) of the graph the pairs draw."""
    a, b = (np.array(side, dtype=np.int64) for side in zip(*pairs)) if pairs else (np.zeros(0, int),) * 2
    graph = coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n))
    _, label = connected_components(graph, directed=False)
    members: dict[int, set[int]] = {}
    for node, component in enumerate(label.tolist()):
        members.setdefault(component, set()).add(node)
    return {frozenset(m) for m in members.values() if len(m) > 1}


@needs_photos
@pytest.mark.parametrize(
    "radius", [DedupConfig().hamming_radius, DecontamConfig().hamming_radius, 10, 14], ids=lambda r: f"r{r}"
)
@pytest.mark.parametrize("n_bands", [None, 3, 5, 8])
def test_real_photos_near_pairs_and_groups_equal_brute_force(radius: int, n_bands: int | None) -> None:
    rows = photo_rows()
    hashes = rows["phash"].to_numpy(np.uint64)
    expected = all_pairs_within(hashes, radius)
    found = as_set(self_pairs(hashes, radius, n_bands))
    assert found == expected
    assert groups(found, len(hashes)) == groups(expected, len(hashes))
    index = build_index(hashes, radius, n_bands=n_bands)
    chunks = [search_self(index, s, min(s + 64, len(hashes))) for s in range(0, len(hashes), 64)]
    assert set().union(*(as_set(c) for c in chunks)) == expected


@needs_photos
def test_real_photo_copies_are_near_duplicates_at_the_configured_radius() -> None:
    """The check above is not vacuous: the planted copies are found, and groups are not one blob."""
    rows = photo_rows()
    assert len(rows) >= 300
    radius = DedupConfig().hamming_radius
    found = as_set(self_pairs(rows["phash"].to_numpy(np.uint64), radius))
    originals = rows[rows["variant"] == "original"].set_index("source")["row_id"]
    for variant in ("resized", "reencoded", "png"):
        copies = rows[rows["variant"] == variant]
        planted = {(int(originals[s]), int(r)) for s, r in zip(copies["source"], copies["row_id"])}
        assert len(planted & found) >= 0.9 * len(planted), variant
    sizes = [len(g) for g in groups(found, len(rows))]
    assert len(sizes) >= 50 and max(sizes) <= 20
