"""The MLflow server goes away during a training stage and comes back: no metric point is lost."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from franca_core.tracking import record_metrics as jsonl_record_metrics
from tasks.record import record_stage
from tasks.specs import TrainSpec
from tasks.tracking import STAGE_KEY, TrackingContext, get_client
from tasks.train import train

pytestmark = [pytest.mark.integration, pytest.mark.slow]
TINY = [
    "data.batch_size_per_rank=4",
    "crops.global_size=56",
    "crops.local_size=28",
    "crops.n_local=2",
    "runtime.checkpoint_every=5",
    "runtime.log_every=1",
]


def _steps(path: Path) -> int:
    if not path.exists():
        return 0
    return sum(1 for line in path.read_text().splitlines() if line.startswith('{"step"'))


def _wait(predicate: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def _file_points(path: Path) -> set[tuple[str, int, float]]:
    points = set()
    for line in path.read_text().splitlines():
        record = json.loads(line)
        if "step" in record:
            points |= {(k, record["step"], v) for k, v in jsonl_record_metrics(record).items()}
    return points


def test_metrics_survive_a_tracking_server_outage(tmp_path: Path, servers: Any) -> None:
    server = servers.mlflow().start().wait()
    ctx = TrackingContext(uri=server.url, experiment="outage")
    # 40 steps: enough that training is still going when the server stops, even on a loaded machine.
    spec = TrainSpec(run_dir=str(tmp_path / "run"), max_steps=40, overrides=TINY)
    metrics = tmp_path / "run" / "metrics.jsonl"
    result: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: result.update(output=train.fn(spec, ctx)))
    thread.start()

    def run_has_points() -> bool:
        experiment = get_client(ctx).get_experiment_by_name("outage")
        runs = get_client(ctx).search_runs([experiment.experiment_id]) if experiment else []
        return bool(runs) and bool(runs[0].data.metrics)

    _wait(lambda: _steps(metrics) >= 1 and run_has_points(), 600)
    server.stop()  # the tracking server is gone while training goes on
    down_at = _steps(metrics)
    _wait(lambda: _steps(metrics) >= down_at + 2 or not thread.is_alive(), 600)
    logged_while_down = _steps(metrics) - down_at
    server.start().wait()
    thread.join(timeout=900)
    assert "output" in result, "the training task failed"
    assert logged_while_down >= 1

    run_id = record_stage.fn(result["output"], ctx)
    client = get_client(ctx)
    assert client.get_run(run_id).data.tags[STAGE_KEY] == result["output"].key
    expected = _file_points(metrics)
    keys = {k for k, _, _ in expected}
    tracked = {(k, m.step, m.value) for k in keys for m in client.get_metric_history(run_id, k)}
    assert tracked == expected
    assert len(client.get_metric_history(run_id, "loss")) == 40  # each step once
