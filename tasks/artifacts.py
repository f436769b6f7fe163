"""Files into MLflow: every intermediate checkpoint, stage outputs, and the registered backbone.

Checkpoints are read from the run-directory layout the training engine documents
(``checkpoints/model_<step>.pt`` + ``.pt.sha256`` + ``meta_<step>.json``); a checkpoint counts once
its digest file exists (the engine writes it last). The run's artifact listing is the record of
what was already logged, so logging is idempotent and needs no local state: a retry sends only
what is missing. With ``max_artifact_mb`` set, a larger checkpoint is recorded as a small
``.ref.json`` (sha256, size, path) instead of being uploaded.
"""

from __future__ import annotations

import json
import re
import socket
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from tasks.tracking import TrackingContext, get_client

CHECKPOINT_NAME = re.compile(r"^model_(\d+)\.pt$")
CHECKPOINTS = "checkpoints"


@dataclass(frozen=True)
class CheckpointFile:
    """One complete checkpoint of a run directory."""

    step: int
    path: Path
    sha256: str

    @property
    def meta(self) -> Path:
        return self.path.with_name(f"meta_{self.step:07d}.json")

    @property
    def digest(self) -> Path:
        return self.path.with_name(f"{self.path.name}.sha256")


def good_checkpoints(run_dir: Path) -> list[CheckpointFile]:
    """Checkpoints whose digest file exists, by step (the last file the engine writes)."""
    found = []
    for path in sorted((run_dir / CHECKPOINTS).glob("model_*.pt")):
        match = CHECKPOINT_NAME.match(path.name)
        digest = path.with_name(f"{path.name}.sha256")
        if match and digest.exists():
            found.append(CheckpointFile(int(match.group(1)), path, digest.read_text().split()[0]))
    return sorted(found, key=lambda c: c.step)


def logged_names(ctx: TrackingContext, run_id: str, artifact_dir: str) -> set[str]:
    """Base names of the artifacts under ``artifact_dir`` of a run."""
    files = get_client(ctx).list_artifacts(run_id, artifact_dir)
    return {Path(f.path).name for f in files}


def _reference(ckpt: CheckpointFile, folder: Path) -> Path:
    ref = folder / f"{ckpt.path.name}.ref.json"
    doc = {
        "file": str(ckpt.path.resolve()),
        "host": socket.gethostname(),
        "sha256": ckpt.sha256,
        "size_bytes": ckpt.path.stat().st_size,
        "step": ckpt.step,
    }
    ref.write_text(json.dumps(doc, indent=2) + "\n")
    return ref


def log_checkpoints(ctx: TrackingContext, run_id: str, run_dir: Path) -> list[int]:
    """Log every good checkpoint not yet on the run (file or reference, with meta and digest)."""
    done = logged_names(ctx, run_id, CHECKPOINTS)
    client = get_client(ctx)
    limit = None if ctx.max_artifact_mb is None else ctx.max_artifact_mb * 2**20
    logged = []
    with tempfile.TemporaryDirectory() as tmp:
        for ckpt in good_checkpoints(run_dir):
            if ckpt.path.name in done or f"{ckpt.path.name}.ref.json" in done:
                continue
            for extra in (ckpt.meta, ckpt.digest):
                if extra.exists():
                    client.log_artifact(run_id, str(extra), CHECKPOINTS)
            too_big = limit is not None and ckpt.path.stat().st_size > limit
            payload = _reference(ckpt, Path(tmp)) if too_big else ckpt.path
            client.log_artifact(run_id, str(payload), CHECKPOINTS)  # last: marks the step as logged
            logged.append(ckpt.step)
    return logged


def log_files(ctx: TrackingContext, run_id: str, artifact_dir: str, paths: Iterable[Path]) -> int:
    """Log existing files (or folders) under ``artifact_dir``; missing ones are skipped."""
    client = get_client(ctx)
    count = 0
    for path in paths:
        if path.is_dir():
            client.log_artifacts(run_id, str(path), f"{artifact_dir}/{path.name}")
        elif path.is_file():
            client.log_artifact(run_id, str(path), artifact_dir)
        else:
            continue
        count += 1
    return count


def register_backbone(
    ctx: TrackingContext, run_id: str, backbone: Path, tags: dict[str, str], description: str = ""
) -> str:
    """Log the backbone file under ``backbone/`` of the run and register it; returns the version."""
    client = get_client(ctx)
    if backbone.name not in logged_names(ctx, run_id, "backbone"):
        client.log_artifact(run_id, str(backbone), "backbone")
    name = ctx.registered_model
    if client.search_registered_models(filter_string=f"name = '{name}'") == []:
        client.create_registered_model(name, description="Franca backbones produced by the pipeline.")
    for version in client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'"):
        return str(version.version)  # already registered from this run
    source = f"{client.get_run(run_id).info.artifact_uri}/backbone"
    version = client.create_model_version(name, source, run_id=run_id, tags=tags, description=description)
    return str(version.version)
