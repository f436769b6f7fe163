"""Fixtures of the task tests: an embedded MLflow store per test, migrated once per session."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tasks.specs import TrackingParams
from tasks.tracking import TrackingContext, get_client, resolve_tracking


@pytest.fixture(scope="session")
def mlflow_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty, migrated mlflow.db (creating the schema takes seconds; copying it does not)."""
    store = tmp_path_factory.mktemp("mlflow-template")
    ctx = resolve_tracking(TrackingParams(tracking_uri=f"sqlite:///{store / 'mlflow.db'}"), store)
    get_client(ctx).search_experiments()
    return store / "mlflow.db"


@pytest.fixture
def tracking_ctx(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mlflow_template: Path) -> TrackingContext:
    """SQLite + a local artifact folder under tmp_path (no server)."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    (tmp_path / "mlflow").mkdir()
    shutil.copy(mlflow_template, tmp_path / "mlflow" / "mlflow.db")
    return resolve_tracking(TrackingParams(), tmp_path / "mlflow")
