"""Where the time of one Franca train step goes: torch.profiler table of the top operators.

Builds the same step as ``bench.py`` (synthetic multi-crop batch, real masks, full objective), runs
warm-up steps, then profiles a few and prints the operators sorted by device time (CUDA) or CPU time,
the time of each phase of the step (the ``franca.*`` ranges: teacher, student, losses, backward, clip,
optimizer, ema) and the share of the step the GPU spent busy. Optionally writes a Chrome trace.

    python benchmarks/train_step/profile_step.py --config vitb14_in21k --batch 32 --trace /tmp/b14.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import build_bench_run, synthetic_batch

from franca_core.config import PRESETS, PretrainConfig, load_config
from franca_core.train.loop import train_step
from franca_core.train.parallel import compile_networks


def print_phases(prof: profile, steps: int, device: torch.device) -> None:
    """Time per step in each ``franca.*`` range of the train step (host time; device time on CUDA)."""
    rows = sorted((e for e in prof.key_averages() if e.key.startswith("franca.")), key=lambda e: e.key)
    print(f"{'phase':<18}{'host ms/step':>14}" + (f"{'device ms/step':>16}" if device.type == "cuda" else ""))
    for e in rows:
        device_ms = f"{e.device_time_total / 1e3 / steps:>16.1f}" if device.type == "cuda" else ""
        print(f"{e.key:<18}{e.cpu_time_total / 1e3 / steps:>14.1f}{device_ms}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="debug")
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument(
        "--compile", nargs="?", const="blocks", choices=["blocks", "all"], help="compile the blocks (or all)"
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--trace", type=Path, default=None, help="write a Chrome trace here")
    parser.add_argument("--rows", type=int, default=25)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    device = torch.device(args.device)
    cfg = load_config(PretrainConfig, args.config, PRESETS, args.overrides)
    run = build_bench_run(cfg, device)
    if args.compile:
        compile_networks(run.objective, args.compile)
    batch = synthetic_batch(cfg, args.batch or cfg.data.batch_size_per_rank).to(device)
    for i in range(3):
        train_step(run, batch, run.schedules.at(100 + i))
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    with profile(activities=activities) as prof:
        for i in range(args.steps):
            train_step(run, batch, run.schedules.at(200 + i))
        sync()
    wall = (time.perf_counter() - start) / args.steps
    sort = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    print(prof.key_averages().table(sort_by=sort, row_limit=args.rows))
    print_phases(prof, args.steps, device)
    if device.type == "cuda":
        busy = sum(e.self_device_time_total for e in prof.key_averages()) / 1e6 / args.steps
        print(f"step {wall * 1e3:.1f} ms (profiled), GPU busy {busy * 1e3:.1f} ms = {100 * busy / wall:.0f}%")
    if args.trace:
        prof.export_chrome_trace(str(args.trace))


if __name__ == "__main__":
    main()
