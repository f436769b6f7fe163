"""Lineage between Prefect and MLflow, both ways.

MLflow side: every run carries the Prefect flow run, task run, flow and deployment that produced
it (``prefect.*`` tags, plus the flow run's UI address). Prefect side: the flow run gets a tag
``mlflow:<run id>`` and a link (or markdown) artifact pointing at the MLflow run.
"""

from __future__ import annotations

import logging

from prefect.artifacts import create_link_artifact, create_markdown_artifact
from prefect.client.orchestration import get_client
from prefect.runtime import deployment, flow_run, task_run

log = logging.getLogger(__name__)

FLOW_RUN_TAG = "prefect.flow_run_id"
TASK_RUN_TAG = "prefect.task_run_id"
MLFLOW_FLOW_RUN_TAG = "mlflow:"  # prefix of the Prefect flow-run tag naming an MLflow run


def prefect_tags() -> dict[str, str]:
    """Identity of the current Prefect flow run (and task run, inside a task), as MLflow tags."""
    tags = {
        FLOW_RUN_TAG: str(flow_run.id or ""),
        "prefect.flow_run_name": str(flow_run.name or ""),
        "prefect.flow_name": str(flow_run.flow_name or ""),
        "prefect.root_flow_run_id": str(flow_run.root_flow_run_id or ""),
    }
    if task_run.id:
        tags[TASK_RUN_TAG] = str(task_run.id)
    if deployment.id:
        tags["prefect.deployment_id"] = str(deployment.id)
        tags["prefect.deployment_name"] = str(deployment.name or "")
    ui = flow_run.ui_url
    if ui:
        tags["prefect.flow_run_url"] = str(ui)
    return {k: v for k, v in tags.items() if v}


def _artifact_key(stage: str) -> str:
    """Prefect artifact keys: lowercase letters, digits and dashes."""
    return "mlflow-" + "".join(c if c.isalnum() else "-" for c in stage.lower())


def link_flow_run(mlflow_run_id: str, url: str, stage: str) -> None:
    """Tag the current flow run with the MLflow run and attach a link to it (best effort)."""
    run_id = flow_run.id
    if not run_id:
        return
    try:
        with get_client(sync_client=True) as client:
            current = client.read_flow_run(run_id)
            tag = f"{MLFLOW_FLOW_RUN_TAG}{mlflow_run_id}"
            if tag not in current.tags:
                client.update_flow_run(run_id, tags=[*current.tags, tag])
        text = f"MLflow run of {stage}"
        if url.startswith(("http://", "https://")):
            create_link_artifact(link=url, link_text=text, key=_artifact_key(stage), description=text)
        else:
            md = f"**{text}**: `{mlflow_run_id}`\n\nstore: `{url}`\n\nopen with `mlflow ui` (see the README)."
            create_markdown_artifact(markdown=md, key=_artifact_key(stage), description=text)
    except Exception as err:  # lineage must never fail a stage
        log.warning("could not link flow run %s to MLflow run %s: %s", run_id, mlflow_run_id, err)
