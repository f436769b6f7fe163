"""``franca pretrain``: train a Franca backbone; the same command resumes an interrupted run.

    franca pretrain --config debug --run-dir runs/debug --max-steps 200
    franca pretrain --config vitb14_in21k --run-dir runs/b14 data.path=/data/shards optim.base_lr=5e-4
    torchrun --nproc-per-node 8 -m franca_core.cli pretrain --config vitl14_laion --run-dir runs/l14 \\
        data.source=manifest data.path=/data/curated/manifest.parquet runtime.distributed=fsdp

``--config`` takes a preset name (``franca_core.config.presets``) or a YAML file; trailing
``key=value`` pairs override single fields (an unknown key is an error listing the valid ones).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from franca_core.config import PRESETS, ConfigError, PretrainConfig, load_config
from franca_core.config.loading import apply_overrides
from franca_core.data.shards import DataError
from franca_core.train.data import check_data
from franca_core.train.loop import NonFiniteLossError
from franca_core.train.rundir import RunDirError, RunResult

# Errors that are the user's to fix: reported in one line, exit status 2, no traceback.
USER_ERRORS: tuple[type[Exception], ...] = (ConfigError, DataError, RunDirError, FileNotFoundError)


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments shared by ``pretrain`` and ``finetune-highres``."""
    parser.add_argument("--run-dir", required=True, type=Path, help="run directory (created, or resumed)")
    parser.add_argument(
        "--max-steps", type=int, default=None, help="stop after this step (schedules unchanged)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    parser.add_argument(
        "overrides", nargs="*", metavar="key=value", help="config overrides, e.g. optim.base_lr=1e-3"
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", required=True, help=f"preset ({', '.join(PRESETS)}) or YAML file of a PretrainConfig"
    )
    add_common_arguments(parser)


def setup_logging() -> None:
    """INFO on rank 0, warnings only on the other ranks."""
    rank = int(os.environ.get("RANK", "0"))
    logging.basicConfig(
        level=logging.INFO if rank == 0 else logging.WARNING, format="%(levelname)s %(message)s"
    )


def with_max_steps(cfg: PretrainConfig, max_steps: int | None) -> PretrainConfig:
    return cfg if max_steps is None else apply_overrides(cfg, [f"runtime.max_steps={max_steps}"])


def report(result: RunResult, run_dir: Path) -> None:
    """A short human summary on rank 0."""
    if int(os.environ.get("RANK", "0")) != 0:
        return
    loss = result.final_losses
    print(
        f"{result.status}: {result.config_name}, {result.steps} steps in {result.wall_time_s:.0f} s "
        f"({result.images_per_s:.1f} img/s), loss {loss.total:.4f} "
        f"(dino {loss.dino:.4f}, ibot {loss.ibot:.4f}, koleo {loss.koleo:.4f})\n"
        f"teacher backbone: {run_dir / str(result.teacher_safetensors)}\n"
        f"result: {run_dir / 'result.json'}"
    )


def fail(command: str, err: BaseException) -> int:
    print(f"franca {command}: error: {err}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    setup_logging()
    try:
        cfg = with_max_steps(
            load_config(PretrainConfig, args.config, PRESETS, args.overrides), args.max_steps
        )
        if args.print_config:
            print(cfg.model_dump_json(indent=2))
            return 0
        check_data(cfg)
        from franca_core.train.engine import pretrain  # heavy imports only once the config is valid

        result = pretrain(cfg, args.run_dir, progress=not args.no_progress)
    except USER_ERRORS as err:
        return fail("pretrain", err)
    except NonFiniteLossError as err:
        print(f"franca pretrain: training diverged: {err}", file=sys.stderr)
        return 1
    report(result, args.run_dir)
    return 0 if result.status == "completed" else 3
