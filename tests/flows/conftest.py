"""Flow tests run against Prefect's test harness (a temporary server and database, once per session)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, FlowRunFilterParentFlowRunId
from prefect.testing.utilities import prefect_test_harness

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")


@pytest.fixture(scope="session", autouse=True)
def prefect_harness() -> Iterator[None]:
    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def no_tracking_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("FRANCA_FAIL_STAGE", raising=False)


def _task_states(flow_run_id: UUID) -> dict[str, list[str]]:
    """Task name -> state names of every task run of a flow run (subflows not included)."""
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    states: dict[str, list[str]] = {}
    for run in runs:
        name = run.name.rsplit("-", 1)[0]
        states.setdefault(name, []).append(str(run.state.name) if run.state else "?")
    return states


def _subflow_ids(flow_run_id: UUID) -> list[UUID]:
    """Ids of the subflow runs of a flow run."""
    with get_client(sync_client=True) as client:
        parent = FlowRunFilterParentFlowRunId(any_=[flow_run_id])
        return [r.id for r in client.read_flow_runs(flow_run_filter=FlowRunFilter(parent_flow_run_id=parent))]


def _write_images(folder: Path, names: tuple[str, ...]) -> Path:
    """A few scikit-image photographs as PNG files."""
    from franca_core.data.sources import sample_images

    folder.mkdir(parents=True, exist_ok=True)
    images = sample_images(names)
    for index, name in enumerate(names):
        images[index].save(folder / f"{name}.png")
    return folder


@pytest.fixture
def task_states() -> Callable[[UUID], dict[str, list[str]]]:
    """Task name -> state names of a flow run's task runs."""
    return _task_states


@pytest.fixture
def subflow_ids() -> Callable[[UUID], list[UUID]]:
    return _subflow_ids


@pytest.fixture
def write_images() -> Callable[[Path, tuple[str, ...]], Path]:
    return _write_images
