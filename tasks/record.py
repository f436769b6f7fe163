"""Tracking tasks: the pipeline's parent run, one child run per stage, and the registered backbone.

``record_stage`` puts any ``StageOutput`` into MLflow: the run found again by the stage key (or
created), the full config as params, lineage tags, every step metric, every checkpoint, the
artifact files and the headline numbers. It is idempotent, so its retries (with back-off, for a
tracking server that is away) and a rerun after a failure only send what is missing.
"""

from __future__ import annotations

from pathlib import Path

from mlflow.entities import Run
from prefect import task
from prefect.tasks import exponential_backoff

from tasks.artifacts import log_checkpoints, log_files, register_backbone
from tasks.links import FLOW_RUN_TAG, TASK_RUN_TAG, link_flow_run, prefect_tags
from tasks.metrics import MetricsForwarder, mlflow_sender
from tasks.results import StageOutput
from tasks.reuse import existing_record, record_reference, reused_from_elsewhere
from tasks.tracking import (
    DATA_TAG,
    PIPELINE_KEY,
    STAGE_KEY,
    STAGE_TAG,
    TrackingContext,
    experiment_id,
    finish_run,
    flatten,
    get_client,
    log_params,
    open_run,
    run_url,
    set_tags,
)

IO_RETRIES = {
    "retries": 4,
    "retry_delay_seconds": exponential_backoff(backoff_factor=5),
    "retry_jitter_factor": 0.5,
}


def stage_tags(output: StageOutput) -> dict[str, str]:
    """Lineage tags of a stage run: stage name, data hash, the Prefect runs that produced it."""
    tags = {STAGE_TAG: output.stage, "franca.out_dir": str(Path(output.out_dir).resolve())}
    if output.data_sha256:
        tags[DATA_TAG] = output.data_sha256
    return {**tags, **output.prefect}


def open_stage_run(ctx: TrackingContext, stage: str, key: str, tags: dict[str, str]) -> str:
    """The MLflow run of this stage (found by key, or created), marked running."""
    run_id, _ = open_run(ctx, STAGE_KEY, key, stage, {STAGE_TAG: stage, **tags})
    return run_id


def metrics_cursor(out_dir: Path, run_id: str) -> Path:
    """Where the forwarding position of a run's step metrics is kept (beside the metrics)."""
    return out_dir / ".mlflow" / f"{run_id}.cursor.json"


def forward_metrics(ctx: TrackingContext, run_id: str, output: StageOutput) -> int:
    """Send the stage's step metrics not yet on the run; returns the points sent."""
    if not output.metrics_file:
        return 0
    source = Path(output.metrics_file)
    cursor = metrics_cursor(Path(output.out_dir), run_id)
    return MetricsForwarder(source, cursor, mlflow_sender(ctx, run_id)).pump()


def record_reuse(ctx: TrackingContext, output: StageOutput, original: Run) -> str:
    """A stage reused from another pipeline run's cache: shown under this parent, returns its run id."""
    lineage = {k: v for k, v in stage_tags(output).items() if not k.startswith("prefect.")}
    lineage.update(prefect_tags())  # the Prefect runs that reused it; the original keeps its own
    if output.prefect.get(FLOW_RUN_TAG):
        lineage["franca.cached_from_prefect_flow_run_id"] = output.prefect[FLOW_RUN_TAG]
    record_reference(ctx, output, original, lineage)
    run_id = original.info.run_id
    link_flow_run(run_id, run_url(ctx, experiment_id(get_client(ctx), ctx), run_id), output.stage)
    return run_id


@task(name="record-stage", **IO_RETRIES)  # type: ignore[call-overload]
def record_stage(output: StageOutput, ctx: TrackingContext) -> str:
    """Put a finished stage into MLflow (idempotent); returns the MLflow run id.

    A stage whose complete record was made under another parent run (reused from the cache by this
    pipeline run) keeps that record; this parent gets a cached reference to it (``tasks/reuse.py``).
    """
    original = existing_record(ctx, output.key)
    if original is not None and reused_from_elsewhere(ctx, original):
        return record_reuse(ctx, output, original)
    run_id = open_stage_run(ctx, output.stage, output.key, stage_tags(output))
    log_params(ctx, run_id, flatten(output.config))
    forward_metrics(ctx, run_id, output)
    if output.checkpoints:
        log_checkpoints(ctx, run_id, Path(output.out_dir))
    for folder, paths in output.artifacts.items():
        log_files(ctx, run_id, folder, [Path(p) for p in paths])
    client = get_client(ctx)
    for name, value in output.summary.items():
        client.log_metric(run_id, name, value)
    finish_run(ctx, run_id, "FINISHED")
    link_flow_run(run_id, run_url(ctx, experiment_id(client, ctx), run_id), output.stage)
    return run_id


@task(name="open-pipeline-run", **IO_RETRIES)  # type: ignore[call-overload]
def open_pipeline_run(ctx: TrackingContext, key: str, name: str, params: dict[str, str]) -> str:
    """The parent run of this pipeline (reopened on a rerun of the same parameters)."""
    tags = {k: v for k, v in prefect_tags().items() if k != TASK_RUN_TAG}
    run_id, created = open_run(ctx, PIPELINE_KEY, key, name, {STAGE_TAG: "pipeline", **tags})
    client = get_client(ctx)
    if not created:  # keep every attempt's flow run id, newest last
        previous = client.get_run(run_id).data.tags.get("prefect.flow_run_ids", "")
        ids = [i for i in previous.split(",") if i]
        tags["prefect.flow_run_ids"] = ",".join([*ids, tags.get("prefect.flow_run_id", "")])
    else:
        tags["prefect.flow_run_ids"] = tags.get("prefect.flow_run_id", "")
    set_tags(ctx, run_id, tags)
    log_params(ctx, run_id, params)
    link_flow_run(run_id, run_url(ctx, experiment_id(client, ctx), run_id), "pipeline")
    return run_id


@task(name="close-pipeline-run", **IO_RETRIES)  # type: ignore[call-overload]
def close_pipeline_run(
    ctx: TrackingContext,
    run_id: str,
    status: str,
    summary: dict[str, float],
    files: list[str],
    stage_runs: dict[str, str] | None = None,
) -> None:
    """Stage run ids (``franca.stage_run.<stage>`` tags), headline numbers and summary files on the
    parent run, then its final status. The tags matter when a stage came from the cache of an
    earlier pipeline run with other parameters: its run is then nested under that pipeline's run
    (``record_stage`` also gave this parent a ``<stage> (cached)`` child run pointing at it)."""
    client = get_client(ctx)
    set_tags(ctx, run_id, {f"franca.stage_run.{stage}": rid for stage, rid in (stage_runs or {}).items()})
    for name, value in summary.items():
        client.log_metric(run_id, name, value)
    log_files(ctx, run_id, "summary", [Path(f) for f in files])
    finish_run(ctx, run_id, status)


@task(name="register-backbone", **IO_RETRIES)  # type: ignore[call-overload]
def register(ctx: TrackingContext, output: StageOutput, stage_run_id: str) -> str:
    """Register the stage's backbone in the model registry; returns the model version."""
    if not output.backbone:
        raise ValueError(f"stage {output.stage} produced no backbone to register")
    tags = {STAGE_TAG: output.stage, STAGE_KEY: output.key}
    if output.data_sha256:
        tags[DATA_TAG] = output.data_sha256
    version = register_backbone(ctx, stage_run_id, Path(output.backbone), tags, f"from stage {output.stage}")
    set_tags(ctx, stage_run_id, {"franca.registered_model": f"{ctx.registered_model}/{version}"})
    return version
