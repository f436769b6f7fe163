"""Stage flows under the Prefect test harness: real tasks, caching, failure and resume, MLflow records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flows.stages import curate_flow, pretrain_flow
from tasks.specs import CurateSpec, TrackingParams, TrainSpec
from tasks.tracking import DATA_TAG, get_client, resolve_tracking

# the harness's Prefect server emits SQLAlchemy deprecation warnings by the hundred
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
TINY = [
    "data.batch_size_per_rank=4",
    "crops.global_size=56",
    "crops.local_size=28",
    "crops.n_local=2",
    "runtime.checkpoint_every=2",
    "runtime.log_every=1",
]


def test_curate_flow_fans_out_and_caches(
    tmp_path: Path, no_tracking_env: None, task_states, write_images
) -> None:
    images = write_images(tmp_path / "images", ("astronaut", "coffee", "chelsea", "rocket"))
    spec = CurateSpec(source=str(images), out_dir=str(tmp_path / "curate"), samples_per_shard=2,
                      overrides=["nsfw.detector=none"])  # fmt: skip
    tracking = TrackingParams(store_dir=str(tmp_path / "mlflow"))
    first = curate_flow(spec, tracking, return_state=True)
    recorded = first.result()
    assert recorded.output.data.n_kept == 4 and Path(recorded.output.data.manifest).exists()
    assert task_states(first.state_details.flow_run_id)["process-shard"] == ["Completed", "Completed"]
    report = json.loads((tmp_path / "curate" / "report.json").read_text())
    inspect = next(s for s in report["stages"] if s["name"] == "inspect")
    assert inspect["reused"] == 2  # the per-shard tasks did the work; curate() only reused it
    again = curate_flow(spec, tracking, return_state=True)
    states = task_states(again.state_details.flow_run_id)
    assert {state for names in states.values() for state in names} == {"Cached"}
    assert again.result().mlflow_run_id == recorded.mlflow_run_id
    ctx = resolve_tracking(tracking, tmp_path)
    run = get_client(ctx).get_run(recorded.mlflow_run_id)
    assert run.data.tags[DATA_TAG] == recorded.output.data.manifest_sha256
    assert run.data.metrics["n_kept"] == 4.0


@pytest.mark.slow
def test_pretrain_flow_killed_then_resumed(
    tmp_path: Path, no_tracking_env: None, monkeypatch, task_states
) -> None:
    # 40 steps: the kill is polled every 0.5 s, so a short run could finish before it lands.
    spec = TrainSpec(run_dir=str(tmp_path / "pretrain"), max_steps=40, overrides=TINY)
    tracking = TrackingParams(store_dir=str(tmp_path / "mlflow"))
    monkeypatch.setenv("FRANCA_FAIL_STAGE", "pretrain@2")  # preempted after its first checkpoint
    failed = pretrain_flow(spec, tracking, return_state=True)
    assert failed.is_failed()
    assert not (tmp_path / "pretrain" / "result.json").exists()
    monkeypatch.delenv("FRANCA_FAIL_STAGE")
    done = pretrain_flow(spec, tracking, return_state=True)
    recorded = done.result()
    assert recorded.output.steps == 40 and Path(str(recorded.output.backbone)).exists()
    params = [
        json.loads(x)["params"] for x in (tmp_path / "pretrain" / "metrics.jsonl").open() if '"params"' in x
    ]
    assert params[-1]["resumed_from_step"] >= 2  # the second launch resumed from a checkpoint
    client = get_client(resolve_tracking(tracking, tmp_path))
    run = client.get_run(recorded.mlflow_run_id)
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "loss")]
    assert steps == list(range(1, 41))  # every step once, across the kill
    checkpoints = {Path(f.path).name for f in client.list_artifacts(run.info.run_id, "checkpoints")}
    assert {f"model_{s:07d}.pt" for s in (2, 4, 6)} <= checkpoints
    cached = pretrain_flow(spec, tracking, return_state=True)
    assert task_states(cached.state_details.flow_run_id)["train"] == ["Cached"]
