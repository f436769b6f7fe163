"""Log a finished Matryoshka study to MLflow: settings as params, accuracies as metrics, outputs as artifacts.

Uses the pipeline's tracking helpers (``tasks.tracking``), so ``--mlflow`` without a URI writes to the
same embedded SQLite store layout as the flows (``OUT/mlflow``), and ``$MLFLOW_TRACKING_URI`` or an
explicit URI points at a server. Metric names: ``knn_<objective>_m<m>`` (mean over seeds, %) and
``pca_<objective>_m<m>``; ``random init`` is logged as ``random_init``.
"""

from __future__ import annotations

from pathlib import Path

from matryoshka_report import StudyResults

from tasks.specs import TrackingParams
from tasks.tracking import experiment_id, get_client, resolve_tracking

OUTPUT_FILES = ("results.json", "results.md", "matryoshka.png")


def study_metrics(results: StudyResults) -> dict[str, float]:
    """Mean k-NN top-1 (%) per objective and slice level, sliced and after PCA."""
    metrics = {}
    for summary in results.summaries:
        name = summary.objective.replace(" ", "_")
        for level in summary.levels:
            metrics[f"knn_{name}_m{level.dim}"] = 100 * level.slice_top1.mean
            metrics[f"pca_{name}_m{level.dim}"] = 100 * level.pca_top1.mean
    return metrics


def log_study(results: StudyResults, out: Path, uri: str | None, experiment: str) -> str:
    """One MLflow run holding the study; returns its run id."""
    ctx = resolve_tracking(TrackingParams(tracking_uri=uri, experiment=experiment), out / "mlflow")
    client = get_client(ctx)
    run = client.create_run(
        experiment_id(client, ctx),
        run_name=f"matryoshka {results.data} {results.steps} steps",
        tags={"franca.study": "matryoshka-ablation"},
    )
    run_id = run.info.run_id
    objectives = [s.objective for s in results.summaries]
    params = {
        "data": results.data,
        "config": results.config,
        "embed_dim": results.embed_dim,
        "steps": results.steps,
        "device": results.device,
        "knn_k": results.knn_k,
        "objectives": ",".join(objectives),
        "seeds": ",".join(map(str, results.summaries[0].seeds)),
        "overrides": " ".join(results.overrides) or "-",
    }
    for key, value in params.items():
        client.log_param(run_id, key, str(value))
    for key, value in study_metrics(results).items():
        client.log_metric(run_id, key, value)
    for summary in results.summaries:
        if summary.head_params is not None:
            client.log_metric(run_id, f"head_params_{summary.objective}", summary.head_params.total)
    for name in OUTPUT_FILES:
        client.log_artifact(run_id, str(out / name))
    client.set_terminated(run_id)
    return run_id
