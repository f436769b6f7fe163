"""The manifest: one row per input row with its fate, reason, hashes, size, scores and shard.

Columns: ``MANIFEST_COLUMNS``, then any other column of the input list (LAION metadata such as
``similarity`` or ``pwatermark``) unchanged, so filtering on it later needs no join.

Reasons are applied in the order of ``Reason``: refused inputs, download failures and integrity
(from inspection), ``punsafe``, the image detector, then the dedup steps. A row keeps the first
reason that applies; every accepted row must come back from inspection, and a row that does not is
reported as a download failure rather than lost.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from data_filters.blocks import Drops
from data_filters.config import NsfwConfig
from data_filters.dedup import DedupDrops
from data_filters.hashing import phash_hex
from data_filters.reasons import Reason, Status
from data_filters.sources import InputRows

MANIFEST_COLUMNS = (
    "row_id",
    "key",
    "url",
    "caption",
    "status",
    "reason",
    "detail",
    "duplicate_of",
    "download_status",
    "width",
    "height",
    "pixel_hash",
    "phash",
    "nsfw_punsafe",
    "nsfw_opennsfw",
    "nsfw_clip",
    "shard",
)
DETECTOR_COLUMNS = {"opennsfw": "nsfw_opennsfw", "clip": "nsfw_clip"}


@dataclass(frozen=True)
class ShardFiles:
    """Per-shard stage outputs feeding the manifest."""

    name: str
    inspection_path: Path
    nsfw_path: Path | None


def build_manifest(
    rows: InputRows,
    shards: Sequence[ShardFiles],
    nsfw: NsfwConfig,
    drops: DedupDrops,
    eval_labels: Sequence[str],
) -> pd.DataFrame:
    """Assemble the manifest (``MANIFEST_COLUMNS``, sorted by row id)."""
    frame = rows.frame.set_index("row_id", drop=False)
    inspected = _inspections(shards)
    frame = frame.join(inspected.drop(columns=["row_id"]), rsuffix="_inspection")
    _take_inspection_reasons(frame)
    frame["nsfw_punsafe"] = frame["punsafe"]
    _flag(
        frame,
        frame["nsfw_punsafe"] > nsfw.punsafe_threshold,
        Reason.NSFW_PUNSAFE,
        _punsafe_detail(frame, nsfw),
    )
    for column in DETECTOR_COLUMNS.values():
        frame[column] = np.nan
    detector = nsfw.resolved_detector
    if detector != "none":
        scores = _scores(shards)
        column = DETECTOR_COLUMNS[detector]
        frame[column] = scores.reindex(frame.index)
        detail = frame[column].map(lambda s: f"{detector} score {s:.3f} > {nsfw.detector_threshold}")
        _flag(frame, frame[column] > nsfw.detector_threshold, Reason.NSFW_DETECTOR, detail)
    keys = frame["key"]
    _apply(
        frame,
        drops.contaminated,
        lambda d, o: f"pHash distance {d} to evaluation image {eval_labels[o]}",
        None,
    )
    _apply(frame, drops.exact, lambda d, o: f"same decoded pixels as row {o}", keys)
    _apply(frame, drops.near, lambda d, o: f"pHash distance {d} to row {o}", keys)
    return _finish(frame, rows.extra)


def _inspections(shards: Sequence[ShardFiles]) -> pd.DataFrame:
    parts = [pd.read_parquet(s.inspection_path).assign(input_shard=s.name) for s in shards]
    if not parts:
        columns = ["row_id", "download_status", "reason", "detail", "width", "height", "pixel_hash", "phash"]
        return pd.DataFrame(columns=[*columns, "input_shard"]).set_index("row_id", drop=False)
    return pd.concat(parts, ignore_index=True).set_index("row_id", drop=False)


def _take_inspection_reasons(frame: pd.DataFrame) -> None:
    open_rows = frame["reason"].isna()
    lost = open_rows & frame["input_shard"].isna()
    frame.loc[lost, "reason"] = Reason.DOWNLOAD_FAILED.value
    frame.loc[lost, "detail"] = "missing from the downloader's output"
    from_inspection = open_rows & ~lost
    frame.loc[from_inspection, "reason"] = frame.loc[from_inspection, "reason_inspection"]
    frame.loc[from_inspection, "detail"] = frame.loc[from_inspection, "detail_inspection"]


def _punsafe_detail(frame: pd.DataFrame, nsfw: NsfwConfig) -> pd.Series:
    return frame["nsfw_punsafe"].map(lambda p: f"punsafe {p:.3f} > {nsfw.punsafe_threshold}")


def _scores(shards: Sequence[ShardFiles]) -> pd.Series:
    parts = [pd.read_parquet(s.nsfw_path) for s in shards if s.nsfw_path is not None]
    if not parts:
        return pd.Series(dtype="float64")
    scores = pd.concat(parts, ignore_index=True)
    return scores.set_index("row_id")["score"]


def _flag(frame: pd.DataFrame, hit: pd.Series, reason: Reason, detail: pd.Series) -> None:
    """Set ``reason`` on rows that have none yet and where ``hit`` holds."""
    chosen = frame["reason"].isna() & hit.fillna(False).astype(bool)
    frame.loc[chosen, "reason"] = reason.value
    frame.loc[chosen, "detail"] = detail[chosen]


def _apply(
    frame: pd.DataFrame, drops: Drops, describe: Callable[[int, int], str], keys: pd.Series | None
) -> None:
    if len(drops) == 0:
        return
    ids = pd.Index(drops.row_id)
    others = drops.duplicate_of.tolist()
    text = [describe(int(d), int(o)) for d, o in zip(drops.distance, others)]
    open_rows = frame.loc[ids, "reason"].isna().to_numpy()
    chosen = ids[open_rows]
    frame.loc[chosen, "reason"] = drops.reason.value
    frame.loc[chosen, "detail"] = np.array(text, dtype=object)[open_rows]
    if keys is not None:
        frame.loc[chosen, "duplicate_of"] = keys.loc[np.array(others)[open_rows]].to_numpy()


def _finish(frame: pd.DataFrame, extra: pd.DataFrame) -> pd.DataFrame:
    kept = frame["reason"].isna()
    frame["status"] = np.where(kept, Status.KEPT.value, Status.DROPPED.value)
    frame["shard"] = [f"{name}.tar" if keep else None for name, keep in zip(frame["input_shard"], kept)]
    frame["pixel_hash"] = frame["pixel_hash"].astype(object)
    phash = frame["phash"]
    frame["phash"] = [phash_hex(int(v)) if pd.notna(v) else None for v in phash]
    frame["width"] = frame["width"].astype("Int64")
    frame["height"] = frame["height"].astype("Int64")
    out = frame.reset_index(drop=True).sort_values("row_id", kind="stable")[list(MANIFEST_COLUMNS)]
    out = out.reset_index(drop=True)
    return pd.concat([out, extra.reset_index(drop=True)], axis=1)  # input metadata columns last
