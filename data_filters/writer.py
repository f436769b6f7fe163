"""Write the kept samples of one input shard to an output webdataset shard.

Each kept row becomes ``<key>.jpg`` or ``<key>.png`` (the original bytes when the file was already
an upright 8-bit RGB JPEG/PNG, otherwise the normalised image re-encoded), ``<key>.json`` (url,
caption, size, hashes, scores, other input columns) and ``<key>.txt`` when there is a caption.
"""

from __future__ import annotations

import math
import time
from collections.abc import Hashable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from data_filters.config import IntegrityConfig
from data_filters.integrity import check_image, encode_image
from data_filters.manifest import MANIFEST_COLUMNS
from data_filters.shards import SampleFile, ShardReader, ShardRef, json_bytes, write_tar

META_COLUMNS = (
    "url",
    "caption",
    "width",
    "height",
    "pixel_hash",
    "phash",
    "nsfw_punsafe",
    "nsfw_opennsfw",
    "nsfw_clip",
)


@dataclass(frozen=True)
class WrittenShard:
    """One output shard."""

    path: Path
    n_samples: int
    seconds: float
    reused: bool


class ShardWriteError(RuntimeError):
    """A kept sample could not be read back from its input shard."""


def write_kept_shard(
    shard: ShardRef, kept: pd.DataFrame, inspection_path: Path, integrity: IntegrityConfig, out_path: Path
) -> WrittenShard:
    """Write ``kept`` (manifest rows of this shard) to ``out_path`` unless it already exists."""
    start = time.perf_counter()
    if out_path.exists():
        return WrittenShard(out_path, len(kept), time.perf_counter() - start, True)
    formats = pd.read_parquet(inspection_path, columns=["row_id", "needs_reencode", "ext"]).set_index(
        "row_id"
    )
    kept = kept.sort_values("key", kind="stable")
    with ShardReader(shard) as reader:
        write_tar(out_path, _samples(reader, kept, formats, integrity))
    return WrittenShard(out_path, len(kept), time.perf_counter() - start, False)


def _samples(
    reader: ShardReader, kept: pd.DataFrame, formats: pd.DataFrame, integrity: IntegrityConfig
) -> Iterator[SampleFile]:
    for record in kept.to_dict(orient="records"):
        row_id, key, caption = int(record["row_id"]), str(record["key"]), record["caption"]
        ext = str(formats.at[row_id, "ext"])
        payload = _image_bytes(reader, row_id, bool(formats.at[row_id, "needs_reencode"]), ext, integrity)
        yield SampleFile(key, ext, payload)
        yield SampleFile(key, "json", json_bytes(_meta(record)))
        if isinstance(caption, str):
            yield SampleFile(key, "txt", caption.encode())


def _image_bytes(
    reader: ShardReader, row_id: int, reencode: bool, ext: str, integrity: IntegrityConfig
) -> bytes:
    data = reader.payload(row_id)
    if data is None:
        raise ShardWriteError(f"row {row_id}: no bytes in input shard {reader.shard.name}")
    if not reencode:
        return data
    check = check_image(data, integrity)
    if check.image is None:
        raise ShardWriteError(f"row {row_id}: no longer decodes ({check.detail})")
    return encode_image(check.image, ext, integrity)


def _meta(record: Mapping[Hashable, Any]) -> dict[str, object]:
    """The ``.json`` member: identifiers, size, hashes, scores and the input's own metadata."""
    meta: dict[str, object] = {"key": record["key"], "row_id": int(record["row_id"])}
    extra = [c for c in record if c not in MANIFEST_COLUMNS]
    for column in (*META_COLUMNS, *extra):
        value = record[column]
        if hasattr(value, "item"):  # numpy scalar -> Python
            value = value.item()
        if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
            continue
        meta[str(column)] = int(value) if column in ("width", "height") else value
    return meta
