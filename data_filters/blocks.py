"""Columnar blocks of dedup candidates and of drop decisions, passed between Dask tasks.

A ``CandidateBlock`` holds the rows that survived integrity and NSFW filtering, with the two hashes
and the pixel count; a ``Drops`` block says which rows a dedup step removes and which kept row
each one duplicates. Both are plain numpy arrays in frozen dataclasses: cheap to pickle between
workers and free of string-keyed dictionaries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from data_filters.reasons import Reason


@dataclass(frozen=True)
class CandidateBlock:
    """Rows entering dedup: ids, pixel hash (two uint64 halves), pHash and width x height."""

    row_id: np.ndarray  # (n,) int64
    hash_hi: np.ndarray  # (n,) uint64
    hash_lo: np.ndarray  # (n,) uint64
    phash: np.ndarray  # (n,) uint64
    pixels: np.ndarray  # (n,) int64

    def __len__(self) -> int:
        return len(self.row_id)

    def take(self, selector: np.ndarray) -> CandidateBlock:
        """Rows picked by a boolean mask or an index array."""
        return CandidateBlock(
            self.row_id[selector],
            self.hash_hi[selector],
            self.hash_lo[selector],
            self.phash[selector],
            self.pixels[selector],
        )

    @staticmethod
    def empty() -> CandidateBlock:
        u64, i64 = np.zeros(0, np.uint64), np.zeros(0, np.int64)
        return CandidateBlock(i64, u64, u64, u64, i64)

    @staticmethod
    def concat(blocks: Sequence[CandidateBlock]) -> CandidateBlock:
        if not blocks:
            return CandidateBlock.empty()
        return CandidateBlock(
            np.concatenate([b.row_id for b in blocks]),
            np.concatenate([b.hash_hi for b in blocks]),
            np.concatenate([b.hash_lo for b in blocks]),
            np.concatenate([b.phash for b in blocks]),
            np.concatenate([b.pixels for b in blocks]),
        )

    @staticmethod
    def from_frame(frame: pd.DataFrame) -> CandidateBlock:
        """From inspection rows (``row_id``, hex ``pixel_hash``, ``phash``, ``width``, ``height``)."""
        digests = frame["pixel_hash"].astype(str).tolist()
        return CandidateBlock(
            frame["row_id"].to_numpy(np.int64),
            np.array([int(h[:16], 16) for h in digests], dtype=np.uint64),
            np.array([int(h[16:], 16) for h in digests], dtype=np.uint64),
            frame["phash"].to_numpy(np.uint64),
            (frame["width"].astype("int64") * frame["height"].astype("int64")).to_numpy(np.int64),
        )


@dataclass(frozen=True)
class Drops:
    """Rows removed by one dedup step, each with the row it duplicates and a distance."""

    reason: Reason
    row_id: np.ndarray  # (k,) int64
    duplicate_of: np.ndarray  # (k,) int64 row id (or eval-set position for contamination)
    distance: np.ndarray  # (k,) int64 Hamming distance of the pHashes (0 for exact duplicates)

    def __len__(self) -> int:
        return len(self.row_id)

    @staticmethod
    def none(reason: Reason) -> Drops:
        empty = np.zeros(0, np.int64)
        return Drops(reason, empty, empty, empty)

    @staticmethod
    def concat(reason: Reason, parts: Sequence[Drops]) -> Drops:
        if not parts:
            return Drops.none(reason)
        return Drops(
            reason,
            np.concatenate([p.row_id for p in parts]),
            np.concatenate([p.duplicate_of for p in parts]),
            np.concatenate([p.distance for p in parts]),
        )
