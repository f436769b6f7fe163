"""Step metrics to MLflow without losing a point when the tracking server goes away.

The training process writes ``metrics.jsonl`` (one JSON object per logged step) and never talks to
MLflow. ``MetricsForwarder`` reads that file from a byte offset kept in a small cursor file and
sends complete lines with ``log_batch``; the offset moves only after the server accepted them, so an
unreachable server just means the points wait on disk until the next attempt (the file is the
buffer). Timestamps come from the records (``JsonlSink`` writes a wall-clock ``time`` on each), or, for
files written before it did, are fixed once per line, so a batch sent twice (a reply lost after the
server stored it) carries identical points.

``MlflowMetricSink`` is the same mechanism behind the ``MetricSink`` interface of
``franca_core.tracking`` (``log(step, metrics)`` / ``close()``): it appends to a local spool file
first, then forwards.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mlflow.entities import Metric

from franca_core.tracking import TIME_KEY
from tasks.tracking import TrackingContext, get_client, log_params

log = logging.getLogger(__name__)

MAX_METRICS_PER_BATCH = 1000
TIME_KEYS = (TIME_KEY, "timestamp", "wall_time")
SKIP_KEYS = frozenset({"step", "epoch_time", *TIME_KEYS})
Sender = Callable[[list[Metric]], None]


def record_metrics(record: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """Numeric fields of a record (nested dicts as ``a/b``); step, time and non-numbers left out."""
    out: dict[str, float] = {}
    for key, value in record.items():
        if not prefix and key in SKIP_KEYS:
            continue
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(record_metrics(value, f"{name}/"))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            out[name] = float(value)
    return out


def record_timestamp_ms(record: Mapping[str, Any], fallback_ms: int) -> int:
    """The record's own wall-clock time (epoch seconds or ms) in ms, else ``fallback_ms``."""
    for key in TIME_KEYS:
        value = record.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            if value > 1e12:
                return int(value)
            if value > 1e9:
                return int(value * 1000)
    return fallback_ms


def to_metrics(record: Mapping[str, Any], fallback_ms: int) -> list[Metric]:
    """One JSONL record as MLflow metric points (empty when it has no integer step)."""
    step = record.get("step")
    if not isinstance(step, int) or isinstance(step, bool):
        return []
    ts = record_timestamp_ms(record, fallback_ms)
    return [Metric(key, value, ts, step) for key, value in record_metrics(record).items()]


class MetricsForwarder:
    """Sends new points of a JSONL file; its cursor advances only after the server accepted them.

    The cursor holds the file's inode, a byte offset and the last step sent. A training run that
    resumes rewrites the file (steps after its checkpoint are dropped, then logged again), which
    gives it a new inode: the forwarder then reads from the start and skips steps already sent, so
    the MLflow history has every step exactly once.
    """

    def __init__(self, source: Path, cursor: Path, send: Sender) -> None:
        self.source = source
        self.cursor = cursor
        self.send = send
        self._state = self._load()

    def _load(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "inode": -1,
            "offset": 0,
            "line": 0,
            "last_step": -1,
            "last_keys": [],  # keys already sent at last_step (a step may span several lines)
            "base_ms": int(time.time() * 1000),
        }
        if self.cursor.exists():
            state.update(json.loads(self.cursor.read_text()))
        return state

    def _save(self) -> None:
        self.cursor.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.cursor.with_name(f".{self.cursor.name}.tmp")
        tmp.write_text(json.dumps(self._state))
        os.replace(tmp, self.cursor)

    @property
    def last_step(self) -> int:
        return int(self._state["last_step"])

    def _rewind_if_rewritten(self) -> None:
        stat = self.source.stat()
        if stat.st_ino != self._state["inode"] or stat.st_size < self._state["offset"]:
            self._state.update(inode=stat.st_ino, offset=0, line=0)

    def _batches(self) -> Iterator[tuple[list[Metric], dict[str, Any]]]:
        """(points, cursor after them) from the cursor to the last complete line."""
        cur = dict(self._state)
        points: list[Metric] = []
        with self.source.open("rb") as handle:
            handle.seek(cur["offset"])
            for raw in handle:
                if not raw.endswith(b"\n"):
                    break  # a line still being written
                cur["offset"] += len(raw)
                cur["line"] += 1
                points += _new_points(_parse(raw), cur)
                if len(points) >= MAX_METRICS_PER_BATCH:
                    yield points, dict(cur)
                    points = []
        if points or cur != self._state:
            yield points, cur

    def pump(self) -> int:
        """Send everything new; returns the points sent. Raises when a send fails (cursor kept)."""
        if not self.source.exists():
            return 0
        self._rewind_if_rewritten()
        sent = 0
        for points, cursor in self._batches():
            for start in range(0, len(points), MAX_METRICS_PER_BATCH):
                self.send(points[start : start + MAX_METRICS_PER_BATCH])
            sent += len(points)
            self._state = cursor
            self._save()
        return sent


def _new_points(record: Mapping[str, Any], cur: dict[str, Any]) -> list[Metric]:
    """Points of a record not sent before (by step, then by key within the last step); updates cur."""
    step = record.get("step")
    if not isinstance(step, int) or isinstance(step, bool) or step < cur["last_step"]:
        return []
    points = to_metrics(record, cur["base_ms"] + cur["line"])
    if step == cur["last_step"]:
        points = [p for p in points if p.key not in cur["last_keys"]]
        cur["last_keys"] = sorted({*cur["last_keys"], *(p.key for p in points)})
    else:
        cur["last_step"], cur["last_keys"] = step, sorted(p.key for p in points)
    return points


def _parse(raw: bytes) -> dict[str, Any]:
    """One line as a dict; a torn or non-object line as {} (it carries no step)."""
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def mlflow_sender(ctx: TrackingContext, run_id: str) -> Sender:
    """A sender that logs points to one run."""

    def send(points: list[Metric]) -> None:
        if points:
            get_client(ctx).log_batch(run_id, metrics=points, synchronous=True)

    return send


Sync = Callable[[], object]


@contextmanager
def sync_in_background(open_sync: Callable[[], Sync], interval_s: float = 2.0) -> Iterator[threading.Event]:
    """Call a sync function every ``interval_s`` in a thread while the block runs; errors wait.

    ``open_sync`` is called until it succeeds (it may need the tracking server to find the run) and
    returns the function to repeat (send new metric points, log new checkpoints). The thread is told
    to stop on exit and makes a last attempt; whatever is left stays on disk for ``record_stage``.
    """
    stop = threading.Event()

    def loop() -> None:
        sync: Sync | None = None
        failing = False
        while True:
            final = stop.is_set()  # one more round after the stop request
            try:
                sync = sync or open_sync()
                sync()
                if failing:
                    log.info("metrics forwarding resumed")
                failing = False
            except Exception as err:  # the server may be down: keep training, retry later
                if not failing:
                    log.warning("metrics not sent yet (kept on disk, will retry): %s", err)
                failing = True
            if final:
                return
            stop.wait(interval_s)

    thread = threading.Thread(target=loop, name="tracking-sync", daemon=True)
    thread.start()
    try:
        yield stop
    finally:
        stop.set()
        thread.join(timeout=60)


class MlflowMetricSink:
    """A ``franca_core.tracking.MetricSink`` on an MLflow run: local spool first, then the server.

    Points survive an unreachable server in the spool and go out on the next call (or ``flush``);
    params are logged directly (they are few, and ``record_stage`` logs the full config anyway).
    """

    def __init__(self, ctx: TrackingContext, run_id: str, spool: Path) -> None:
        self.ctx, self.run_id, self.spool = ctx, run_id, spool
        spool.parent.mkdir(parents=True, exist_ok=True)
        cursor = spool.with_name(f"{spool.name}.cursor.json")
        self.forwarder = MetricsForwarder(spool, cursor, mlflow_sender(ctx, run_id))

    def log_params(self, params: Mapping[str, str | int | float | bool | None]) -> None:
        """Log params (best effort: a down server only loses nothing that record_stage re-logs)."""
        try:
            log_params(self.ctx, self.run_id, {k: str(v) for k, v in params.items()})
        except Exception as err:
            log.warning("params not logged to %s: %s", self.run_id, err)

    def log_metrics(self, step: int, metrics: Mapping[str, float]) -> None:
        """Append one record to the spool, then try to send what is pending."""
        record = {"step": int(step), "time": time.time(), **{k: float(v) for k, v in metrics.items()}}
        with self.spool.open("a") as handle:
            handle.write(json.dumps(record) + "\n")
        self.flush()

    def flush(self) -> bool:
        """Send pending points; False (and nothing lost) when the server cannot be reached."""
        try:
            self.forwarder.pump()
        except Exception as err:
            log.warning("metrics kept in %s until the tracking server is back: %s", self.spool, err)
            return False
        return True

    def close(self) -> None:
        self.flush()
