"""The whole story through real servers: deploy, run end to end, fail a stage, rerun, browse.

A Prefect server, a process worker and an MLflow tracking server run on 127.0.0.1. The deployments
of ``prefect.yaml`` are created with ``prefect deploy --all``; ``end-to-end/default`` runs on the
embedded default with the tiny settings of ``deployments/end-to-end.tiny.json``, first with RASA
made to fail (job variables set ``FRANCA_FAIL_STAGE``), then again. The rerun must take curation and
pretraining from the cache, and MLflow must hold every stage's run, linked both ways to Prefect.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, FlowRunFilterParentFlowRunId
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment
from prefect.settings import PREFECT_API_URL, temporary_settings

from tasks.tracking import (
    DATA_TAG,
    PARENT_TAG,
    PIPELINE_KEY,
    STAGE_TAG,
    TrackingContext,
)
from tasks.tracking import (
    get_client as mlflow,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def stack(module_servers: Any) -> dict[str, str]:
    """MLflow + Prefect servers, the work pool, the deployments and a worker."""
    tracking = module_servers.mlflow().start()
    prefect = module_servers.prefect().start()
    tracking.wait()
    prefect.wait()
    env = {
        **prefect.env,
        "PREFECT_API_URL": prefect.url,
        "MLFLOW_TRACKING_URI": tracking.url,
        "PWD": str(REPO),
    }
    prefect_cli = str(Path(prefect.argv[0]))
    for argv in (
        ["work-pool", "create", "franca-local", "--type", "process"],
        ["--no-prompt", "deploy", "--all"],
    ):
        done = subprocess.run([prefect_cli, *argv], env=env, cwd=REPO, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
    module_servers.worker(
        "franca-local", {"PREFECT_API_URL": prefect.url, "MLFLOW_TRACKING_URI": tracking.url}
    ).start()
    return {"api": prefect.url, "mlflow": tracking.url}


def _params(out: Path) -> dict[str, Any]:
    params = json.loads((REPO / "deployments" / "end-to-end.tiny.json").read_text())
    params["params"]["out_dir"] = str(out)
    return params


def _task_states(flow_run_id: UUID) -> dict[str, list[str]]:
    """Task name -> state names of the tasks in a flow run's subflows (the stages)."""
    with get_client(sync_client=True) as client:
        children = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[flow_run_id]))
        )
        ids = [c.id for c in children]  # the parent's own task runs include one stand-in per subflow
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids)), limit=200)
    states: dict[str, list[str]] = {}
    for run in runs:
        states.setdefault(run.name.rsplit("-", 1)[0], []).append(str(run.state.name) if run.state else "?")
    return states


def _run(name: str, parameters: dict[str, Any], job_variables: dict[str, Any]) -> FlowRun:
    """Run a deployment and wait for its end (the worker picks it up)."""
    run = run_deployment(name, parameters=parameters, job_variables=job_variables, timeout=1200)
    assert isinstance(run, FlowRun)
    return run


def _mtimes(out: Path) -> dict[str, float]:
    files = ["curate/manifest.parquet", "pretrain/result.json", "pretrain/checkpoints/model_0000004.pt"]
    return {f: (out / f).stat().st_mtime for f in files}


@pytest.fixture(scope="module")
def two_runs(stack: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Run the end-to-end deployment with RASA made to fail, then again; collect what to check."""
    out = tmp_path_factory.mktemp("e2e") / "pipeline"
    with temporary_settings({PREFECT_API_URL: stack["api"]}):
        env = {
            "FRANCA_FAIL_STAGE": "rasa",
            "NO_ALBUMENTATIONS_UPDATE": "1",
            "MLFLOW_TRACKING_URI": stack["mlflow"],
        }
        first = _run("end-to-end/default", _params(out), {"env": env})
        first_states = _task_states(first.id)
        before = _mtimes(out) if first.state and first.state.is_failed() else {}
        second = _run("end-to-end/default", _params(out), {})
        with get_client(sync_client=True) as client:
            flow_runs = {str(r.id): r for r in client.read_flow_runs(limit=100)}
        return {
            "first": first,
            "second": second,
            "first_states": first_states,
            "second_states": _task_states(second.id),
            "before": before,
            "after": _mtimes(out),
            "flow_runs": flow_runs,
        }


def test_failed_stage_reruns_and_finished_stages_do_not(two_runs: dict[str, Any]) -> None:
    assert two_runs["first"].state.is_failed(), two_runs["first"].state
    assert two_runs["first_states"]["rasa"] == ["Failed"]
    assert two_runs["second"].state.is_completed(), two_runs["second"].state
    states = two_runs["second_states"]
    for name in ("fetch-shards", "process-shard", "finish-curation", "train"):
        assert set(states[name]) == {"Cached"}, (name, states)
    assert states["rasa"] == ["Completed"] and states["evaluate"] == ["Completed"]
    assert two_runs["after"] == two_runs["before"]  # finished stages untouched on disk


def test_mlflow_holds_every_stage_linked_to_prefect(stack: dict[str, str], two_runs: dict[str, Any]) -> None:
    """One parent, one child per stage, artifacts, lineage tags both ways, a registered backbone."""
    ctx = TrackingContext(uri=stack["mlflow"])
    client = mlflow(ctx)
    experiment = client.get_experiment_by_name(ctx.experiment)
    assert experiment is not None
    exp = experiment.experiment_id
    (parent,) = client.search_runs([exp], filter_string=f"tags.`{STAGE_TAG}` = 'pipeline'")
    assert parent.info.status == "FINISHED" and PIPELINE_KEY in parent.data.tags
    ids = {str(two_runs["first"].id), str(two_runs["second"].id)}
    assert set(parent.data.tags["prefect.flow_run_ids"].split(",")) == ids
    children = client.search_runs([exp], filter_string=f"tags.`{PARENT_TAG}` = '{parent.info.run_id}'")
    by_stage = {r.data.tags[STAGE_TAG]: r for r in children}
    assert sorted(by_stage) == ["curate", "eval", "pretrain", "rasa"] and len(children) == 4
    assert all(r.info.status == "FINISHED" for r in children)
    data_hash = by_stage["curate"].data.tags[DATA_TAG]
    assert all(r.data.tags[DATA_TAG] == data_hash for r in children)
    expected = {
        "curate": ("data", "manifest.parquet"),
        "pretrain": ("checkpoints", "model_0000004.pt"),
        "rasa": ("rasa", "report.json"),
        "eval": ("eval", "results.json"),
    }
    for stage, (folder, name) in expected.items():
        run = by_stage[stage]
        assert name in {Path(f.path).name for f in client.list_artifacts(run.info.run_id, folder)}, stage
        flow_run = two_runs["flow_runs"][run.data.tags["prefect.flow_run_id"]]  # MLflow -> Prefect
        assert f"mlflow:{run.info.run_id}" in flow_run.tags  # Prefect -> MLflow
    assert len(client.get_metric_history(by_stage["pretrain"].info.run_id, "loss")) == 4
    versions = client.search_model_versions(f"name = '{ctx.registered_model}'")
    assert [v.run_id for v in versions] == [by_stage["rasa"].info.run_id]


def test_mlflow_ui_screenshot_shows_checkpoints(
    stack: dict[str, str], two_runs: dict[str, Any], tmp_path: Path
) -> None:
    """The browsing story as a person sees it: headless Chromium on the pretraining run's checkpoints."""
    if not (shutil.which("chromium") or shutil.which("chromium-browser")):
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    png = tmp_path / "mlflow_checkpoints.png"
    script = REPO / "scripts" / "mlflow_screenshot.sh"
    done = subprocess.run(
        [str(script), "--tracking-uri", stack["mlflow"], "--out", str(png)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "/artifacts/checkpoints" in done.stdout and png.stat().st_size > 20_000
