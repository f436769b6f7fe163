"""MLflow plumbing shared by the tasks: where the store is, and runs found again by a key.

Every run the pipeline writes is identified by a key tag (``franca.pipeline_key`` for the parent
run, ``franca.stage_key`` for a stage's child run), so any tracking call can be retried or made
again after a crash: "open the run of this stage" finds the run a previous attempt created and
reopens it instead of starting a second one. Without a tracking URI the store is embedded: SQLite
plus a local artifact folder under the output directory (what ``franca demo`` uses).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import Param, RunTag
from mlflow.exceptions import MlflowException

from tasks.specs import Spec, TrackingParams

log = logging.getLogger(__name__)

STAGE_KEY = "franca.stage_key"
PIPELINE_KEY = "franca.pipeline_key"
STAGE_TAG = "franca.stage"
DATA_TAG = "franca.data_manifest_sha256"
PARENT_TAG = "mlflow.parentRunId"
MAX_PARAM_CHARS = 6000  # MLflow 3's limit on a param value
BATCH = 100  # params or tags per log_batch call


class TrackingContext(Spec):
    """Resolved tracking settings handed to every task (a URI, never a client object)."""

    uri: str
    artifact_root: str | None = None
    experiment: str = "franca"
    parent_run_id: str | None = None
    max_artifact_mb: float | None = None
    registered_model: str = "franca-backbone"

    def child(self, parent_run_id: str | None) -> TrackingContext:
        """The same store, with runs nested under ``parent_run_id``."""
        return self.model_copy(update={"parent_run_id": parent_run_id})


def client_env_defaults() -> None:
    """Fail an unreachable server in seconds, not minutes; our own loops retry (user settings win)."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def resolve_tracking(params: TrackingParams, default_store: Path) -> TrackingContext:
    """A concrete URI: the parameter, else ``$MLFLOW_TRACKING_URI``, else SQLite under the store dir."""
    uri = params.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    artifact_root = None
    if not uri:
        store = Path(params.store_dir or default_store).resolve()
        store.mkdir(parents=True, exist_ok=True)
        uri = f"sqlite:///{store / 'mlflow.db'}"
        artifact_root = (store / "artifacts").as_uri()
    return TrackingContext(
        uri=uri,
        artifact_root=artifact_root,
        experiment=params.experiment,
        max_artifact_mb=params.max_artifact_mb,
        registered_model=params.registered_model,
    )


def get_client(ctx: TrackingContext) -> MlflowClient:
    """A client on the context's store (cheap; create one per call site, never pass it around)."""
    client_env_defaults()
    return MlflowClient(tracking_uri=ctx.uri, registry_uri=ctx.uri)


def experiment_id(client: MlflowClient, ctx: TrackingContext) -> str:
    """The experiment's id, created on first use (with the embedded artifact folder if any)."""
    found = client.get_experiment_by_name(ctx.experiment)
    if found is not None:
        return str(found.experiment_id)
    try:
        return str(client.create_experiment(ctx.experiment, artifact_location=ctx.artifact_root))
    except MlflowException:  # created concurrently by another task
        found = client.get_experiment_by_name(ctx.experiment)
        if found is None:
            raise
        return str(found.experiment_id)


def find_run(client: MlflowClient, exp_id: str, key_tag: str, key: str) -> str | None:
    """The newest run whose ``key_tag`` equals ``key``, or None."""
    runs = client.search_runs(
        [exp_id], filter_string=f"tags.`{key_tag}` = '{key}'", max_results=1, order_by=["start_time DESC"]
    )
    return runs[0].info.run_id if runs else None


def open_run(
    ctx: TrackingContext, key_tag: str, key: str, run_name: str, tags: Mapping[str, str]
) -> tuple[str, bool]:
    """Find the run with this key and mark it running again, or create it. Returns (run id, created)."""
    client = get_client(ctx)
    exp_id = experiment_id(client, ctx)
    all_tags = {key_tag: key, **tags}
    if ctx.parent_run_id:
        all_tags[PARENT_TAG] = ctx.parent_run_id
    run_id = find_run(client, exp_id, key_tag, key)
    if run_id is None:
        run = client.create_run(exp_id, tags=all_tags, run_name=run_name)
        return run.info.run_id, True
    client.update_run(run_id, status="RUNNING")
    set_tags(ctx, run_id, all_tags)
    return run_id, False


def finish_run(ctx: TrackingContext, run_id: str, status: str = "FINISHED") -> None:
    """Close a run with FINISHED, FAILED or KILLED."""
    get_client(ctx).set_terminated(run_id, status=status)


def set_tags(ctx: TrackingContext, run_id: str, tags: Mapping[str, str]) -> None:
    """Set (or overwrite) tags, in batches."""
    client = get_client(ctx)
    items = [RunTag(k, str(v)) for k, v in tags.items()]
    for start in range(0, len(items), BATCH):
        client.log_batch(run_id, tags=items[start : start + BATCH])


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """``{"optim": {"lr": 1}}`` -> ``{"optim.lr": "1"}``; lists and scalars become strings."""
    flat: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = str(value)[:MAX_PARAM_CHARS]
    return flat


def log_params(ctx: TrackingContext, run_id: str, params: Mapping[str, str]) -> None:
    """Log params not yet on the run; a param already there with another value is left as is."""
    client = get_client(ctx)
    existing = client.get_run(run_id).data.params
    changed = sorted(k for k, v in params.items() if k in existing and existing[k] != v)
    if changed:
        log.warning("run %s: params already set with other values, kept: %s", run_id, changed[:10])
    new = [Param(k, v) for k, v in params.items() if k not in existing]
    for start in range(0, len(new), BATCH):
        client.log_batch(run_id, params=new[start : start + BATCH])


def run_url(ctx: TrackingContext, exp_id: str, run_id: str) -> str:
    """Where a person opens the run: the server's UI, or the run id for an embedded store."""
    if ctx.uri.startswith(("http://", "https://")):
        return f"{ctx.uri.rstrip('/')}/#/experiments/{exp_id}/runs/{run_id}"
    return f"mlflow-run:{run_id} (store {ctx.uri})"
