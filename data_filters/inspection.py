"""Per-shard inspection: download status, integrity checks and both hashes for every row.

``inspect_shard`` is the unit an orchestrator fans out: it reads one input shard, writes one
parquet file (``INSPECTION_COLUMNS``) atomically and is skipped when that file already exists.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from data_filters.config import IntegrityConfig
from data_filters.hashing import image_hashes
from data_filters.integrity import check_image
from data_filters.reasons import Reason
from data_filters.shards import SUCCESS, ShardReader, ShardRef
from data_filters.workdir import write_parquet_atomic

INSPECTION_COLUMNS = (
    "row_id",
    "download_status",
    "reason",
    "detail",
    "width",
    "height",
    "pixel_hash",
    "phash",
    "needs_reencode",
    "ext",
)


@dataclass(frozen=True)
class ShardInspection:
    """Where one shard's inspection lies and what it found."""

    shard: ShardRef
    path: Path
    n_rows: int
    n_passed: int
    seconds: float
    reused: bool


@dataclass
class _Columns:
    """Column lists being filled for one shard."""

    row_id: list[int]
    download_status: list[str | None]
    reason: list[str | None]
    detail: list[str | None]
    width: list[int | None]
    height: list[int | None]
    pixel_hash: list[str | None]
    phash: list[int | None]
    needs_reencode: list[bool]
    ext: list[str]

    @classmethod
    def empty(cls) -> _Columns:
        return cls([], [], [], [], [], [], [], [], [], [])

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "row_id": pd.Series(self.row_id, dtype="int64"),
                "download_status": pd.Series(self.download_status, dtype="object"),
                "reason": pd.Series(self.reason, dtype="object"),
                "detail": pd.Series(self.detail, dtype="object"),
                "width": pd.Series(self.width, dtype="Int64"),
                "height": pd.Series(self.height, dtype="Int64"),
                "pixel_hash": pd.Series(self.pixel_hash, dtype="object"),
                "phash": pd.Series(self.phash, dtype="UInt64"),
                "needs_reencode": pd.Series(self.needs_reencode, dtype="bool"),
                "ext": pd.Series(self.ext, dtype="object"),
            }
        )


def inspect_shard(shard: ShardRef, config: IntegrityConfig, out_path: Path) -> ShardInspection:
    """Check and hash every row of ``shard`` into ``out_path`` (reused when it exists)."""
    start = time.perf_counter()
    if out_path.exists():
        frame = pd.read_parquet(out_path, columns=["reason"])
        passed = int(frame["reason"].isna().sum())
        return ShardInspection(shard, out_path, len(frame), passed, time.perf_counter() - start, True)
    columns = _Columns.empty()
    with ShardReader(shard) as reader:
        for row_id, status, error in reader.rows().itertuples(index=False, name=None):
            _inspect_row(reader, int(row_id), status, error, config, columns)
    frame = columns.frame()
    write_parquet_atomic(out_path, frame)
    passed = int(frame["reason"].isna().sum())
    return ShardInspection(shard, out_path, len(frame), passed, time.perf_counter() - start, False)


def _inspect_row(
    reader: ShardReader,
    row_id: int,
    status: str | None,
    error: str | None,
    config: IntegrityConfig,
    out: _Columns,
) -> None:
    out.row_id.append(row_id)
    out.download_status.append(status)
    check = None
    if status == SUCCESS:
        try:
            check = check_image(reader.payload(row_id), config)
            reason, detail = check.reason, check.detail
        except OSError as err:  # a folder file vanished or cannot be read
            reason, detail = Reason.DECODE_ERROR, f"cannot read file: {err}"
    else:
        reason, detail = Reason.DOWNLOAD_FAILED, f"{status}: {error}" if error else str(status)
    out.reason.append(None if reason is None else reason.value)
    out.detail.append(detail)
    out.width.append(check.width if check else None)
    out.height.append(check.height if check else None)
    image = check.image if check is not None and check.passed else None
    hashes = image_hashes(image) if image is not None else None  # from the integrity decode
    out.pixel_hash.append(hashes.pixel_hash if hashes else None)
    out.phash.append(hashes.phash if hashes else None)
    out.needs_reencode.append(bool(check.needs_reencode) if check else False)
    out.ext.append(check.ext if check else "jpg")
