"""Checkpoint files: atomic with a digest, bad ones skipped, retention, RNG round trip; metric sinks."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from franca_core.data.position import DataPosition
from franca_core.tracking import JsonlSink, NullSink, read_jsonl_metrics, record_metrics, record_time
from franca_core.train.checkpoint import (
    TrainingState,
    apply_retention,
    capture_rng,
    checkpoint_path,
    digest_path,
    is_good,
    latest_good_checkpoint,
    list_checkpoints,
    load_checkpoint,
    meta_path,
    restore_rng,
    save_checkpoint,
)


def state(step: int) -> TrainingState:
    return TrainingState(
        step=step,
        student={"w": torch.full((3,), float(step))},
        teacher={"w": torch.zeros(3)},
        objective={},
        optimizer={"state": {}, "param_groups": []},
        data=DataPosition("indexed", step, step * 8, 1, 0, 8),
        rng=[capture_rng()],
        wall_time_s=1.5 * step,
        config_json="{}",
    )


def save(run: Path, step: int) -> Path:
    save_checkpoint(run, state(step), world_size=1, parallel="none", losses={"total": 1.0})
    return checkpoint_path(run, step)


def test_round_trip_with_digest_and_meta(tmp_path: Path) -> None:
    path = save(tmp_path, 4)
    assert is_good(path) and path.name == "model_0000004.pt"
    loaded = load_checkpoint(path)
    assert loaded.step == 4 and torch.equal(loaded.student["w"], torch.full((3,), 4.0))
    assert loaded.data == state(4).data
    meta = json.loads(meta_path(path).read_text())
    assert meta["sha256"] == digest_path(path).read_text().split()[0] and meta["losses"] == {"total": 1.0}
    assert not list(path.parent.glob(".*tmp"))  # no temporary left behind


def test_truncated_or_unsigned_checkpoints_are_skipped(tmp_path: Path) -> None:
    for step in (2, 4, 6):
        save(tmp_path, step)
    newest = checkpoint_path(tmp_path, 6)
    newest.write_bytes(newest.read_bytes()[:1000])  # truncated copy
    assert latest_good_checkpoint(tmp_path) == checkpoint_path(tmp_path, 4)
    digest_path(checkpoint_path(tmp_path, 4)).unlink()  # killed before its digest was written
    assert latest_good_checkpoint(tmp_path) == checkpoint_path(tmp_path, 2)


def test_retention_keeps_the_newest(tmp_path: Path) -> None:
    for step in (1, 2, 3):
        save(tmp_path, step)
    assert apply_retention(tmp_path, None) == []
    apply_retention(tmp_path, 2)
    assert [s for s, _ in list_checkpoints(tmp_path)] == [2, 3]
    assert not meta_path(checkpoint_path(tmp_path, 1)).exists()


def test_rng_states_round_trip() -> None:
    saved = capture_rng()
    expected = (torch.rand(2), np.random.rand(), random.random())
    restore_rng(saved)
    again = (torch.rand(2), np.random.rand(), random.random())
    assert torch.equal(expected[0], again[0]) and expected[1:] == again[1:]


def test_jsonl_sink_resumes_without_duplicate_steps(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    sink = JsonlSink(path)
    sink.log_params({"lr": 0.1})
    for step in (1, 2, 3, 4):
        sink.log_metrics(step, {"loss": float(step)})
    sink.close()
    with path.open("a") as handle:
        handle.write('{"step": 5, "lo')  # torn line of a killed run
    resumed = JsonlSink(path, resume_step=2)
    resumed.log_metrics(3, {"loss": 30.0})
    resumed.close()
    assert [(r["step"], r["loss"]) for r in read_jsonl_metrics(path)] == [(1, 1.0), (2, 2.0), (3, 30.0)]
    NullSink().log_metrics(1, {"x": 1.0})


def test_jsonl_records_carry_wall_clock_time(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1, "loss": 1.0}\n')  # a record of a file written before "time" existed
    before = time.time()
    sink = JsonlSink(path)
    sink.log_params({"lr": 0.1})
    sink.log_metrics(2, {"loss": 0.5})
    sink.close()
    after = time.time()
    params, line = (json.loads(line) for line in path.read_text().splitlines()[1:])
    assert before <= params["time"] <= line["time"] <= after  # UTC epoch seconds
    old, new = read_jsonl_metrics(path)
    assert (record_time(old), record_metrics(old)) == (None, {"loss": 1.0})
    assert (record_time(new), record_metrics(new)) == (line["time"], {"loss": 0.5})
    clocked = JsonlSink(tmp_path / "clocked.jsonl", clock=lambda: 1_767_225_600.5)
    clocked.log_metrics(3, {"loss": 0.25})
    with pytest.raises(ValueError, match="reserved"):
        clocked.log_metrics(4, {"time": 1.0})
    clocked.close()
    (record,) = read_jsonl_metrics(tmp_path / "clocked.jsonl")
    assert record == {"step": 3, "time": 1_767_225_600.5, "loss": 0.25}
