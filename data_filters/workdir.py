"""Layout of an output directory, and the atomic writes that make a killed run resumable.

```
DIR/manifest.parquet  report.json  summary.txt      final outputs, written last
DIR/shards/NNNNN.tar                                kept samples (webdataset)
DIR/work/source.json                                which input this directory belongs to
DIR/work/download/                                  img2dataset output (its own incremental mode)
DIR/work/folder/NNNNN.parquet                       folder source: file listing per shard
DIR/work/inspect-<fp>/NNNNN.parquet                 integrity + hashes per shard
DIR/work/nsfw-<fp>/NNNNN.parquet                    detector scores per shard
```
Every per-shard file is written to a temporary name and renamed, so a file that exists is
complete; ``<fp>`` fingerprints the settings that produced it, so changing a threshold recomputes
only what depends on it. Kept shards depend on every setting and carry the fingerprint of the whole
decision in ``DIR/shards/_decisions.json``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from pydantic import BaseModel

from data_filters.sources import list_image_files


class WorkDirError(RuntimeError):
    """The output directory belongs to another input."""


def fingerprint(*parts: BaseModel | str) -> str:
    """Short stable hash of configs / strings."""
    hasher = hashlib.sha256()
    for part in parts:
        text = part.model_dump_json() if isinstance(part, BaseModel) else part
        hasher.update(text.encode())
        hasher.update(b"\0")
    return hasher.hexdigest()[:12]


def source_fingerprint(source: Path) -> str:
    """Content hash of a URL file, or of a folder's listing (relative path, size, mtime)."""
    hasher = hashlib.sha256()
    if source.is_dir():
        for path in list_image_files(source):
            stat = path.stat()
            hasher.update(
                f"{path.relative_to(source).as_posix()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode()
            )
    else:
        with source.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                hasher.update(block)
    return hasher.hexdigest()


@dataclass(frozen=True)
class WorkDir:
    """Paths inside one output directory."""

    root: Path

    @property
    def work(self) -> Path:
        return self.root / "work"

    @property
    def download_dir(self) -> Path:
        return self.work / "download"

    @property
    def folder_dir(self) -> Path:
        return self.work / "folder"

    @property
    def shards_dir(self) -> Path:
        return self.root / "shards"

    @property
    def manifest_path(self) -> Path:
        return self.root / "manifest.parquet"

    @property
    def report_path(self) -> Path:
        return self.root / "report.json"

    @property
    def summary_path(self) -> Path:
        return self.root / "summary.txt"

    def stage_dir(self, stage: str, fp: str) -> Path:
        return self.work / f"{stage}-{fp}"

    def claim(self, source: Path) -> None:
        """Create the directory, or check that it was created for the same input."""
        self.work.mkdir(parents=True, exist_ok=True)
        marker = self.work / "source.json"
        wanted = {"source": str(source.resolve()), "sha256": source_fingerprint(source)}
        if marker.exists():
            found = json.loads(marker.read_text())
            if found.get("sha256") != wanted["sha256"]:
                raise WorkDirError(
                    f"{self.root} holds a run of {found.get('source')} (different content); "
                    "use a new --out directory or delete this one"
                )
            return
        write_text_atomic(marker, json.dumps(wanted, indent=2))

    def reset_shards(self, decision_fp: str) -> None:
        """Empty ``shards/`` when the kept set was decided by other settings than ``decision_fp``."""
        marker = self.shards_dir / "_decisions.json"
        if marker.exists() and json.loads(marker.read_text()).get("fingerprint") == decision_fp:
            return
        if self.shards_dir.exists():
            shutil.rmtree(self.shards_dir)
        self.shards_dir.mkdir(parents=True)
        write_text_atomic(marker, json.dumps({"fingerprint": decision_fp}))


def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def write_text_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary(path)
    tmp.write_text(text)
    os.replace(tmp, path)


def write_parquet_atomic(path: Path, frame: pd.DataFrame) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary(path)
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, path)


def write_bytes_atomic(path: Path, payload: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary(path)
    tmp.write_bytes(payload)
    os.replace(tmp, path)
