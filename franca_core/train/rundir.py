"""The run directory: the only interface between a training process and whatever launched it.

    <run>/config.json        the stage config, exactly as validated (derived values are not in it)
    <run>/derived.json       values computed from it for this launch (lr scaled to the batch, ...)
    <run>/metrics.jsonl      one line per logged step (``franca_core.tracking.JsonlSink``)
    <run>/checkpoints/       model_<step>.pt + .sha256 + meta_<step>.json (``train/checkpoint.py``)
    <run>/export/            the final teacher backbone: safetensors and the official Franca .pth
    <run>/result.json        written last: steps, wall time, final losses, exported files

Rerunning the same command on an existing run directory resumes it. The config must then be the
same, except for the fields in :data:`RESUME_SAFE_FIELDS` (how long to train, how often to log or
save, how many loader workers), so a run can be extended or resumed on another machine shape.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from franca_core.config.pretrain import Derived, PretrainConfig
from franca_core.train.checkpoint import write_text_atomic

RESUME_SAFE_FIELDS: frozenset[tuple[str, str]] = frozenset(
    {
        ("runtime", "max_steps"),
        ("runtime", "checkpoint_every"),
        ("runtime", "keep_last"),
        ("runtime", "log_every"),
        ("runtime", "compile"),
        ("runtime", "activation_checkpointing"),
        ("data", "num_workers"),
    }
)


class RunDirError(ValueError):
    """The run directory belongs to a different configuration."""


@dataclass(frozen=True)
class FinalLosses:
    """Loss terms of the last step, averaged over ranks."""

    total: float
    dino: float
    ibot: float
    koleo: float


@dataclass(frozen=True)
class RunResult:
    """``result.json``: what a finished (or stopped) stage produced."""

    status: Literal["completed", "stopped"]
    config_name: str
    steps: int
    wall_time_s: float
    images_per_s: float
    world_size: int
    parallel: str
    final_losses: FinalLosses
    last_checkpoint: str
    teacher_safetensors: str | None
    teacher_franca_pth: str | None

    @classmethod
    def read(cls, path: Path) -> RunResult:
        values = json.loads(path.read_text(encoding="utf-8"))
        values["final_losses"] = FinalLosses(**values["final_losses"])
        return cls(**values)


def _with_defaults(stored: dict[str, Any]) -> dict[str, Any]:
    """A stored config with the fields added since it was written filled in by their defaults."""
    try:
        return PretrainConfig.model_validate(stored).model_dump(mode="json")
    except ValidationError:  # removed or renamed fields: compare as stored, the differences say why
        return stored


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    diffs = []
    for section in sorted(set(old) | set(new)):
        a, b = old.get(section), new.get(section)
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) | set(b)):
                if a.get(key) != b.get(key) and (section, key) not in RESUME_SAFE_FIELDS:
                    diffs.append(f"{section}.{key}: {a.get(key)!r} -> {b.get(key)!r}")
        elif a != b:
            diffs.append(f"{section}: {a!r} -> {b!r}")
    return diffs


@dataclass(frozen=True)
class RunDir:
    """Paths of one run directory."""

    root: Path

    @property
    def config_path(self) -> Path:
        return self.root / "config.json"

    @property
    def derived_path(self) -> Path:
        return self.root / "derived.json"

    @property
    def metrics_path(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def result_path(self) -> Path:
        return self.root / "result.json"

    @property
    def export_dir(self) -> Path:
        return self.root / "export"

    def check_config(self, cfg: PretrainConfig) -> None:
        """Raise if the directory holds a run of another config (resume-safe fields may differ)."""
        if not self.config_path.exists():
            return
        old = _with_defaults(json.loads(self.config_path.read_text(encoding="utf-8")))
        diffs = _differences(old, cfg.model_dump(mode="json"))
        if diffs:
            listed = "\n  ".join(diffs)
            raise RunDirError(
                f"{self.root} holds a run with a different config; use a new --run-dir or the same "
                f"settings. Differences:\n  {listed}"
            )

    def write_config(self, cfg: PretrainConfig, derived: Derived) -> None:
        """Write ``config.json`` (current resume-safe values) and ``derived.json``."""
        self.root.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.config_path, cfg.model_dump_json(indent=2) + "\n")
        write_text_atomic(self.derived_path, json.dumps(asdict(derived), indent=2) + "\n")

    def write_result(self, result: RunResult) -> None:
        write_text_atomic(self.result_path, json.dumps(asdict(result), indent=2) + "\n")
