"""MetricsForwarder / MlflowMetricSink: every point reaches MLflow once, whatever fails in between."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from mlflow.entities import Metric

from franca_core.tracking import JsonlSink
from franca_core.tracking import record_metrics as jsonl_record_metrics
from tasks.metrics import MetricsForwarder, MlflowMetricSink, record_metrics, to_metrics
from tasks.tracking import get_client

# MLflow's SQLite store emits SQLAlchemy deprecation warnings
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


class FlakySender:
    """Collects points; fails while ``down`` is set (as an unreachable server would)."""

    def __init__(self) -> None:
        self.points: list[Metric] = []
        self.down = False

    def __call__(self, points: list[Metric]) -> None:
        if self.down:
            raise ConnectionError("tracking server unreachable")
        self.points += points

    def seen(self) -> list[tuple[str, int, float]]:
        return sorted((p.key, p.step, p.value) for p in self.points)


def _expected(path: Path) -> list[tuple[str, int, float]]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return sorted((k, r["step"], v) for r in rows if "step" in r for k, v in jsonl_record_metrics(r).items())


def test_record_metrics_keeps_numbers_only() -> None:
    record = {"step": 3, "time": 1.7e9, "loss": 1.5, "ok": True, "name": "x", "parts": {"dino": 2}}
    assert record_metrics(record) == {"loss": 1.5, "parts/dino": 2.0}
    (point,) = to_metrics({"step": 3, "time": 1.7e9, "loss": 1.5}, fallback_ms=5)
    assert (point.key, point.step, point.timestamp) == ("loss", 3, 1_700_000_000_000)
    assert to_metrics({"params": {"a": 1}}, 0) == []


def test_jsonl_record_time_becomes_the_mlflow_timestamp(tmp_path: Path) -> None:
    path, sender = tmp_path / "metrics.jsonl", FlakySender()
    path.write_text('{"step": 1, "loss": 1.0}\n')  # written before records had a time: synthesised
    clock = iter([1_767_225_600.25, 1_767_225_601.5])
    sink = JsonlSink(path, clock=lambda: next(clock))
    sink.log_metrics(2, {"loss": 0.5, "lr": 0.1})
    sink.log_metrics(3, {"loss": 0.25})
    sink.close()
    assert MetricsForwarder(path, tmp_path / "cursor.json", sender).pump() == 4
    stamps = {(p.key, p.step): p.timestamp for p in sender.points}
    assert stamps[("loss", 2)] == stamps[("lr", 2)] == 1_767_225_600_250
    assert stamps[("loss", 3)] == 1_767_225_601_500
    assert abs(stamps[("loss", 1)] / 1000 - time.time()) < 600  # fallback: the forwarder's clock
    assert sender.seen() == _expected(path)  # "time" is a timestamp, never a metric


def test_outage_loses_nothing_and_duplicates_nothing(tmp_path: Path) -> None:
    path, sender = tmp_path / "metrics.jsonl", FlakySender()
    sink = JsonlSink(path)
    forwarder = MetricsForwarder(path, tmp_path / "cursor.json", sender)
    for step in range(1, 4):
        sink.log_metrics(step, {"loss": 1.0 / step})
    assert forwarder.pump() == 3
    sender.down = True
    for step in range(4, 8):
        sink.log_metrics(step, {"loss": 1.0 / step, "lr": 0.1})
    with pytest.raises(ConnectionError):
        forwarder.pump()
    sender.down = False
    # a new forwarder (a task retry, another process) continues from the saved cursor
    assert MetricsForwarder(path, tmp_path / "cursor.json", sender).pump() == 8
    assert sender.seen() == _expected(path)


def test_resumed_run_rewrites_file_without_duplicates(tmp_path: Path) -> None:
    path, sender = tmp_path / "metrics.jsonl", FlakySender()
    sink = JsonlSink(path)
    for step in range(1, 7):
        sink.log_metrics(step, {"loss": float(step)})
    sink.close()
    forwarder = MetricsForwarder(path, tmp_path / "cursor.json", sender)
    forwarder.pump()
    # killed after step 6, resumed from a checkpoint at step 4: steps 5.. are logged again
    sink = JsonlSink(path, resume_step=4)
    for step in range(5, 10):
        sink.log_metrics(step, {"loss": float(step)})
    sink.log_metrics(9, {"knn": 0.5})  # a second record for the same step
    forwarder.pump()
    assert sender.seen() == _expected(path)
    assert len(sender.points) == len(set(sender.seen()))


def test_torn_last_line_waits(tmp_path: Path) -> None:
    path, sender = tmp_path / "metrics.jsonl", FlakySender()
    path.write_text('{"step": 1, "loss": 1.0}\n{"step": 2, "lo')
    forwarder = MetricsForwarder(path, tmp_path / "cursor.json", sender)
    assert forwarder.pump() == 1
    with path.open("a") as handle:
        handle.write('ss": 2.0}\n')
    assert forwarder.pump() == 1
    assert sender.seen() == [("loss", 1, 1.0), ("loss", 2, 2.0)]


def test_mlflow_sink_spools_then_sends(tracking_ctx, tmp_path: Path) -> None:
    client = get_client(tracking_ctx)
    run = client.create_run(client.create_experiment("sink"))
    sink = MlflowMetricSink(tracking_ctx, run.info.run_id, tmp_path / "spool.jsonl")
    sink.log_params({"lr": 0.1})
    for step in range(3):
        sink.log_metrics(step, {"loss": float(step)})
    sink.close()
    history = client.get_metric_history(run.info.run_id, "loss")
    assert sorted((m.step, m.value) for m in history) == [(0, 0.0), (1, 1.0), (2, 2.0)]
    assert client.get_run(run.info.run_id).data.params == {"lr": "0.1"}
