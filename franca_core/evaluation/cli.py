"""``franca eval``: run an evaluation suite on a backbone and write ``results.json`` and plots.

Examples::

    franca eval --backbone dinov2_vits14 --suite quick --out outputs/eval_random      # random init
    franca eval --backbone franca_vitb14=/ckpt/franca_vitb14_In21K.pth --suite shared --out outputs/eval_b
    franca eval --backbone /ckpt/teacher.pth --arch franca_vitb14 --suite paper --out outputs/paper \\
        --data imagenet=/data/imagenet --data voc=/data/VOCdevkit --data ade20k=/data/ADEChallengeData2016
    franca eval --backbone oracle --suite quick --out outputs/eval_oracle             # label ceiling
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from franca_core.evaluation.base import EvalResult
from franca_core.evaluation.features import BackboneFeatures, FeatureSource
from franca_core.evaluation.oracle import LabelOracleFeatures
from franca_core.evaluation.registry import EVALUATORS
from franca_core.evaluation.runner import run_suite
from franca_core.evaluation.suites import BUILTIN_SUITES, load_suite


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__.splitlines()[0] if __doc__ else None
    parser.add_argument(
        "--backbone", help="hub name (random init), NAME=FILE, FILE (with --arch), or 'oracle'"
    )
    parser.add_argument("--arch", help="hub architecture name when --backbone is a bare file")
    parser.add_argument("--rasa-weights", help="official RASA head file (adds patch_token_rasa)")
    parser.add_argument("--img-size", type=int, help="image size the backbone is built for (pos-embed grid)")
    parser.add_argument(
        "--num-heads", type=int, help="attention heads of a bare custom-size file (default D/64)"
    )
    parser.add_argument(
        "--suite", default="quick", help=f"built-in suite {sorted(BUILTIN_SUITES)} or a YAML file"
    )
    parser.add_argument("--out", type=Path, help="output folder for results.json and plots/")
    parser.add_argument(
        "--data", action="append", default=[], metavar="NAME=PATH", help="dataset root override"
    )
    parser.add_argument("--only", help="comma-separated evaluator kinds or keys to run")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    parser.add_argument("--batch-size", type=int, default=32, help="images per forward pass")
    parser.add_argument("--num-workers", type=int, default=0, help="data-loading worker processes")
    parser.add_argument("--cache-dir", type=Path, help="feature cache (default: OUT/feature_cache)")
    parser.add_argument("--no-cache", action="store_true", help="do not read or write cached features")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.add_argument("--list", action="store_true", help="list suites and evaluators, then exit")


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _parse_roots(items: list[str]) -> dict[str, Path]:
    roots = {}
    for item in items:
        if "=" not in item:
            raise SystemExit(f"--data expects NAME=PATH, got {item!r}")
        name, path = item.split("=", 1)
        roots[name] = Path(path)
    return roots


def _source(
    args: argparse.Namespace, device: torch.device
) -> tuple[FeatureSource, torch.nn.Module | None, str]:
    if args.backbone == "oracle":
        return LabelOracleFeatures(), None, "label oracle (one-hot ground truth)"
    from franca_core.evaluation.backbone import load_backbone

    loaded = load_backbone(args.backbone, args.arch, args.rasa_weights, args.img_size, device, args.num_heads)
    cache = None if args.no_cache else (args.cache_dir or args.out / "feature_cache")
    source = BackboneFeatures(
        loaded.model,
        loaded.identity,
        cache,
        args.batch_size,
        args.num_workers,
        device,
        progress=not args.no_progress,
    )
    return source, loaded.model, loaded.description


def _print_list(console: Console) -> None:
    for name, build in BUILTIN_SUITES.items():
        suite = build()
        console.print(f"[bold]{name}[/]: {suite.description} -> {', '.join(e.key for e in suite.evaluators)}")
    for name, spec in EVALUATORS.items():
        console.print(f"  [cyan]{name}[/]: {spec.summary}")


def _print_summary(console: Console, results: dict[str, EvalResult], out: Path) -> None:
    table = Table(title=f"results ({out / 'results.json'})")
    table.add_column("evaluator")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, result in results.items():
        for metric, value in result.headline().items():
            table.add_row(key, metric, f"{value:.4g}")
    console.print(table)


def run(args: argparse.Namespace) -> int:
    console = Console(stderr=True)
    if args.list:
        _print_list(console)
        return 0
    if not args.backbone or not args.out:
        console.print("[red]--backbone and --out are required[/]")
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("faiss").setLevel(logging.WARNING)  # its loader logs every attempted SIMD build
    suite = load_suite(args.suite, _parse_roots(args.data))
    device = _device(args.device)
    source, model, description = _source(args, device)
    only = set(args.only.split(",")) if args.only else None
    results = run_suite(suite, source, args.out, model, description, device, only)
    _print_summary(console, results, args.out)
    return 0
