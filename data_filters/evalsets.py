"""Evaluation sets for decontamination: their pHashes, from an image folder or a manifest.

A folder is hashed with the same decoding and normalisation as training images, but without the
training size filters (evaluation images are often tiny, e.g. 32x32). A parquet manifest must have
a ``phash`` column (hex strings as ``franca curate`` writes them, or unsigned integers); when it
also has a ``status`` column only ``kept`` rows count, so a curated evaluation set can be used as is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from distributed import Client

from data_filters.config import IntegrityConfig
from data_filters.hashing import perceptual_hash, phash_from_hex
from data_filters.integrity import check_image
from data_filters.sources import list_image_files

# Decode and normalise only: evaluation images are never refused for their size.
EVAL_DECODING = IntegrityConfig(min_side=1, max_aspect_ratio=1e9)
FILES_PER_TASK = 2_000


class EvalSetError(ValueError):
    """An evaluation set cannot be read."""


@dataclass(frozen=True)
class EvalHashes:
    """pHashes of all evaluation images and a label (set/file) for each."""

    phash: np.ndarray  # (n,) uint64
    labels: tuple[str, ...]
    n_unreadable: int

    def __len__(self) -> int:
        return len(self.phash)


def hash_files(paths: Sequence[str]) -> tuple[np.ndarray, list[bool]]:
    """pHashes of image files and, per file, whether it decoded (unreadable files hash to 0)."""
    values = np.zeros(len(paths), dtype=np.uint64)
    ok = []
    for i, path in enumerate(paths):
        try:
            check = check_image(Path(path).read_bytes(), EVAL_DECODING)
        except OSError:
            check = None
        if check is not None and check.image is not None:
            values[i] = perceptual_hash(check.image)
        ok.append(check is not None and check.image is not None)
    return values, ok


def load_eval_hashes(paths: Sequence[Path], client: Client | None = None) -> EvalHashes:
    """Hash every evaluation set; folders are hashed on ``client`` when one is given."""
    hashes: list[np.ndarray] = []
    labels: list[str] = []
    unreadable = 0
    for path in paths:
        if path.is_dir():
            values, names, bad = _hash_folder(path, client)
        elif path.suffix == ".parquet" and path.is_file():
            values, names, bad = _read_manifest(path)
        else:
            raise EvalSetError(f"evaluation set {path}: expected an image folder or a .parquet manifest")
        hashes.append(values)
        labels.extend(names)
        unreadable += bad
    phash = np.concatenate(hashes) if hashes else np.zeros(0, np.uint64)
    return EvalHashes(phash, tuple(labels), unreadable)


def _hash_folder(folder: Path, client: Client | None) -> tuple[np.ndarray, list[str], int]:
    files = [str(p) for p in list_image_files(folder)]
    if not files:
        raise EvalSetError(f"evaluation set {folder}: no image files")
    chunks = [files[i : i + FILES_PER_TASK] for i in range(0, len(files), FILES_PER_TASK)]
    results = client.gather(client.map(hash_files, chunks)) if client else [hash_files(c) for c in chunks]
    values = np.concatenate([r[0] for r in results])
    ok = np.concatenate([np.array(r[1], dtype=bool) for r in results])
    names = [f"{folder.name}/{Path(f).relative_to(folder).as_posix()}" for f in files]
    return values[ok], [n for n, good in zip(names, ok) if good], int((~ok).sum())


def _read_manifest(path: Path) -> tuple[np.ndarray, list[str], int]:
    frame = pd.read_parquet(path)
    if "phash" not in frame.columns:
        raise EvalSetError(f"evaluation manifest {path}: no 'phash' column")
    if "status" in frame.columns:
        frame = frame[frame["status"] == "kept"]
    frame = frame[frame["phash"].notna()]
    column = frame["phash"]
    if pd.api.types.is_integer_dtype(column):
        values = column.to_numpy(np.uint64)
    else:
        values = np.array([phash_from_hex(str(v)) for v in column], dtype=np.uint64)
    label_col = next((c for c in ("key", "url", "path") if c in frame.columns), None)
    names = frame[label_col].astype(str).tolist() if label_col else [str(i) for i in frame.index]
    return values, [f"{path.stem}:{n}" for n in names], 0
