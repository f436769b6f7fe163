"""Exact resume: a run killed with SIGKILL anywhere, then rerun, ends bitwise equal to an uninterrupted one.

The runs are real ``franca pretrain`` processes (tiny ViT, real photographs, checkpoint every 2 steps).
One kill lands at a random step, one while a checkpoint is being written, and before the final rerun
the newest checkpoint is truncated, which the engine must detect by its digest and skip.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from franca_core.tracking import read_jsonl_metrics
from franca_core.train.checkpoint import checkpoint_dir, list_checkpoints, load_checkpoint
from franca_core.train.rundir import RunResult

REPO = Path(__file__).resolve().parents[2]

MAX_STEPS = 14


Launcher = Callable[..., subprocess.Popen[str]]


def command(run_dir: Path, tiny_args: Callable[..., list[str]]) -> list[str]:
    return [
        "pretrain",
        "--config",
        "debug",
        "--run-dir",
        str(run_dir),
        "--max-steps",
        str(MAX_STEPS),
        "--no-progress",
        # Drop path 0.4: the batch-subset form draws a permutation per branch, which resume must replay.
        *tiny_args("data.source=sample_images", "data.max_short_side=96", "backbone.drop_path_rate=0.4"),
    ]


def run_to_end(cli: Launcher, args: list[str]) -> None:
    process = cli(args)
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err[-3000:]


def last_logged_step(run_dir: Path) -> int:
    path = run_dir / "metrics.jsonl"
    return max((int(r["step"]) for r in read_jsonl_metrics(path)), default=0) if path.exists() else 0


def kill_when(cli: Launcher, args: list[str], run_dir: Path, condition: Callable[[Path], bool]) -> None:
    """Start the run and SIGKILL it as soon as ``condition(run_dir)`` holds (it must not finish first)."""
    process = cli(args)
    deadline = time.monotonic() + 300
    while not condition(run_dir):
        assert process.poll() is None, f"run ended before the kill: {process.communicate()[1][-2000:]}"
        assert time.monotonic() < deadline
        time.sleep(0.002)
    process.send_signal(signal.SIGKILL)
    process.communicate()
    assert process.returncode == -signal.SIGKILL


def writing_a_checkpoint(run_dir: Path) -> bool:
    directory = checkpoint_dir(run_dir)
    return directory.exists() and any(p.name.endswith(".tmp") for p in directory.iterdir())


def assert_identical(a: Any, b: Any, where: str) -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_identical(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_identical(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


@pytest.mark.slow
def test_sigkill_anywhere_then_rerun_equals_the_uninterrupted_run(
    tmp_path: Path, cli: Launcher, tiny_args: Callable[..., list[str]]
) -> None:
    reference, interrupted = tmp_path / "reference", tmp_path / "interrupted"
    run_to_end(cli, command(reference, tiny_args))
    args = command(interrupted, tiny_args)

    target = random.Random().randint(2, MAX_STEPS - 4)  # a random step, different on every test run
    kill_when(cli, args, interrupted, lambda d: last_logged_step(d) >= target)
    kill_when(cli, args, interrupted, writing_a_checkpoint)  # mid-write: a temporary file, no digest yet
    saved = list_checkpoints(interrupted)
    assert saved, "no checkpoint survived the kills"
    newest = saved[-1][1]
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])  # truncated: must be skipped
    run_to_end(cli, args)

    final = f"checkpoints/model_{MAX_STEPS:07d}.pt"
    a, b = load_checkpoint(reference / final), load_checkpoint(interrupted / final)
    for part in ("student", "teacher", "objective", "optimizer", "rng"):
        assert_identical(getattr(a, part), getattr(b, part), part)
    assert a.data == b.data and a.step == b.step == MAX_STEPS
    losses = [[r["loss"] for r in read_jsonl_metrics(d / "metrics.jsonl")] for d in (reference, interrupted)]
    assert losses[0] == losses[1] and len(losses[0]) == MAX_STEPS


@pytest.mark.slow
def test_sigterm_checkpoints_and_stops_then_the_rerun_finishes(
    tmp_path: Path, cli: Launcher, tiny_args: Callable[..., list[str]]
) -> None:
    """SLURM sends SIGTERM before the time limit: the run saves where it is and exits with status 3."""
    args = command(tmp_path, tiny_args)
    process = cli(args)
    while last_logged_step(tmp_path) < 3:
        assert process.poll() is None
        time.sleep(0.005)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 3, err[-2000:]
    stopped = RunResult.read(tmp_path / "result.json")
    assert stopped.status == "stopped" and 3 <= stopped.steps < MAX_STEPS
    assert stopped.last_checkpoint == f"checkpoints/model_{stopped.steps:07d}.pt"
    run_to_end(cli, args)
    assert RunResult.read(tmp_path / "result.json").steps == MAX_STEPS


@pytest.mark.slow
def test_sigterm_to_the_process_group_with_loader_workers_still_checkpoints(
    tmp_path: Path, tiny_args: Callable[..., list[str]]
) -> None:
    """SLURM and ``timeout`` signal every process of the job: loader workers must not die first."""
    args = [*command(tmp_path, tiny_args), "data.num_workers=2"]
    process = subprocess.Popen(
        [sys.executable, "-m", "franca_core.cli", *args],
        cwd=REPO,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group, as under srun
    )
    while last_logged_step(tmp_path) < 3:
        assert process.poll() is None
        time.sleep(0.005)
    os.killpg(process.pid, signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 3, err[-2000:]
    stopped = RunResult.read(tmp_path / "result.json")
    assert stopped.status == "stopped"
    assert stopped.last_checkpoint == f"checkpoints/model_{stopped.steps:07d}.pt"
