"""One flow per stage: run the stage's task(s), then record the stage in MLflow.

Each flow takes the stage's typed spec (the deployment schema), the tracking settings, and the
MLflow parent run when called from the end-to-end flow. Work tasks are cached on their inputs, with
the cache records and results stored in the stage's own output folder (``.prefect/``): a rerun
skips a finished stage, a deleted output folder is recomputed, and a failed stage runs again and
resumes from its own files (training from its last good checkpoint).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, TypeVar

from prefect import Task, flow
from prefect.cache_policies import INPUTS, CachePolicy
from prefect.utilities.annotations import unmapped
from prefect_dask import DaskTaskRunner

from tasks.curate import fetch_shards, finish_curation, process_shard
from tasks.evaluate import evaluate
from tasks.rasa import rasa
from tasks.record import record_stage
from tasks.results import CurateOutput, EvalOutput, RasaOutput, Recorded, StageOutput, TrainOutput
from tasks.specs import CurateSpec, EvalSpec, RasaSpec, TrackingParams, TrainSpec
from tasks.tracking import TrackingContext, resolve_tracking
from tasks.train import train

T = TypeVar("T", bound=Task[Any, Any])
O = TypeVar("O", bound=StageOutput)


def cached(task: T, out_dir: str | Path, *not_keyed: str) -> T:
    """``task`` cached on its inputs (minus ``not_keyed``), records kept under ``<out_dir>/.prefect``."""
    store = Path(out_dir).resolve() / ".prefect"
    policy: CachePolicy = INPUTS
    for name in not_keyed:
        policy = policy - name
    return task.with_options(  # type: ignore[return-value]
        cache_policy=policy.configure(key_storage=store / "cache"),
        result_storage=store / "results",
        persist_result=True,
    )


def tracking_context(tracking: TrackingParams, out_dir: str, parent_run_id: str | None) -> TrackingContext:
    """Tracking for a stage writing ``out_dir``: the embedded store defaults to its sibling ``mlflow/``."""
    return resolve_tracking(tracking, Path(out_dir).parent / "mlflow").child(parent_run_id)


def record(output: O, ctx: TrackingContext) -> Recorded[O]:
    """Record a stage output (cached beside it, so a finished stage is not sent again)."""
    run_id = cached(record_stage, output.out_dir)(output, ctx)
    return Recorded(output=output, mlflow_run_id=run_id)


def dask_runner(spec: CurateSpec) -> DaskTaskRunner:
    """A runner on the given scheduler, or an in-process local cluster (threads)."""
    if spec.dask_address:
        return DaskTaskRunner(address=spec.dask_address)
    kwargs = {
        "n_workers": spec.dask_workers,
        "processes": False,
        "dashboard_address": "127.0.0.1:0",  # loopback only
        "worker_dashboard_address": "127.0.0.1:0",
    }
    return DaskTaskRunner(cluster_kwargs=kwargs)


@flow(name="curate", log_prints=True)
def curate_flow(
    spec: CurateSpec, tracking: TrackingParams | None = None, parent_run_id: str | None = None
) -> Recorded[CurateOutput]:
    """Download / list, check, deduplicate and NSFW-filter a source; one Dask task per shard."""
    logging.getLogger("distributed").setLevel(logging.WARNING)  # the cluster's start-up chatter
    ctx = tracking_context(tracking or TrackingParams(), spec.out_dir, parent_run_id)
    jobs = cached(fetch_shards, spec.out_dir)(spec)
    with dask_runner(spec) as runner:
        futures = runner.map(cached(process_shard, spec.out_dir), {"job": jobs, "spec": unmapped(spec)})
        done = [f.result() for f in futures]
        address = spec.dask_address or runner.client.scheduler.address  # dedup runs on the same cluster
        output = cached(finish_curation, spec.out_dir, "dask_address")(spec, done, address)
    return record(output, ctx)


@flow(name="pretrain", log_prints=True)
def pretrain_flow(
    spec: TrainSpec, tracking: TrackingParams | None = None, parent_run_id: str | None = None
) -> Recorded[TrainOutput]:
    """Pretrain in its own processes (torchrun or SLURM); resumes from the last good checkpoint."""
    ctx = tracking_context(tracking or TrackingParams(), spec.run_dir, parent_run_id)
    output = cached(train, spec.run_dir, "ctx")(spec, ctx)
    return record(output, ctx)


@flow(name="finetune-highres", log_prints=True)
def finetune_flow(
    spec: TrainSpec, tracking: TrackingParams | None = None, parent_run_id: str | None = None
) -> list[Recorded[TrainOutput]]:
    """High-resolution finetuning: stage 1 (364 px) then stage 2 (518 px), one MLflow run each.

    Returns every stage's record in order (the last holds the final backbone); the run directory's
    ``summary.json`` lists the stages too.
    """
    ctx = tracking_context(tracking or TrackingParams(), spec.run_dir, parent_run_id)
    stages = [spec.highres_stage] if spec.highres_stage else [1, 2]
    recorded: list[Recorded[TrainOutput]] = []
    for k in stages:
        stage_spec = spec.model_copy(update={"kind": "finetune-highres", "highres_stage": k})
        output = cached(train, spec.run_dir, "ctx")(stage_spec, ctx)
        recorded.append(record(output, ctx))
        wall = output.summary.get("wall_time_s", 0.0)
        print(f"{output.stage}: {output.steps} steps in {wall:.0f} s, backbone {output.backbone}")
    return recorded


@flow(name="rasa", log_prints=True)
def rasa_flow(
    spec: RasaSpec, tracking: TrackingParams | None = None, parent_run_id: str | None = None
) -> Recorded[RasaOutput]:
    """RASA post-training of a backbone; the folded backbone is the stage's output."""
    ctx = tracking_context(tracking or TrackingParams(), spec.out_dir, parent_run_id)
    return record(cached(rasa, spec.out_dir)(spec), ctx)


@flow(name="eval", log_prints=True)
def eval_flow(
    spec: EvalSpec, tracking: TrackingParams | None = None, parent_run_id: str | None = None
) -> Recorded[EvalOutput]:
    """Run an evaluation suite on a backbone."""
    ctx = tracking_context(tracking or TrackingParams(), spec.out_dir, parent_run_id)
    return record(cached(evaluate, spec.out_dir)(spec), ctx)
