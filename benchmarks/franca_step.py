"""Forward + backward time and peak memory of one Franca step, SDPA vs eager attention.

Builds the full objective (student, teacher, Matryoshka heads, losses) for a preset, feeds one
synthetic multi-crop batch, and times ``objective(batch).total.backward()`` for each attention
backend. Ratios are against the eager baseline measured in the same run. Not a test.

    python benchmarks/franca_step.py --config debug --batch 8
    python benchmarks/franca_step.py --config vitb14_in21k --batch 32 --device cuda   # on a GPU
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import numpy as np
import torch

from franca_core.config import PRESETS, load_config
from franca_core.config.pretrain import PretrainConfig
from franca_core.data.augment import MultiCropSample
from franca_core.data.collate import MultiCropBatch, collate_multicrop
from franca_core.train.build import build_mask_generator, build_objective
from franca_core.train.objective import FrancaObjective


@dataclass(frozen=True)
class Timing:
    backend: str
    seconds: float
    peak_mb: float


def synthetic_batch(cfg: PretrainConfig, batch: int) -> MultiCropBatch:
    g, loc, n_local = cfg.crops.global_size, cfg.crops.local_size, cfg.crops.n_local
    samples = [
        MultiCropSample(
            global_crops=[torch.randn(3, g, g) for _ in range(2)],
            local_crops=[torch.randn(3, loc, loc) for _ in range(n_local)],
        )
        for _ in range(batch)
    ]
    return collate_multicrop(samples, build_mask_generator(cfg), np.random.default_rng(0), 0.5, (0.1, 0.65))


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB, process high-water mark


def time_backend(
    objective: FrancaObjective, batch: MultiCropBatch, backend: str, device: torch.device, repeats: int
) -> Timing:
    for net in (objective.student, objective.teacher):
        net.backbone.set_attention_backend(backend)  # type: ignore[arg-type]
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for i in range(repeats + 1):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        with torch.autocast(device.type, dtype=dtype, enabled=device.type == "cuda"):
            loss = objective(batch, teacher_temp=0.04).total
        loss.backward()
        objective.student.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i > 0:  # the first step warms up kernels and allocators
            times.append(time.perf_counter() - start)
    return Timing(backend, float(np.median(times)), peak_memory_mb(device))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="debug", help="preset name or YAML")
    parser.add_argument("--batch", type=int, default=8, help="images per step")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("overrides", nargs="*", help="key=value config overrides")
    args = parser.parse_args()
    cfg = load_config(PretrainConfig, args.config, PRESETS, args.overrides)
    device = torch.device(args.device)
    torch.manual_seed(0)
    objective = build_objective(cfg).to(device)
    batch = synthetic_batch(cfg, args.batch).to(device)
    results = [time_backend(objective, batch, b, device, args.repeats) for b in ("eager", "sdpa")]
    base = results[0]
    print(f"config={cfg.name} batch={args.batch} device={device} (median of {args.repeats})")
    print(f"{'backend':<8} {'s/step':>8} {'img/s':>8} {'peak MiB':>9} {'speed vs eager':>15}")
    for r in results:
        print(
            f"{r.backend:<8} {r.seconds:8.3f} {args.batch / r.seconds:8.1f} {r.peak_mb:9.0f} "
            f"{base.seconds / r.seconds:14.2f}x"
        )


if __name__ == "__main__":
    main()
