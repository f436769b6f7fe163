"""Training task: launch ``franca pretrain`` / ``finetune-highres``, wait, read ``result.json``.

The run directory is the whole interface (``franca_core.train.rundir``). While the run goes on its
step metrics are forwarded to the stage's MLflow run in the background (best effort: a tracking
server that is away only delays them, the file keeps them); ``record_stage`` completes the record
afterwards. Rerunning on the same directory resumes from the last good checkpoint.
"""

from __future__ import annotations

import logging
from pathlib import Path

from prefect import task

from franca_core.config.highres import HIGHRES_STAGES
from franca_core.train.finetune_summary import SUMMARY_NAME
from tasks.artifacts import good_checkpoints, log_checkpoints
from tasks.faults import InjectedFailureError, kill_step
from tasks.launch import LaunchOutcome, StopCheck, run_training, tail
from tasks.links import prefect_tags
from tasks.metrics import MetricsForwarder, Sync, mlflow_sender, sync_in_background
from tasks.record import metrics_cursor, open_stage_run
from tasks.results import TrainOutput, read_json, stage_key
from tasks.specs import TrainSpec
from tasks.tracking import DATA_TAG, TrackingContext

log = logging.getLogger(__name__)
EXIT_STOPPED = 3  # the CLI's status when --max-steps ended the run before its schedule


class TrainingError(RuntimeError):
    """The training process failed; the message carries its state and log tail."""


def cli_args(spec: TrainSpec) -> list[str]:
    """The ``franca`` subcommand and arguments of a training spec."""
    args = [spec.kind, "--run-dir", spec.run_dir, "--no-progress"]
    if spec.kind == "pretrain":
        args += ["--config", spec.preset]
    else:
        if not spec.init_from:
            raise ValueError("finetune-highres needs init_from (a pretraining run directory or checkpoint)")
        args += ["--from", spec.init_from, "--stages", str(spec.highres_stage or 1)]
    if spec.max_steps is not None:
        args += ["--max-steps", str(spec.max_steps)]
    overrides = list(spec.overrides)
    if spec.data is not None and spec.kind == "pretrain":
        overrides += ["data.source=webdataset", f"data.path={spec.data.shards_dir}"]
    return args + overrides


def stage_name(spec: TrainSpec) -> str:
    """MLflow stage name: ``pretrain``, or ``finetune-highres/hr364`` for one high-resolution stage."""
    if spec.kind == "pretrain" or spec.highres_stage is None:
        return spec.kind
    return f"{spec.kind}/{HIGHRES_STAGES[spec.highres_stage - 1].name}"


def run_dir_of(spec: TrainSpec) -> Path:
    """The directory the engine writes: the run dir, or ``<run dir>/<stage>`` for high resolution."""
    root = Path(spec.run_dir)
    if spec.kind == "pretrain":
        return root
    if spec.highres_stage is None:
        raise ValueError("finetune-highres specs name one stage (highres_stage) so each gets its own run")
    return root / HIGHRES_STAGES[spec.highres_stage - 1].name


def kill_after_checkpoint(run_dir: Path, step: int | None) -> StopCheck | None:
    """For an injected preemption: stop once a checkpoint at ``step`` or later exists."""
    if step is None:
        return None
    return lambda: any(c.step >= step for c in good_checkpoints(run_dir))


def _live_sync(spec: TrainSpec, ctx: TrackingContext, key: str, tags: dict[str, str]) -> Sync:
    """Open the stage's MLflow run; return what sends new step metrics and new checkpoints to it.

    Checkpoints go out while the run trains, so the UI shows them early and a retention policy
    (``runtime.keep_last``) cannot delete one before it was logged.
    """
    run_id = open_stage_run(ctx, stage_name(spec), key, tags)
    run_dir = run_dir_of(spec)
    cursor = metrics_cursor(run_dir, run_id)
    forwarder = MetricsForwarder(run_dir / "metrics.jsonl", cursor, mlflow_sender(ctx, run_id))
    return lambda: (forwarder.pump(), log_checkpoints(ctx, run_id, run_dir))


def _check(outcome: LaunchOutcome, spec: TrainSpec) -> None:
    stopped_early = outcome.returncode == EXIT_STOPPED and spec.max_steps is not None
    if outcome.ok or stopped_early:
        return
    raise TrainingError(
        f"{spec.kind} ended {outcome.state} (exit {outcome.returncode}); log {outcome.log_path}:\n"
        + tail(outcome.log_path)
    )


def _output(spec: TrainSpec, key: str) -> TrainOutput:
    """The typed result of a finished run."""
    run_dir = run_dir_of(spec)
    result = read_json(run_dir / "result.json")
    losses = {f"final_loss/{k}": float(v) for k, v in result.get("final_losses", {}).items()}
    exported = result.get("teacher_safetensors")
    files = [run_dir / n for n in ("config.json", "derived.json", "result.json", "launch.log")]
    if spec.kind == "finetune-highres":  # every high-resolution stage finished so far
        files.append(Path(spec.run_dir) / SUMMARY_NAME)
    wall, rate = (float(result.get(k, 0.0)) for k in ("wall_time_s", "images_per_s"))
    return TrainOutput(
        stage=stage_name(spec),
        key=key,
        out_dir=str(run_dir),
        config=read_json(run_dir / "config.json"),
        summary={**losses, "wall_time_s": wall, "final_images_per_s": rate},
        metrics_file=str(run_dir / "metrics.jsonl"),
        checkpoints=True,
        artifacts={"run": [str(f) for f in files], "export": [str(run_dir / "export")]},
        data_sha256=spec.data.manifest_sha256 if spec.data else None,
        backbone=str(run_dir / exported) if exported else None,
        prefect=prefect_tags(),
        steps=int(result.get("steps", 0)),
        status=str(result.get("status", "completed")),
    )


@task(name="train", tags=["training"])
def train(spec: TrainSpec, ctx: TrackingContext) -> TrainOutput:
    """Launch one training run to its end (resuming if it was interrupted); returns its result."""
    run_dir = run_dir_of(spec)
    run_dir.mkdir(parents=True, exist_ok=True)
    key = stage_key(stage_name(spec), spec, spec.run_dir)
    tags = {**prefect_tags(), **({DATA_TAG: spec.data.manifest_sha256} if spec.data else {})}
    kill_at = kill_step(spec.kind)
    with sync_in_background(lambda: _live_sync(spec, ctx, key, tags)):
        stop = kill_after_checkpoint(run_dir, kill_at)
        outcome = run_training(spec.launch, cli_args(spec), run_dir, stop)
    if outcome.state == "KILLED" and kill_at is not None:
        raise InjectedFailureError(f"{spec.kind} killed after a checkpoint at step >= {kill_at}, as asked")
    _check(outcome, spec)
    return _output(spec, key)
