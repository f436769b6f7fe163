"""Stage flows under the Prefect test harness: real tasks, caching, failure and resume, MLflow records."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from flows.pipeline import results_table
from flows.stages import curate_flow, finetune_flow, pretrain_flow
from franca_core.config import PretrainConfig
from franca_core.tracking import read_jsonl_metrics
from franca_core.train.engine import pretrain
from tasks.record import open_pipeline_run
from tasks.reuse import CACHED_FROM_RUN, CACHED_TAG
from tasks.specs import CurateSpec, TrackingParams, TrainSpec
from tasks.tracking import DATA_TAG, PARENT_TAG, experiment_id, get_client, resolve_tracking

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
    stamps = [m.timestamp for m in client.get_metric_history(run.info.run_id, "loss")]  # by step, as above
    last = read_jsonl_metrics(tmp_path / "pretrain" / "metrics.jsonl")[-1]
    assert stamps == sorted(stamps) and stamps[-1] == int(last["time"] * 1000)  # the records' wall clock
    cached = pretrain_flow(spec, tracking, return_state=True)
    assert task_states(cached.state_details.flow_run_id)["train"] == ["Cached"]
    # a later pipeline run reuses the cached stage: its parent run shows it, the record stays put
    ctx = resolve_tracking(tracking, tmp_path)
    later = open_pipeline_run.fn(ctx, "later-pipeline", "pipeline-later", {})
    reused = pretrain_flow(spec, tracking, later, return_state=True)
    assert task_states(reused.state_details.flow_run_id)["train"] == ["Cached"]
    assert reused.result().mlflow_run_id == recorded.mlflow_run_id
    assert PARENT_TAG not in client.get_run(recorded.mlflow_run_id).data.tags
    exp = experiment_id(client, ctx)
    (ref,) = client.search_runs([exp], filter_string=f"tags.`{PARENT_TAG}` = '{later}'")
    assert (ref.data.tags[CACHED_TAG], ref.data.tags[CACHED_FROM_RUN]) == ("true", recorded.mlflow_run_id)
    assert ref.data.tags["prefect.flow_run_id"] == str(reused.state_details.flow_run_id)
    assert ref.data.metrics["final_loss/total"] == recorded.output.summary["final_loss/total"]
    assert client.get_run(later).data.tags["franca.cached_stage.pretrain"] == recorded.mlflow_run_id
    again = pretrain_flow(spec, tracking, later, return_state=True)  # the same pipeline again: no new run
    assert again.result().mlflow_run_id == recorded.mlflow_run_id
    assert len(client.search_runs([exp], filter_string=f"tags.`{PARENT_TAG}` = '{later}'")) == 1


@pytest.mark.slow
def test_finetune_flow_records_and_summarises_both_stages(
    tmp_path: Path, no_tracking_env: None, tiny_config: Callable[..., PretrainConfig]
) -> None:
    base = tiny_config("runtime.max_steps=2")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        pretrain(base, tmp_path / "pretrain")
    finally:
        torch.set_num_threads(threads)
    spec = TrainSpec(kind="finetune-highres", run_dir=str(tmp_path / "finetune"), max_steps=1,
                     init_from=str(tmp_path / "pretrain"),
                     overrides=["data.batch_size_per_rank=2", "crops.n_local=1"])  # fmt: skip
    tracking = TrackingParams(store_dir=str(tmp_path / "mlflow"))
    recorded = finetune_flow(spec, tracking)
    assert [r.output.stage for r in recorded] == ["finetune-highres/hr364", "finetune-highres/hr518"]
    assert list(results_table(recorded)) == ["finetune-highres/hr364", "finetune-highres/hr518"]
    summary = json.loads((tmp_path / "finetune" / "summary.json").read_text())
    assert [(s["stage"], s["run_dir"]) for s in summary["stages"]] == [("hr364", "hr364"), ("hr518", "hr518")]
    client = get_client(resolve_tracking(tracking, tmp_path))
    for rec, stage in zip(recorded, summary["stages"], strict=True):
        out = rec.output
        assert out.steps == stage["steps"] == 1
        assert out.out_dir == str(tmp_path / "finetune" / stage["run_dir"])
        assert out.summary["wall_time_s"] == stage["wall_time_s"] > 0
        assert out.summary["final_loss/total"] == stage["final_losses"]["total"]
        assert Path(str(out.backbone)) == tmp_path / "finetune" / stage["teacher_safetensors"]
        assert client.get_run(rec.mlflow_run_id).data.metrics["wall_time_s"] == stage["wall_time_s"]
    assert summary["backbone"] == "hr518/export/teacher_backbone.safetensors"
    local = client.download_artifacts(recorded[-1].mlflow_run_id, "run/summary.json", str(tmp_path))
    assert json.loads(Path(local).read_text()) == summary  # the last stage's run holds the whole summary
