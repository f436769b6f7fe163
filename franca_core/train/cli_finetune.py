"""``franca finetune-highres``: the two high-resolution stages after pretraining (``config/highres.py``).

    franca finetune-highres --from runs/b14 --run-dir runs/b14_hr
    franca finetune-highres --from runs/b14/checkpoints/model_1000000.pt --run-dir runs/b14_hr --stages 2
    franca finetune-highres --from franca_vitb14.safetensors --config vitb14_in21k --run-dir runs/hr

``--from`` is a pretraining run directory (its newest good checkpoint and its ``config.json``), a
training checkpoint, or a backbone file (then ``--config`` gives the base recipe). Stage k runs in
``<run-dir>/<stage name>`` and starts from the previous stage's teacher; rerunning resumes where it
stopped (a finished stage is not trained again). ``key=value`` overrides apply to every stage.
After each stage ``<run-dir>/summary.json`` lists every finished stage (``train/finetune_summary.py``):
run directory, steps, wall time, final losses and exported teacher of each.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from franca_core.config import (
    PRESETS,
    ConfigError,
    PretrainConfig,
    apply_overrides,
    config_from_json,
    load_config,
)
from franca_core.config.highres import HIGHRES_STAGES, highres_stage
from franca_core.train.checkpoint import latest_good_checkpoint, load_checkpoint
from franca_core.train.cli_pretrain import (
    USER_ERRORS,
    add_common_arguments,
    fail,
    report,
    setup_logging,
    with_max_steps,
)
from franca_core.train.finetune_summary import finetune_summary, format_summary, write_finetune_summary
from franca_core.train.loop import NonFiniteLossError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--from", dest="source", required=True, type=Path, help="run dir, checkpoint or backbone"
    )
    parser.add_argument(
        "--config", default=None, help="base pretraining config when --from is a backbone file"
    )
    parser.add_argument(
        "--stages",
        type=int,
        nargs="+",
        default=[1, 2],
        choices=range(1, len(HIGHRES_STAGES) + 1),
        help="which stages to run (1: 364/112 px, 2: 518/168 px)",
    )
    add_common_arguments(parser)


def base_config(source: Path, fallback: str | None) -> PretrainConfig:
    """The pretraining config of ``source`` (run dir or checkpoint), else the ``--config`` one."""
    if source.is_dir() and (source / "config.json").is_file():
        return config_from_json(PretrainConfig, (source / "config.json").read_text())
    if source.is_file() and source.name.startswith("model_") and source.suffix == ".pt":
        saved = load_checkpoint(source).config_json
        if saved:
            return config_from_json(PretrainConfig, saved)
    if fallback is None:
        raise ConfigError(f"cannot read a pretraining config from {source}; pass --config PRESET_OR_YAML")
    return load_config(PretrainConfig, fallback, PRESETS)


def _start_weights(source: Path) -> Path:
    if not source.exists():
        raise FileNotFoundError(f"--from: no such run directory or file: {source}")
    if source.is_dir():
        found = latest_good_checkpoint(source)
        if found is None:
            raise FileNotFoundError(f"--from: no good checkpoint in {source}")
        return found
    return source


def stage_configs(args: argparse.Namespace) -> list[tuple[PretrainConfig, Path]]:
    """(config, run dir) of every requested stage; stage k starts from stage k - 1's run dir."""
    base = base_config(args.source, args.config)
    previous = _start_weights(args.source)
    plans = []
    for number in sorted(args.stages):
        stage_dir = args.run_dir / HIGHRES_STAGES[number - 1].name
        if number > 1 and number - 1 not in args.stages:
            previous = args.run_dir / HIGHRES_STAGES[number - 2].name
        cfg = highres_stage(base, number - 1, init_from=previous.resolve())
        cfg = with_max_steps(apply_overrides(cfg, args.overrides), args.max_steps)
        plans.append((cfg, stage_dir))
        previous = stage_dir
    return plans


def summarize(run_dir: Path, show: bool) -> None:
    """Rewrite ``<run-dir>/summary.json`` with every finished stage; print it if ``show`` (rank 0)."""
    if int(os.environ.get("RANK", "0")) != 0:
        return
    write_finetune_summary(run_dir)
    if show:
        print(format_summary(finetune_summary(run_dir), run_dir))


def run(args: argparse.Namespace) -> int:
    setup_logging()
    try:
        plans = stage_configs(args)
        if args.print_config:
            for cfg, _ in plans:
                print(cfg.model_dump_json(indent=2))
            return 0
        from franca_core.train.engine import pretrain

        for cfg, stage_dir in plans:
            result = pretrain(cfg, stage_dir, progress=not args.no_progress)
            report(result, stage_dir)
            last = result.status != "completed" or stage_dir == plans[-1][1]
            summarize(args.run_dir, show=last)
            if result.status != "completed":
                return 3
    except USER_ERRORS as err:
        return fail("finetune-highres", err)
    except NonFiniteLossError as err:
        print(f"franca finetune-highres: training diverged: {err}", file=sys.stderr)
        return 1
    return 0
