"""Reading input shards and writing output shards.

An input shard is either an img2dataset webdataset shard (``NNNNN.tar`` plus its per-sample
``NNNNN.parquet`` with url, row_id, status and error_message, failures included) or, for a folder
source, a listing of files. ``ShardReader`` gives both the same face: the rows in row order and the
bytes of one row. The tar is indexed once (member offsets), so reading in row order does not
depend on the order img2dataset's threads happened to write in.

Output shards are plain uncompressed tars written in key order with fixed member metadata, so the
same decisions always give byte-identical shards.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Literal

import pandas as pd
import pyarrow.parquet as pq

from data_filters.workdir import write_parquet_atomic

SUCCESS = "success"
SHARD_ROW_COLUMNS = ("row_id", "download_status", "download_error")


@dataclass(frozen=True)
class ShardRef:
    """One input shard: its name (``00000``), kind and files."""

    name: str
    kind: Literal["img2dataset", "folder"]
    rows_path: Path
    tar_path: Path | None = None


@dataclass(frozen=True)
class SampleFile:
    """One member of an output shard."""

    key: str
    ext: str
    payload: bytes


class ShardReader:
    """Rows and payloads of one input shard; use as a context manager."""

    def __init__(self, shard: ShardRef) -> None:
        self.shard = shard
        self._frame = _read_rows(shard)
        self._tar: BinaryIO | None = None
        self._members: dict[str, tuple[int, int]] = {}
        # row id -> img2dataset key (tar shards) or file path (folder shards)
        self._sources: dict[int, str] = dict(
            zip(self._frame["row_id"].tolist(), self._frame["_source"].tolist())
        )
        if shard.kind == "img2dataset" and shard.tar_path is not None:
            self._tar = shard.tar_path.open("rb")
            self._members = _index_tar(shard.tar_path)

    def __enter__(self) -> ShardReader:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._tar is not None:
            self._tar.close()
            self._tar = None

    def rows(self) -> pd.DataFrame:
        """``row_id``, ``download_status``, ``download_error`` sorted by row id."""
        return self._frame[list(SHARD_ROW_COLUMNS)]

    def payload(self, row_id: int) -> bytes | None:
        """Raw bytes of a row; None when the shard holds none. OSError when a file cannot be read."""
        if self.shard.kind == "folder":
            return Path(self._sources[row_id]).read_bytes()
        location = self._members.get(self._sources.get(row_id, ""))
        if location is None or self._tar is None:
            return None
        offset, size = location
        self._tar.seek(offset)
        return self._tar.read(size)


def _read_rows(shard: ShardRef) -> pd.DataFrame:
    if shard.kind == "folder":
        frame = pd.read_parquet(shard.rows_path)
        frame = frame.assign(download_status=SUCCESS, download_error=None, _source=frame["path"])
    else:
        columns = ["row_id", "key", "status", "error_message"]
        frame = pq.read_table(shard.rows_path, columns=columns).to_pandas()
        frame = frame.rename(columns={"status": "download_status", "error_message": "download_error"})
        frame = frame.assign(_source=frame["key"])
    frame["row_id"] = frame["row_id"].astype("int64")
    return frame.sort_values("row_id", kind="stable").reset_index(drop=True)


def _index_tar(path: Path) -> dict[str, tuple[int, int]]:
    """img2dataset key -> (offset, size) of its image member; json/txt members are skipped."""
    members: dict[str, tuple[int, int]] = {}
    with tarfile.open(path, "r:") as archive:
        for info in archive:
            key, _, ext = info.name.rpartition(".")
            if info.isfile() and ext not in ("json", "txt"):
                members[key] = (info.offset_data, info.size)
    return members


def write_folder_listing(path: Path, row_ids: list[int], files: list[str]) -> None:
    """Listing of a folder shard: which file each row reads."""
    write_parquet_atomic(path, pd.DataFrame({"row_id": pd.Series(row_ids, dtype="int64"), "path": files}))


def write_tar(path: Path, samples: Iterator[SampleFile]) -> int:
    """Write samples (given in key order) to ``path`` atomically; returns the number written."""
    buffer_path = path.with_name(f".{path.name}.tmp")
    count = 0
    with tarfile.open(buffer_path, "w", format=tarfile.USTAR_FORMAT) as archive:
        for sample in samples:
            _add_member(archive, f"{sample.key}.{sample.ext}", sample.payload)
            count += 1
    buffer_path.replace(path)
    return count


def _add_member(archive: tarfile.TarFile, name: str, payload: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    info.mtime = 0
    info.mode = 0o644
    info.uname = info.gname = ""
    archive.addfile(info, io.BytesIO(payload))


def json_bytes(record: dict[str, object]) -> bytes:
    """Stable JSON for a ``.json`` member (sorted keys)."""
    return json.dumps(record, sort_keys=True, ensure_ascii=False, default=str).encode()


def list_img2dataset_shards(folder: Path, n_shards: int, oom: int) -> list[ShardRef]:
    """The expected img2dataset shards, whether or not they are finished."""
    refs = []
    for shard_id in range(n_shards):
        name = f"{shard_id:0{oom}d}"
        refs.append(ShardRef(name, "img2dataset", folder / f"{name}.parquet", folder / f"{name}.tar"))
    return refs
