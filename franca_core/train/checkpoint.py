"""Training checkpoints: atomic, checksummed, and resumable from the last good one.

Layout inside ``<run>/checkpoints/`` (nanochat's ``model_<step>`` + ``meta_<step>.json``)::

    model_0000050.pt          student, teacher (backbones and heads), objective buffers, optimizer,
                              data position, RNG states of every rank, wall time
    model_0000050.pt.sha256   "<hex digest>  model_0000050.pt"
    meta_0000050.json         small human-readable summary (step, losses, digest, data position)

A checkpoint is written to a hidden temporary name, flushed to disk, hashed and renamed; the digest
file is written the same way afterwards. A checkpoint counts as *good* only when its digest file
exists and matches, so a run killed mid-write (or a truncated copy) falls back to the previous one.
Schedules need no state: they are pure functions of the step (``train/schedules.py``). The official
code keeps two checkpoints and no data position (reference §6); here all are kept unless
``runtime.keep_last`` says otherwise.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from franca_core.data.position import DataPosition

FORMAT = "franca_core.train.checkpoint/1"
_NAME = re.compile(r"^model_(\d+)\.pt$")
log = logging.getLogger(__name__)


@dataclass
class TrainingState:
    """Everything a run needs to continue exactly where it stopped (held in memory on rank 0)."""

    step: int
    student: dict[str, Tensor]
    teacher: dict[str, Tensor]
    objective: dict[str, Tensor]  # non-network buffers of the objective (softmax-centering centres)
    optimizer: dict[str, Any]
    data: DataPosition
    rng: list[dict[str, Any]]  # one entry per rank
    wall_time_s: float
    config_json: str = ""


@dataclass(frozen=True)
class CheckpointMeta:
    """The ``meta_<step>.json`` beside each checkpoint."""

    step: int
    file: str
    sha256: str
    size_bytes: int
    wall_time_s: float
    world_size: int
    parallel: str
    losses: dict[str, float] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------------ RNG
def capture_rng() -> dict[str, Any]:
    """This process's RNG states: torch CPU and CUDA, numpy's global and Python's ``random``."""
    _, keys, pos, has_gauss, gauss = np.random.get_state(legacy=True)
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": (torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(pos), int(has_gauss), float(gauss)),
        "python": random.getstate(),
    }


def restore_rng(state: dict[str, Any]) -> None:
    """Put back the states of :func:`capture_rng`."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state(("MT19937", keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))


# ------------------------------------------------------------------------------------------------ files
def checkpoint_dir(run_dir: Path) -> Path:
    return run_dir / "checkpoints"


def checkpoint_path(run_dir: Path, step: int) -> Path:
    return checkpoint_dir(run_dir) / f"model_{step:07d}.pt"


def meta_path(checkpoint: Path) -> Path:
    return checkpoint.with_name(checkpoint.name.replace("model_", "meta_").replace(".pt", ".json"))


def digest_path(checkpoint: Path) -> Path:
    return checkpoint.with_name(checkpoint.name + ".sha256")


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` under a temporary name, flush it to disk, then rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)
    _fsync_dir(path.parent)


def sha256_file(path: Path) -> str:
    hasher = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            hasher.update(block)
    return hasher.hexdigest()


def is_good(checkpoint: Path) -> bool:
    """True when ``checkpoint`` exists and matches the digest written beside it."""
    digest_file = digest_path(checkpoint)
    if not (checkpoint.is_file() and digest_file.is_file()):
        return False
    expected = digest_file.read_text(encoding="utf-8").split()[:1]
    return bool(expected) and expected[0] == sha256_file(checkpoint)


def list_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """(step, path) of every checkpoint file, oldest first (temporary files ignored)."""
    directory = checkpoint_dir(run_dir)
    found = [(int(m.group(1)), p) for p in directory.glob("model_*.pt") if (m := _NAME.match(p.name))]
    return sorted(found)


def latest_good_checkpoint(run_dir: Path) -> Path | None:
    """The newest checkpoint whose digest matches; bad ones are reported and skipped."""
    for step, path in reversed(list_checkpoints(run_dir)):
        if is_good(path):
            return path
        log.warning(
            "checkpoint of step %d (%s) is incomplete or corrupt; trying the previous one", step, path
        )
    return None


# ------------------------------------------------------------------------------------------------ save/load
def save_checkpoint(
    run_dir: Path, state: TrainingState, *, world_size: int, parallel: str, losses: dict[str, float]
) -> CheckpointMeta:
    """Write ``state`` atomically, then its digest, then its meta; returns the meta."""
    path = checkpoint_path(run_dir, state.step)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {f.name: getattr(state, f.name) for f in fields(state)}  # not asdict: it deep-copies tensors
    payload.update(format=FORMAT, data=state.data.to_dict())
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(payload, tmp)
    with tmp.open("rb+") as handle:
        os.fsync(handle.fileno())
    digest = sha256_file(tmp)
    tmp.replace(path)
    write_text_atomic(digest_path(path), f"{digest}  {path.name}\n")
    meta = CheckpointMeta(
        step=state.step,
        file=path.name,
        sha256=digest,
        size_bytes=path.stat().st_size,
        wall_time_s=state.wall_time_s,
        world_size=world_size,
        parallel=parallel,
        losses=losses,
        data=state.data.to_dict(),
    )
    write_text_atomic(meta_path(path), json.dumps(asdict(meta), indent=2) + "\n")
    return meta


def load_checkpoint(path: Path) -> TrainingState:
    """Read a checkpoint written by :func:`save_checkpoint` (tensors on CPU, weights-only unpickling)."""
    # mmap: ranks loading the same file on one node share its pages instead of copying them.
    payload = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    if payload.get("format") != FORMAT:
        raise ValueError(
            f"{path} is not a training checkpoint of this engine (format {payload.get('format')!r})"
        )
    payload.pop("format")
    payload["data"] = DataPosition.from_dict(payload["data"])
    return TrainingState(**payload)


def apply_retention(run_dir: Path, keep_last: int | None) -> list[Path]:
    """Delete all but the newest ``keep_last`` checkpoints (with their digest and meta); None keeps all."""
    if keep_last is None:
        return []
    removed = []
    for _, path in list_checkpoints(run_dir)[:-keep_last]:
        for file in (path, digest_path(path), meta_path(path)):
            file.unlink(missing_ok=True)
        removed.append(path)
    return removed
