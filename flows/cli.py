"""``franca demo``: the whole pipeline on the embedded default, on CPU, nothing to start by hand.

    franca demo --out outputs/demo            # about 10 minutes on 2 CPU cores
    franca demo --out outputs/demo --tiny     # a smoke run: a few steps of a shrunken model

The scikit-image photographs are served to img2dataset over loopback HTTP, curated, used to
pretrain the ``debug`` ViT, post-trained with RASA and evaluated with the ``quick`` suite. Prefect
runs with a temporary local server whose database lives in ``<out>/prefect`` (unless
``PREFECT_API_URL`` points at a server); MLflow uses SQLite and an artifact folder in
``<out>/mlflow`` (unless ``MLFLOW_TRACKING_URI`` is set). Rerunning the same command skips the
finished stages. It ends with the results table and how to open both UIs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

QUIET_ENV = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "NO_ALBUMENTATIONS_UPDATE": "1",
    "DO_NOT_TRACK": "1",
    "WANDB_MODE": "disabled",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("outputs/demo"), help="output folder")
    parser.add_argument("--steps", type=int, default=None, help="pretraining steps (default: the demo's)")
    parser.add_argument("--tiny", action="store_true", help="smoke-test settings (a minute or two)")
    parser.add_argument("--finetune", action="store_true", help="also run the two high-resolution stages")
    parser.add_argument("--tracking-uri", default=None, help="MLflow server (default: SQLite in --out)")
    parser.add_argument("--fresh", action="store_true", help="delete --out first instead of resuming")


def prepare_environment(out: Path) -> None:
    """Telemetry off; Prefect's home (database, results) inside ``out`` unless a server is given."""
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    if not os.environ.get("PREFECT_API_URL"):
        os.environ.setdefault("PREFECT_HOME", str((out / "prefect").resolve()))


def build_params(args: argparse.Namespace) -> Any:
    from flows.params import TrainSettings, demo, tiny
    from tasks.specs import TrackingParams

    out = str(args.out)
    params = tiny(out) if args.tiny else demo(out)
    update: dict[str, Any] = {"tracking": TrackingParams(tracking_uri=args.tracking_uri)}
    if args.steps:
        update["pretrain"] = params.pretrain.model_copy(update={"max_steps": args.steps})
    if args.finetune:
        update["finetune"] = TrainSettings(
            max_steps=params.pretrain.max_steps, overrides=params.pretrain.overrides
        )
    return params.model_copy(update=update)


def print_summary(result: Any, out: Path, seconds: float) -> None:
    """The results table, then how to browse the runs (plain lines, so they copy and paste)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Franca pipeline results ({seconds / 60:.1f} min)")
    for column in ("stage", "metric", "value"):
        table.add_column(column, justify="right" if column == "value" else "left")
    for stage, row in result.table.items():
        for metric, value in row.items():
            if not (metric.startswith("dropped/") and value == 0):  # only the reasons that dropped something
                table.add_row(stage, metric, f"{value:.4g}")
    Console(width=100).print(table)
    print(f"backbone: {result.backbone} (registered as {result.registered_model})")
    print(f"MLflow parent run {result.mlflow_parent_run_id}; stage runs {result.stage_runs}")
    uri = result.tracking_uri
    if uri.startswith("sqlite:"):
        print(
            f"MLflow UI:  .venv/bin/mlflow ui --backend-store-uri {uri} --port 5000   # http://127.0.0.1:5000"
        )
        print(f"screenshot: scripts/mlflow_screenshot.sh --store {out / 'mlflow'} --out {out / 'mlflow.png'}")
    else:
        print(f"MLflow UI:  {uri}")
    home = os.environ.get("PREFECT_HOME")
    if not os.environ.get("PREFECT_API_URL") and home:
        print(f"Prefect UI: PREFECT_HOME={home} .venv/bin/prefect server start   # http://127.0.0.1:4200")
    print(f"outputs in {out}; rerunning the same command skips the finished stages")


def run(args: argparse.Namespace) -> int:
    out: Path = args.out
    if args.fresh and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    prepare_environment(out)
    from flows.pipeline import end_to_end  # after the environment: Prefect reads it on import

    start = time.monotonic()
    try:
        result = end_to_end(build_params(args))
    except Exception as err:
        print(
            f"franca demo: failed: {err}\nrerun the same command to resume from the failed stage",
            file=sys.stderr,
        )
        return 1
    print_summary(result, out, time.monotonic() - start)
    return 0
