"""Read the curation stage's output: webdataset ``.tar`` shards and the ``manifest.parquet`` beside them.

A webdataset shard is a plain tar whose members are grouped by key: ``<key>.jpg``, ``<key>.json``, ...
(the key is the member name up to the first dot of its basename). Training needs only the image
member of each key. Shards are never unpacked: their headers are scanned once (``tarfile`` seeks
over the payloads) to get each image's byte range, and payloads are read by offset when a sample is
actually used. That makes skipping to a data position cheap (headers only), which is what the exact
resume of ``franca_core.data.stream`` relies on.

The manifest (``data_filters``) has one row per input with at least ``key`` and ``shard``; rows with
a ``status`` other than ``kept`` are ignored, and a shard then yields only its listed keys.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

IMAGE_EXTENSIONS = frozenset({"jpg", "jpeg", "png", "webp", "bmp"})


class DataError(ValueError):
    """A data source that cannot be used: missing path, no shards, no images."""


@dataclass(frozen=True)
class ShardFile:
    """One tar shard and, when a manifest selects samples, the keys to keep (None: every key)."""

    path: Path
    keys: frozenset[str] | None = None


@dataclass(frozen=True)
class SampleRef:
    """Where one image lies: shard index in the shard list, rank within the shard, byte range, key."""

    shard: int
    index: int
    key: str
    offset: int
    size: int


def list_tar_shards(root: Path) -> list[ShardFile]:
    """Every ``*.tar`` under ``root`` (recursive, sorted by relative path)."""
    if not root.exists():
        raise DataError(f"data path does not exist: {root}")
    if root.is_file():
        if root.suffix != ".tar":
            raise DataError(f"{root} is not a .tar shard or a directory of shards")
        return [ShardFile(root)]
    shards = [ShardFile(p) for p in sorted(root.rglob("*.tar")) if not p.name.startswith(".")]
    if not shards:
        raise DataError(f"no .tar shards found under {root}")
    return shards


def _resolve_shard(root: Path, name: str) -> Path:
    """The tar a manifest's ``shard`` value names: a path, or a name under ``root`` or ``root/shards``."""
    stem = name if name.endswith(".tar") else f"{name}.tar"
    for candidate in (root / name, root / stem, root / "shards" / name, root / "shards" / stem):
        if candidate.is_file():
            return candidate
    raise DataError(
        f"manifest names shard {name!r}, but no such tar exists under {root} or {root / 'shards'}"
    )


def shards_from_manifest(manifest: Path) -> list[ShardFile]:
    """Shards listed in a curation ``manifest.parquet``, each restricted to its kept keys."""
    import pyarrow.parquet as pq  # imported lazily: only manifest sources need it

    if not manifest.is_file():
        raise DataError(f"manifest not found: {manifest}")
    table = pq.read_table(manifest)
    missing = {"key", "shard"} - set(table.column_names)
    if missing:
        raise DataError(f"{manifest} lacks column(s) {sorted(missing)}; has {table.column_names}")
    keys = table.column("key").to_pylist()
    shards = table.column("shard").to_pylist()
    status = table.column("status").to_pylist() if "status" in table.column_names else ["kept"] * len(keys)
    kept: dict[str, set[str]] = {}
    for key, shard, state in zip(keys, shards, status):
        if state == "kept" and shard is not None and key is not None:
            kept.setdefault(str(shard), set()).add(str(key))
    if not kept:
        raise DataError(f"{manifest} lists no kept samples")
    return [
        ShardFile(_resolve_shard(manifest.parent, name), frozenset(found))
        for name, found in sorted(kept.items())
    ]


def _key_and_ext(member_name: str) -> tuple[str, str]:
    """webdataset convention: ``dir/abc.def.jpg`` -> (``dir/abc``, ``def.jpg``); the last ext decides."""
    folder, _, base = member_name.rpartition("/")
    stem, _, ext = base.partition(".")
    return (f"{folder}/{stem}" if folder else stem), ext.lower()


def scan_shard(shard: ShardFile, index: int) -> Iterator[SampleRef]:
    """The image members of one shard in tar order (one per key; headers only, payloads unread)."""
    seen: set[str] = set()
    with tarfile.open(shard.path, "r:") as archive:
        for info in archive:
            if not info.isfile():
                continue
            key, ext = _key_and_ext(info.name)
            if ext.rpartition(".")[2] not in IMAGE_EXTENSIONS or key in seen:
                continue
            if shard.keys is not None and key not in shard.keys:
                continue
            yield SampleRef(shard=index, index=len(seen), key=key, offset=info.offset_data, size=info.size)
            seen.add(key)


def read_image(path: Path, ref: SampleRef) -> Image.Image:
    """Decode the payload of ``ref`` from its shard as an RGB image (raises OSError when broken)."""
    with path.open("rb") as handle:
        handle.seek(ref.offset)
        payload = handle.read(ref.size)
    with Image.open(io.BytesIO(payload)) as img:
        return img.convert("RGB")


def write_tar_shard(path: Path, samples: list[tuple[str, bytes, str]]) -> None:
    """Write ``(key, payload, ext)`` samples as a webdataset shard (tests and small exports)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as archive:
        for key, payload, ext in samples:
            info = tarfile.TarInfo(f"{key}.{ext}")
            info.size = len(payload)
            archive.addfile(info, io.BytesIO(payload))
