"""``<run-dir>/summary.json`` of ``franca finetune-highres``: every high-resolution stage, in order.

Each stage trains in its own run directory (``<run-dir>/hr364``, ``<run-dir>/hr518``) with its own
``result.json``; the summary gathers them so one file answers "what did the finetuning produce"::

    {"stages": [{"stage": "hr364", "global_size": 364, "local_size": 112, "run_dir": "hr364",
                 "status": "completed", "steps": 10, "wall_time_s": 41.2, "images_per_s": 7.8,
                 "final_losses": {"total": ..., "dino": ..., "ibot": ..., "koleo": ...},
                 "last_checkpoint": "...", "teacher_safetensors": "hr364/export/...", ...},
                {"stage": "hr518", ...}],
     "backbone": "hr518/export/teacher_backbone.safetensors"}

It lists every stage that has a ``result.json``, whichever launch trained it (the flows run one
stage per launch), so it is rewritten after each stage. Paths are relative to the summary's folder,
like the exported files in ``result.json`` are relative to their run directory.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from franca_core.config.highres import HIGHRES_STAGES, HighResStage
from franca_core.train.checkpoint import write_text_atomic
from franca_core.train.rundir import RunDir, RunResult

SUMMARY_NAME = "summary.json"


def _exported(stage: HighResStage, name: str | None) -> str | None:
    return f"{stage.name}/{name}" if name else None


def stage_entry(stage: HighResStage, result: RunResult) -> dict[str, Any]:
    """One stage of the summary: its sizes, run directory, steps, time, losses and exported files."""
    return {
        "stage": stage.name,
        "global_size": stage.global_size,
        "local_size": stage.local_size,
        "run_dir": stage.name,
        "status": result.status,
        "config_name": result.config_name,
        "steps": result.steps,
        "wall_time_s": result.wall_time_s,
        "images_per_s": result.images_per_s,
        "world_size": result.world_size,
        "final_losses": asdict(result.final_losses),
        "last_checkpoint": _exported(stage, result.last_checkpoint),
        "teacher_safetensors": _exported(stage, result.teacher_safetensors),
        "teacher_franca_pth": _exported(stage, result.teacher_franca_pth),
    }


def finetune_summary(run_dir: Path) -> dict[str, Any]:
    """The summary of the stages under ``run_dir`` that have a ``result.json``, in stage order."""
    stages = []
    for stage in HIGHRES_STAGES:
        path = RunDir(run_dir / stage.name).result_path
        if path.is_file():
            stages.append(stage_entry(stage, RunResult.read(path)))
    backbone = next((s["teacher_safetensors"] for s in reversed(stages) if s["teacher_safetensors"]), None)
    return {"stages": stages, "backbone": backbone}


def write_finetune_summary(run_dir: Path) -> Path:
    """Write ``<run_dir>/summary.json`` (atomically) and return its path."""
    path = run_dir / SUMMARY_NAME
    run_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(finetune_summary(run_dir), indent=2) + "\n")
    return path


def format_summary(summary: dict[str, Any], run_dir: Path) -> str:
    """A few human lines: one per stage, then the summary file."""
    lines = []
    for s in summary["stages"]:
        loss = s["final_losses"]
        teacher = run_dir / str(s["teacher_safetensors"])
        lines.append(
            f"{s['stage']} ({s['global_size']}/{s['local_size']} px) {s['status']}: {s['steps']} steps in "
            f"{s['wall_time_s']:.0f} s, loss {loss['total']:.4f} (dino {loss['dino']:.4f}, ibot "
            f"{loss['ibot']:.4f}, koleo {loss['koleo']:.4f}), teacher {teacher}"
        )
    lines.append(f"summary: {run_dir / SUMMARY_NAME}")
    return "\n".join(lines)
