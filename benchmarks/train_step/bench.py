"""Throughput, peak memory and (on CUDA) model FLOPs utilisation of the full Franca train step.

One "step" is exactly ``franca_core.train.loop.train_step``: teacher targets (Sinkhorn-Knopp), student
forward/backward through backbone and Matryoshka heads, per-module gradient clipping, AdamW, EMA, on
one synthetic multi-crop batch with the config's crop sizes and real iBOT masks. For each config the
variants are compared against the first one, measured in the same process (eager by default). A
variant is an attention kernel ("eager", "sdpa" = torch's fused attention, "auto" = xFormers on CUDA
when installed, else SDPA) with optional "+compile" (torch.compile every block), "+compile_all" (also
the heads and loss terms), "+per_sample" / "+batch_subset" (force the form of stochastic depth; default:
the official rule) and "+checkpointing" (recompute block activations in backward).

MFU = (FLOPs of one step, counted once with ``torch.utils.flop_counter``) / (step time x peak bf16
dense FLOP/s of the GPU). Peak memory is ``torch.cuda.max_memory_allocated`` on CUDA, the process's
maximum resident set on CPU (a high-water mark over the whole run).

    python benchmarks/train_step/bench.py                                   # CPU: debug preset
    python benchmarks/train_step/bench.py --configs vitb14_in21k vitl14_in21k --batch 32 --out out.json
    python benchmarks/train_step/bench.py --configs vitl14_in21k --attention sdpa+per_sample sdpa sdpa+compile
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from franca_core.config import PRESETS, PretrainConfig, apply_overrides, derived, load_config
from franca_core.data.augment import MultiCropSample
from franca_core.data.collate import MultiCropBatch, collate_multicrop
from franca_core.data.position import attach_masks
from franca_core.models.layers.attention import Attention, xformers_for
from franca_core.train.build import build_objective
from franca_core.train.data import build_masker, initial_position
from franca_core.train.loop import train_step
from franca_core.train.parallel import DistEnv, compile_networks
from franca_core.train.setup import Run, StartPoint, autocast_dtype, build_optimizer, build_schedules

# Dense bf16 peak of the GPUs we expect (NVIDIA data sheets; SXM parts).
PEAK_BF16_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12}


@dataclass(frozen=True)
class Measurement:
    config: str
    attention: str
    batch: int
    seconds_per_step: float
    images_per_s: float
    peak_memory_mib: float
    tflops_per_step: float
    mfu: float | None
    speedup_vs_baseline: float = 1.0


def synthetic_batch(cfg: PretrainConfig, batch: int) -> MultiCropBatch:
    """Random crops of the configured sizes with the engine's real step masks."""
    g, loc = cfg.crops.global_size, cfg.crops.local_size
    gen = torch.Generator().manual_seed(0)
    samples = [
        MultiCropSample(
            global_crops=[torch.randn(3, g, g, generator=gen) for _ in range(2)],
            local_crops=[torch.randn(3, loc, loc, generator=gen) for _ in range(cfg.crops.n_local)],
        )
        for _ in range(batch)
    ]
    stacked = collate_multicrop(samples, build_masker(cfg).generator, np.random.default_rng(0), 0.0)
    masks, upperbound = build_masker(cfg).masks(step=0, first_image=0, n_images=batch)
    return attach_masks(stacked, masks, upperbound)


def build_bench_run(cfg: PretrainConfig, device: torch.device) -> Run:
    torch.manual_seed(0)
    objective = build_objective(cfg).to(device)
    d = derived(cfg, 1)
    return Run(
        cfg=cfg,
        env=DistEnv(rank=0, local_rank=0, world_size=1, device=device),
        mode="none",
        derived=d,
        objective=objective,
        optimizer=build_optimizer(cfg, objective, "none"),
        schedules=build_schedules(cfg, d),
        start=StartPoint(0, 0.0, initial_position(cfg, 1), None),
        autocast_dtype=autocast_dtype(cfg, device),
    )


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def count_flops(run: Run, batch: MultiCropBatch) -> float:
    """FLOPs of one full train step (forward, backward, teacher), counted by torch's flop counter."""
    counter = FlopCounterMode(display=False)
    with counter:
        train_step(run, batch, run.schedules.at(100))
    return float(counter.get_total_flops())


def peak_memory_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB


def peak_flops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_BF16_FLOPS.items() if k in name), None)


def _kernel_label(attention: str, run: Run, device: torch.device) -> str:
    """``auto`` names the kernel it resolved to (xFormers only when its probe call runs here)."""
    if not attention.startswith("auto"):
        return attention
    head_dim = next(m.head_dim for m in run.objective.modules() if isinstance(m, Attention))
    xf = xformers_for(device, run.autocast_dtype or torch.float32, head_dim) is not None
    return attention.replace("auto", "auto=xformers" if xf else "auto=sdpa", 1)


VARIANT_OPTIONS = {
    "compile": [],  # handled by measure(): torch.compile of every block after the FLOP count
    "compile_all": [],  # the same, plus the heads and the student's loss terms
    "per_sample": ["backbone.drop_path_mode=per_sample"],
    "batch_subset": ["backbone.drop_path_mode=batch_subset"],
    "checkpointing": ["runtime.activation_checkpointing=true"],
}


def variant_overrides(options: list[str]) -> list[str]:
    """Config overrides of a variant's options (``compile``/``compile_all`` add none: measure() compiles).

    ``per_sample`` / ``batch_subset`` force the form of stochastic depth (default: the official rule,
    batch subset above rate 0.1), e.g. ``sdpa+per_sample`` as the baseline of ``sdpa``.
    """
    unknown = sorted(set(options) - set(VARIANT_OPTIONS))
    if unknown:
        raise SystemExit(f"unknown variant option(s) {unknown}; known: {sorted(VARIANT_OPTIONS)}")
    return [o for option in options for o in VARIANT_OPTIONS[option]]


def measure(
    cfg: PretrainConfig, attention: str, batch_size: int, repeats: int, device: torch.device
) -> Measurement:
    """``attention`` is a variant: ``KERNEL[+OPTION...]`` (see :func:`variant_overrides`)."""
    kernel, *options = attention.split("+")
    compiled = "all" if "compile_all" in options else "blocks" if "compile" in options else None
    cfg = apply_overrides(cfg, [f"backbone.attention={kernel}", *variant_overrides(options)])
    run = build_bench_run(cfg, device)
    batch = synthetic_batch(cfg, batch_size).to(device)
    flops = count_flops(run, batch)
    if compiled:  # after counting: the flop counter runs the eager modules
        compile_networks(run.objective, compiled)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for i in range(repeats + 2):  # two warm-up steps (kernels, allocator, optimizer state)
        _sync(device)
        start = time.perf_counter()
        train_step(run, batch, run.schedules.at(100 + i))
        _sync(device)
        if i >= 2:
            times.append(time.perf_counter() - start)
    seconds = float(np.median(times))
    peak = peak_flops(device)
    return Measurement(
        config=cfg.name,
        attention=_kernel_label(attention, run, device),
        batch=batch_size,
        seconds_per_step=seconds,
        images_per_s=batch_size / seconds,
        peak_memory_mib=peak_memory_mib(device),
        tflops_per_step=flops / 1e12,
        mfu=None if peak is None else flops / seconds / peak,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=["debug"], help="presets or YAML files")
    parser.add_argument(
        "--attention",
        nargs="+",
        default=["eager", "sdpa"],
        help="variants, the first one is the baseline: KERNEL[+compile|+compile_all]"
        "[+per_sample|+batch_subset][+checkpointing], e.g. sdpa+per_sample sdpa sdpa+compile",
    )
    parser.add_argument("--batch", type=int, default=None, help="images per step (default: the config's)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", type=Path, default=None, help="also write the measurements as JSON")
    parser.add_argument("overrides", nargs="*", help="key=value overrides applied to every config")
    args = parser.parse_args()
    device = torch.device(args.device)
    results = []
    for source in args.configs:
        cfg = load_config(PretrainConfig, source, PRESETS, args.overrides)
        batch = args.batch or cfg.data.batch_size_per_rank
        rows = [measure(cfg, attention, batch, args.repeats, device) for attention in args.attention]
        base = rows[0].seconds_per_step
        results += [
            Measurement(**{**asdict(r), "speedup_vs_baseline": base / r.seconds_per_step}) for r in rows
        ]
    print(
        f"device={device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}), "
        f"torch {torch.__version__}, threads {torch.get_num_threads()}, median of {args.repeats}"
    )
    print(
        f"{'config':<14}{'variant':<26}{'batch':>6}{'s/step':>9}{'img/s':>9}{'peak MiB':>10}"
        f"{'TFLOP/step':>11}{'MFU':>7}{'vs base':>9}"
    )
    for r in results:
        mfu = "-" if r.mfu is None else f"{100 * r.mfu:.1f}%"
        print(
            f"{r.config:<14}{r.attention:<26}{r.batch:>6}{r.seconds_per_step:>9.3f}{r.images_per_s:>9.1f}"
            f"{r.peak_memory_mib:>10.0f}{r.tflops_per_step:>11.3f}{mfu:>7}{r.speedup_vs_baseline:>8.2f}x"
        )
    if args.out:
        args.out.write_text(json.dumps([asdict(r) for r in results], indent=2) + "\n")


if __name__ == "__main__":
    main()
