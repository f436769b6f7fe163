"""record_stage and friends against an embedded store: params, metrics, checkpoints, lineage."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tasks.artifacts import good_checkpoints
from tasks.record import open_pipeline_run, record_stage, register
from tasks.results import StageOutput
from tasks.reuse import CACHED_FROM_ARTIFACTS, CACHED_FROM_PARENT, CACHED_FROM_RUN, CACHED_TAG
from tasks.specs import TrackingParams
from tasks.tracking import (
    PARENT_TAG,
    STAGE_KEY,
    STAGE_TAG,
    TrackingContext,
    experiment_id,
    find_run,
    flatten,
    get_client,
    open_run,
    resolve_tracking,
)

# MLflow's SQLite store emits SQLAlchemy deprecation warnings
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def fake_run_dir(root: Path, steps: tuple[int, ...] = (2, 4), size: int = 2048) -> Path:
    """A run directory in the engine's layout: checkpoints + digests + metas, metrics, config."""
    ckpts = root / "checkpoints"
    ckpts.mkdir(parents=True)
    for step in steps:
        payload = bytes([step]) * size
        (ckpts / f"model_{step:07d}.pt").write_bytes(payload)
        (ckpts / f"meta_{step:07d}.json").write_text(json.dumps({"step": step}))
        digest = hashlib.sha256(payload).hexdigest()
        (ckpts / f"model_{step:07d}.pt.sha256").write_text(f"{digest}  model_{step:07d}.pt\n")
    (ckpts / "model_0000006.pt").write_bytes(b"half written, no digest yet")
    lines = [{"params": {"config": "debug"}}] + [{"step": s, "loss": 1.0 / s} for s in range(1, 5)]
    (root / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    (root / "config.json").write_text(json.dumps({"optim": {"lr": 0.1}, "name": "debug"}))
    return root


def output_for(run_dir: Path, key: str = "k1") -> StageOutput:
    return StageOutput(
        stage="pretrain",
        key=key,
        out_dir=str(run_dir),
        config=json.loads((run_dir / "config.json").read_text()),
        summary={"final_loss": 0.25},
        metrics_file=str(run_dir / "metrics.jsonl"),
        checkpoints=True,
        artifacts={"run": [str(run_dir / "config.json"), str(run_dir / "missing.json")]},
        data_sha256="abc123",
        prefect={"prefect.flow_run_id": "flow-1"},
    )


def test_flatten_nests_with_dots() -> None:
    assert flatten({"a": {"b": 1, "c": [1, 2]}, "d": None}) == {"a.b": "1", "a.c": "[1, 2]", "d": "None"}


def test_good_checkpoints_need_their_digest(tmp_path: Path) -> None:
    run_dir = fake_run_dir(tmp_path / "run")
    assert [c.step for c in good_checkpoints(run_dir)] == [2, 4]


def test_record_stage_logs_everything_once(tracking_ctx: TrackingContext, tmp_path: Path) -> None:
    run_dir = fake_run_dir(tmp_path / "run")
    output = output_for(run_dir)
    run_id = record_stage.fn(output, tracking_ctx)
    assert record_stage.fn(output, tracking_ctx) == run_id  # idempotent: same run, nothing twice
    client = get_client(tracking_ctx)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params == {"optim.lr": "0.1", "name": "debug"}
    assert run.data.tags["franca.data_manifest_sha256"] == "abc123"
    assert run.data.tags["prefect.flow_run_id"] == "flow-1"
    assert run.data.tags[STAGE_KEY] == "k1"
    assert [(m.step, m.value) for m in client.get_metric_history(run_id, "loss")] == [
        (s, 1.0 / s) for s in range(1, 5)
    ]
    names = sorted(Path(f.path).name for f in client.list_artifacts(run_id, "checkpoints"))
    assert names == [
        "meta_0000002.json",
        "meta_0000004.json",
        "model_0000002.pt",
        "model_0000002.pt.sha256",
        "model_0000004.pt",
        "model_0000004.pt.sha256",
    ]
    assert [Path(f.path).name for f in client.list_artifacts(run_id, "run")] == ["config.json"]


def test_size_limit_records_sha256_instead(tracking_ctx: TrackingContext, tmp_path: Path) -> None:
    ctx = tracking_ctx.model_copy(update={"max_artifact_mb": 0.001})  # ~1 KB: both checkpoints too big
    run_dir = fake_run_dir(tmp_path / "run")
    run_id = record_stage.fn(output_for(run_dir), ctx)
    client = get_client(ctx)
    names = {Path(f.path).name for f in client.list_artifacts(run_id, "checkpoints")}
    assert "model_0000002.pt" not in names and "model_0000002.pt.ref.json" in names
    local = client.download_artifacts(run_id, "checkpoints/model_0000004.pt.ref.json", str(tmp_path))
    ref = json.loads(Path(local).read_text())
    assert ref["sha256"] == good_checkpoints(run_dir)[1].sha256 and ref["step"] == 4


def test_parent_child_and_registry(tracking_ctx: TrackingContext, tmp_path: Path) -> None:
    parent = open_pipeline_run.fn(tracking_ctx, "pipe-1", "pipeline", {"out_dir": "x"})
    assert open_pipeline_run.fn(tracking_ctx, "pipe-1", "pipeline", {"out_dir": "x"}) == parent
    run_dir = fake_run_dir(tmp_path / "run")
    (run_dir / "backbone.safetensors").write_bytes(b"weights")
    output = output_for(run_dir).model_copy(update={"backbone": str(run_dir / "backbone.safetensors")})
    child = record_stage.fn(output, tracking_ctx.child(parent))
    assert get_client(tracking_ctx).get_run(child).data.tags[PARENT_TAG] == parent
    assert register.fn(tracking_ctx, output, child) == "1"
    assert register.fn(tracking_ctx, output, child) == "1"  # same run: no second version


def test_stage_reused_by_another_pipeline_is_shown_under_it(
    tracking_ctx: TrackingContext, tmp_path: Path
) -> None:
    first = open_pipeline_run.fn(tracking_ctx, "pipe-1", "pipeline-1", {})
    second = open_pipeline_run.fn(tracking_ctx, "pipe-2", "pipeline-2", {})
    output = output_for(fake_run_dir(tmp_path / "run"))
    original = record_stage.fn(output, tracking_ctx.child(first))
    # pipeline 2 got the stage from the cache: the record stays under pipeline 1, 2 gets a reference
    assert record_stage.fn(output, tracking_ctx.child(second)) == original
    assert record_stage.fn(output, tracking_ctx.child(second)) == original  # a retry: nothing new
    client = get_client(tracking_ctx)
    exp = experiment_id(client, tracking_ctx)
    assert client.get_run(original).data.tags[PARENT_TAG] == first
    (ref,) = client.search_runs([exp], filter_string=f"tags.`{PARENT_TAG}` = '{second}'")
    tags = ref.data.tags
    assert (tags[CACHED_TAG], tags[CACHED_FROM_RUN], tags[CACHED_FROM_PARENT]) == ("true", original, first)
    assert tags[CACHED_FROM_ARTIFACTS] == client.get_run(original).info.artifact_uri
    assert tags["franca.data_manifest_sha256"] == "abc123" and original in tags["mlflow.note.content"]
    assert STAGE_KEY not in tags and STAGE_TAG not in tags  # lookups of the stage still find the original
    assert find_run(client, exp, STAGE_KEY, "k1") == original
    assert ref.info.run_name == "pretrain (cached)" and ref.info.status == "FINISHED"
    assert ref.data.metrics == {"final_loss": 0.25} and not client.list_artifacts(ref.info.run_id)
    assert client.get_run(second).data.tags["franca.cached_stage.pretrain"] == original
    # pipeline 1 rerun: its own record, no reference
    assert record_stage.fn(output, tracking_ctx.child(first)) == original
    under_first = client.search_runs([exp], filter_string=f"tags.`{PARENT_TAG}` = '{first}'")
    assert [r.info.run_id for r in under_first] == [original]


def test_open_run_reopens_by_key(tracking_ctx: TrackingContext) -> None:
    first, created = open_run(tracking_ctx, STAGE_KEY, "same", "stage", {})
    get_client(tracking_ctx).set_terminated(first, "FAILED")
    again, created_again = open_run(tracking_ctx, STAGE_KEY, "same", "stage", {})
    assert (again, created, created_again) == (first, True, False)
    assert get_client(tracking_ctx).get_run(first).info.status == "RUNNING"


def test_tracking_uri_resolution(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    ctx = resolve_tracking(TrackingParams(), tmp_path / "store")
    assert ctx.uri == f"sqlite:///{(tmp_path / 'store' / 'mlflow.db').resolve()}"
    assert ctx.artifact_root == (tmp_path / "store" / "artifacts").resolve().as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    assert resolve_tracking(TrackingParams(), tmp_path).uri == "http://127.0.0.1:5999"
    explicit = resolve_tracking(TrackingParams(tracking_uri="http://h:1"), tmp_path)
    assert (explicit.uri, explicit.artifact_root) == ("http://h:1", None)
