"""Where training metrics go: a ``MetricSink`` protocol with a null sink and a JSONL sink.

The loop always logs to a sink and never asks whether tracking is on (nanochat's null logger): a run
without tracking gets :class:`NullSink`. The run directory's ``metrics.jsonl`` is written by
:class:`JsonlSink`, one JSON object per line (``{"step": 10, "time": 1767225600.123, "loss": 3.2, ...}``).
``time`` is the wall-clock time the record was written, in UTC seconds since the epoch; files written
before it existed have no ``time``, so readers treat it as optional (:func:`record_time`). An MLflow
sink lives in ``tasks/`` (the library does not import mlflow); :class:`FanOutSink` sends to several.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Protocol

ParamValue = str | int | float | bool | None
TIME_KEY = "time"  # wall-clock seconds since the epoch (UTC) of a metrics.jsonl record
RESERVED_KEYS = frozenset({"step", TIME_KEY})  # record fields that are not metrics


class MetricSink(Protocol):
    """Receives run parameters once and scalar metrics per step."""

    def log_params(self, params: Mapping[str, ParamValue]) -> None: ...

    def log_metrics(self, step: int, metrics: Mapping[str, float]) -> None: ...

    def close(self) -> None: ...


class NullSink:
    """Drops everything; the default when nothing is tracked (and on ranks other than 0)."""

    def log_params(self, params: Mapping[str, ParamValue]) -> None:
        return None

    def log_metrics(self, step: int, metrics: Mapping[str, float]) -> None:
        return None

    def close(self) -> None:
        return None


class JsonlSink:
    """Appends ``{"step": s, "time": t, **metrics}`` lines to a file, flushed per line so a killed run
    keeps them; ``t`` is ``clock()`` (default :func:`time.time`: UTC seconds since the epoch).

    ``resume_step``: drop lines logged after this step first, so that after a resume the file holds
    exactly the trajectory of the checkpointed run (the steps after the checkpoint are logged again).
    Parameters go to a ``{"params": {...}, "time": t}`` line. A metric named ``time`` is refused: the
    field is the record's timestamp.
    """

    def __init__(
        self, path: str | Path, resume_step: int | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        self.path = Path(path)
        self.clock = clock
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is not None and self.path.exists():
            _truncate_after(self.path, resume_step)
        self._file: IO[str] | None = self.path.open("a", encoding="utf-8")

    def _write(self, record: Mapping[str, object]) -> None:
        if self._file is None:
            raise RuntimeError(f"JsonlSink({self.path}) is closed")
        self._file.write(json.dumps(record, sort_keys=False) + "\n")
        self._file.flush()

    def _now(self) -> float:
        return round(float(self.clock()), 6)  # microseconds: JSON stays short, order is kept

    def log_params(self, params: Mapping[str, ParamValue]) -> None:
        self._write({"params": dict(params), TIME_KEY: self._now()})

    def log_metrics(self, step: int, metrics: Mapping[str, float]) -> None:
        clash = RESERVED_KEYS.intersection(metrics)
        if clash:
            raise ValueError(f"metric names {sorted(clash)} are reserved in metrics.jsonl records")
        self._write({"step": step, TIME_KEY: self._now(), **metrics})

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class FanOutSink:
    """Sends every call to each of ``sinks``."""

    def __init__(self, sinks: Sequence[MetricSink]) -> None:
        self.sinks = tuple(sinks)

    def log_params(self, params: Mapping[str, ParamValue]) -> None:
        for sink in self.sinks:
            sink.log_params(params)

    def log_metrics(self, step: int, metrics: Mapping[str, float]) -> None:
        for sink in self.sinks:
            sink.log_metrics(step, metrics)

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()


def record_time(record: Mapping[str, object]) -> float | None:
    """A record's wall-clock time (UTC epoch seconds), or None for records written without one."""
    value = record.get(TIME_KEY)
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def record_metrics(record: Mapping[str, object]) -> dict[str, float]:
    """The metric values of a per-step record: its numbers other than ``step`` and ``time``."""
    return {
        k: float(v)
        for k, v in record.items()
        if k not in RESERVED_KEYS and isinstance(v, int | float) and not isinstance(v, bool)
    }


def read_jsonl_metrics(path: str | Path) -> list[dict[str, float]]:
    """The per-step records of a ``metrics.jsonl`` (parameter lines and torn last lines skipped).

    Each record keeps its ``step`` and, when the file has one, its ``time``; records of older files
    have no ``time`` (see :func:`record_time`, :func:`record_metrics`).
    """
    records: list[dict[str, float]] = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by a kill
        if isinstance(record, dict) and "step" in record:
            records.append(record)
    return records


def _truncate_after(path: Path, step: int) -> None:
    """Rewrite ``path`` keeping parameter lines and metric lines with ``step <= step``."""
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(record, dict) or record.get("step", -1) <= step:
            kept.append(line)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(f"{line}\n" for line in kept), encoding="utf-8")
    tmp.replace(path)
