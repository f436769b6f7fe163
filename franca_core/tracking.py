"""Where training metrics go: a ``MetricSink`` protocol with a null sink and a JSONL sink.

The loop always logs to a sink and never asks whether tracking is on (nanochat's null logger): a run
without tracking gets :class:`NullSink`. The run directory's ``metrics.jsonl`` is written by
:class:`JsonlSink`, one JSON object per line (``{"step": 10, "loss": 3.2, ...}``). An MLflow sink
lives in ``tasks/`` (the library does not import mlflow); :class:`FanOutSink` sends to several.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Protocol

ParamValue = str | int | float | bool | None


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
    """Appends ``{"step": s, **metrics}`` lines to a file, flushed per line so a killed run keeps them.

    ``resume_step``: drop lines logged after this step first, so that after a resume the file holds
    exactly the trajectory of the checkpointed run (the steps after the checkpoint are logged again).
    Parameters go to a ``{"params": {...}}`` line.
    """

    def __init__(self, path: str | Path, resume_step: int | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is not None and self.path.exists():
            _truncate_after(self.path, resume_step)
        self._file: IO[str] | None = self.path.open("a", encoding="utf-8")

    def _write(self, record: Mapping[str, object]) -> None:
        if self._file is None:
            raise RuntimeError(f"JsonlSink({self.path}) is closed")
        self._file.write(json.dumps(record, sort_keys=False) + "\n")
        self._file.flush()

    def log_params(self, params: Mapping[str, ParamValue]) -> None:
        self._write({"params": dict(params)})

    def log_metrics(self, step: int, metrics: Mapping[str, float]) -> None:
        self._write({"step": step, **metrics})

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


def read_jsonl_metrics(path: str | Path) -> list[dict[str, float]]:
    """The per-step records of a ``metrics.jsonl`` (parameter lines and torn last lines skipped)."""
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
