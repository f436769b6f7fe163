"""The end-to-end flow: curate -> pretrain -> finetune-highres -> RASA -> eval, one MLflow parent run.

Each stage is its own subflow (so it can also be deployed and rerun alone) and its own MLflow child
run. The parent run is found again by the pipeline's key (its parameters and output folder), so a
rerun after a failure reopens the same parent: finished stages come back from the cache and keep
their child runs, the failed stage resumes, and the parent lists every attempt's flow run id.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prefect import flow

from flows.params import PipelineParams
from flows.stages import curate_flow, eval_flow, finetune_flow, pretrain_flow, rasa_flow, tracking_context
from tasks.record import close_pipeline_run, open_pipeline_run, register
from tasks.results import Recorded, Spec
from tasks.specs import TrackingParams
from tasks.tracking import TrackingContext, flatten


class PipelineResult(Spec):
    """What the end-to-end flow returns: the runs, the backbone, and the table of numbers."""

    out_dir: str
    mlflow_parent_run_id: str
    stage_runs: dict[str, str]
    backbone: str
    registered_model: str
    data_manifest_sha256: str
    table: dict[str, dict[str, float]]
    tracking_uri: str


def results_table(stages: list[Recorded[Any]]) -> dict[str, dict[str, float]]:
    """stage -> headline numbers (evaluation results per evaluator)."""
    table: dict[str, dict[str, float]] = {}
    for rec in stages:
        out = rec.output
        results = getattr(out, "results", None)
        if results:
            table.update({f"eval/{k}": v for k, v in results.items()})
        else:
            table[out.stage] = dict(out.summary)
    return table


def _stages(params: PipelineParams, tracking: TrackingParams, parent: str) -> list[Recorded[Any]]:
    """Run the stage subflows in order, each reading the previous one's outputs."""
    data = curate_flow(params.curate_spec(), tracking, parent)
    ref = data.output.data
    done: list[Recorded[Any]] = [data, pretrain_flow(params.pretrain_spec(ref), tracking, parent)]
    if params.finetune.enabled:  # one record per high-resolution stage
        done += finetune_flow(params.finetune_spec(ref, done[-1].output.out_dir), tracking, parent)
    backbone = done[-1].output.backbone
    if backbone is None:
        raise RuntimeError(f"stage {done[-1].output.stage} exported no backbone")
    if params.rasa.enabled:
        done.append(rasa_flow(params.rasa_spec(backbone, ref), tracking, parent))
        backbone = done[-1].output.backbone
    done.append(eval_flow(params.eval_spec(backbone, ref), tracking, parent))
    return done


def _finish(
    params: PipelineParams, ctx: TrackingContext, parent: str, done: list[Recorded[Any]]
) -> PipelineResult:
    """Register the final backbone, write the results table, close the parent run."""
    producer = next(r for r in reversed(done) if r.output.backbone)
    version = register(ctx, producer.output, producer.mlflow_run_id)
    result = PipelineResult(
        out_dir=params.out_dir,
        mlflow_parent_run_id=parent,
        stage_runs={r.output.stage: r.mlflow_run_id for r in done},
        backbone=str(producer.output.backbone),
        registered_model=f"{ctx.registered_model}/{version}",
        data_manifest_sha256=done[0].output.data_sha256 or "",
        table=results_table(done),
        tracking_uri=ctx.uri,
    )
    path = Path(params.out_dir) / "pipeline_result.json"
    path.write_text(json.dumps(result.model_dump(mode="json"), indent=2) + "\n")
    summary = {f"{stage}/{k}": v for stage, row in result.table.items() for k, v in row.items()}
    close_pipeline_run(ctx, parent, "FINISHED", summary, [str(path)], result.stage_runs)
    return result


def _mark_failed(ctx: TrackingContext, parent: str) -> None:
    """Best effort: the stage error is what matters, not a tracking server that is also away."""
    try:
        close_pipeline_run.with_options(retries=0)(ctx, parent, "FAILED", {}, [])
    except Exception as err:
        print(f"could not mark MLflow run {parent} failed: {err}")


@flow(name="end-to-end", log_prints=True)
def end_to_end(params: PipelineParams | None = None) -> PipelineResult:
    """Curate, pretrain, (finetune), RASA and evaluate; every stage cached, resumable and tracked."""
    params = params or PipelineParams()
    tracking = params.tracking.model_copy(
        update={"store_dir": params.tracking.store_dir or str(Path(params.out_dir) / "mlflow")}
    )
    ctx = tracking_context(tracking, params.path("pipeline"), None)
    name = f"pipeline-{Path(params.out_dir).name}"
    parent = open_pipeline_run(ctx, params.key(), name, flatten(params.model_dump(mode="json")))
    try:
        done = _stages(params, tracking, parent)
    except BaseException:
        _mark_failed(ctx, parent)
        raise
    return _finish(params, ctx, parent, done)
