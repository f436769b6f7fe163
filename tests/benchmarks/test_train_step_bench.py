"""The train-step benchmark and profiler scripts, run as users run them, on the tiny config (CPU)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

TRAIN_STEP = Path(__file__).resolve().parents[2] / "benchmarks" / "train_step"


def _run(script: str, args: list[str]) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, str(TRAIN_STEP / script), *args]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_bench_compares_variants_against_the_first(
    tmp_path: Path, tiny_args: Callable[..., list[str]]
) -> None:
    out = tmp_path / "bench.json"
    variants = ["sdpa+per_sample", "sdpa", "sdpa+batch_subset"]
    args = ["--attention", *variants, "--repeats", "1", "--device", "cpu", "--out", str(out)]
    stdout = _run("bench.py", [*args, *tiny_args("backbone.drop_path_rate=0.4")])
    rows = json.loads(out.read_text())
    assert [r["attention"] for r in rows] == variants
    assert rows[0]["speedup_vs_baseline"] == 1.0
    for r in rows:
        assert r["seconds_per_step"] > 0 and r["images_per_s"] == r["batch"] / r["seconds_per_step"]
        assert r["mfu"] is None  # no GPU peak on a CPU
    per_sample, subset, forced = (r["tflops_per_step"] for r in rows)
    # Rate 0.4: the official rule runs each student branch on 60% of the crops, the teacher is unchanged.
    assert subset == forced and 0.5 * per_sample < subset < 0.85 * per_sample
    assert "sdpa+per_sample" in stdout and "vs base" in stdout


def test_bench_rejects_an_unknown_option(tiny_args: Callable[..., list[str]]) -> None:
    done = subprocess.run(
        [sys.executable, str(TRAIN_STEP / "bench.py"), "--attention", "sdpa+fast", *tiny_args()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0 and "unknown variant option" in done.stderr


def test_profile_step_prints_the_phase_table(tiny_args: Callable[..., list[str]]) -> None:
    stdout = _run("profile_step.py", ["--steps", "1", "--rows", "5", "--device", "cpu", *tiny_args()])
    # The operator table's rows depend on the profiler backend (one full-suite run printed none); the
    # phase table is ours: one row per franca.* range with its host milliseconds per step.
    phases = ("teacher", "student", "losses", "backward", "clip", "optimizer", "ema")
    rows = {line.split()[0]: line.split()[1:] for line in stdout.splitlines() if line.startswith("franca.")}
    assert sorted(rows) == sorted(f"franca.{phase}" for phase in phases)
    assert all(float(values[0]) >= 0 for values in rows.values())
