"""A stage reused from the cache of another pipeline run, shown under the pipeline run that reused it.

A stage's MLflow run is made by the pipeline run that did the work, and stays nested under that
run's parent. When a later pipeline run (other parameters, so another parent run) gets the stage
from Prefect's cache, ``record_stage`` leaves that run where it is and instead gives the new parent:

- a small child run named ``<stage> (cached)``, tagged ``franca.cached=true``, with the original run
  id, its artifact location and its parent (``franca.cached_from_*``), the stage's lineage tags and
  headline numbers, and a note linking to the original run: it has no artifacts of its own;
- a tag ``franca.cached_stage.<stage>`` naming the original run.

The reference run carries no ``franca.stage`` / ``franca.stage_key`` tag, so lookups of a stage's
record (``find_run``, the screenshot script) still find the original. It is found again by its own
key (stage key + parent run), so retries and reruns reuse it.
"""

from __future__ import annotations

from mlflow.entities import Metric, Run

from tasks.results import StageOutput
from tasks.tracking import (
    PARENT_TAG,
    STAGE_KEY,
    STAGE_TAG,
    TrackingContext,
    experiment_id,
    find_run,
    finish_run,
    get_client,
    open_run,
    set_tags,
)

CACHED_TAG = "franca.cached"
CACHED_STAGE_TAG = "franca.cached_stage"
CACHED_FROM_RUN = "franca.cached_from_run_id"
CACHED_FROM_ARTIFACTS = "franca.cached_from_artifact_uri"
CACHED_FROM_PARENT = "franca.cached_from_parent_run_id"
REFERENCE_KEY = "franca.cached_reference_key"
PARENT_CACHED_PREFIX = "franca.cached_stage."  # + stage name, on the parent run
NOTE_TAG = "mlflow.note.content"


def existing_record(ctx: TrackingContext, key: str) -> Run | None:
    """The stage's MLflow run (by stage key), if a previous attempt made one."""
    client = get_client(ctx)
    run_id = find_run(client, experiment_id(client, ctx), STAGE_KEY, key)
    return client.get_run(run_id) if run_id else None


def reused_from_elsewhere(ctx: TrackingContext, run: Run) -> bool:
    """Whether ``run`` is a complete record made under another parent than the current one."""
    if not ctx.parent_run_id:
        return False
    return run.info.status == "FINISHED" and run.data.tags.get(PARENT_TAG) != ctx.parent_run_id


def _reference_tags(output: StageOutput, original: Run, lineage: dict[str, str]) -> dict[str, str]:
    info = original.info
    tags = {
        CACHED_TAG: "true",
        CACHED_STAGE_TAG: output.stage,
        CACHED_FROM_RUN: info.run_id,
        CACHED_FROM_ARTIFACTS: str(info.artifact_uri),
        **lineage,
    }
    earlier_parent = original.data.tags.get(PARENT_TAG)
    if earlier_parent:
        tags[CACHED_FROM_PARENT] = earlier_parent
    where = f" (pipeline run `{earlier_parent}`)" if earlier_parent else ""
    tags[NOTE_TAG] = (
        f"**{output.stage}** was reused from the cache: its record, checkpoints and artifacts are in run "
        f"`{info.run_id}`{where}, artifacts at `{info.artifact_uri}`."
    )
    return tags


def record_reference(
    ctx: TrackingContext, output: StageOutput, original: Run, lineage: dict[str, str]
) -> str:
    """Show a reused stage under ``ctx.parent_run_id``: a cached child run and a parent tag (idempotent).

    ``lineage``: the stage's lineage tags for this pipeline run (data hash, Prefect runs); the stage
    key and name are left out. Returns the reference run's id.
    """
    if not ctx.parent_run_id:
        raise ValueError("a reference run needs a parent run")
    lineage = {k: v for k, v in lineage.items() if k not in (STAGE_KEY, STAGE_TAG)}
    tags = _reference_tags(output, original, lineage)
    key = f"{output.key}@{ctx.parent_run_id}"
    ref_id, _ = open_run(ctx, REFERENCE_KEY, key, f"{output.stage} (cached)", tags)
    client = get_client(ctx)
    logged = client.get_run(ref_id).data.metrics
    stamp = int(original.info.end_time or original.info.start_time or 0)
    points = [Metric(k, v, stamp, 0) for k, v in output.summary.items() if k not in logged]
    if points:
        client.log_batch(ref_id, metrics=points, synchronous=True)
    finish_run(ctx, ref_id, "FINISHED")
    set_tags(ctx, ctx.parent_run_id, {f"{PARENT_CACHED_PREFIX}{output.stage}": original.info.run_id})
    return ref_id
