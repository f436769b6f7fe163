"""The engine end to end in one process: run directory contents, resume rules, export, HRFT, CLI errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from franca_core.cli import main as franca_main
from franca_core.config import PretrainConfig
from franca_core.models.pretrained import load_backbone
from franca_core.tracking import read_jsonl_metrics, record_time
from franca_core.train.checkpoint import latest_good_checkpoint, load_checkpoint
from franca_core.train.engine import pretrain
from franca_core.train.rundir import RunDir, RunDirError, RunResult
from franca_core.train.weights import backbone_state, initial_backbone_state

Tiny = Callable[..., PretrainConfig]
CHECKPOINT_FILES = [("model", ".pt"), ("model", ".pt.sha256"), ("meta", ".json")]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory, tiny_config: Tiny) -> tuple[Path, PretrainConfig]:
    cfg = tiny_config("runtime.max_steps=4")
    run_dir = tmp_path_factory.mktemp("run")
    pretrain(cfg, run_dir)
    return run_dir, cfg


def test_run_directory_holds_config_metrics_checkpoints_and_result(
    finished_run: tuple[Path, PretrainConfig],
) -> None:
    run_dir, cfg = finished_run
    assert PretrainConfig.model_validate_json((run_dir / "config.json").read_text()) == cfg
    assert json.loads((run_dir / "derived.json").read_text())["global_batch"] == 4
    records = read_jsonl_metrics(run_dir / "metrics.jsonl")
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    for head in ("dino", "ibot"):  # the collapse monitor, one value per level, in [0, 1]
        values = [r[f"{head}_target_entropy_l{i}"] for r in records for i in range(cfg.heads.n_levels)]
        assert all(0.0 <= v <= 1.0 + 1e-6 for v in values), values
        assert any(0.0 < v < 1.0 for v in values), values  # a tiny fresh run is neither flat nor one-hot
    times = [record_time(r) for r in records]  # wall-clock time of every logged step
    assert all(t is not None for t in times) and times == sorted(times)
    names = {p.name for p in (run_dir / "checkpoints").iterdir()}
    assert names == {f"{stem}_{s:07d}{ext}" for s in (2, 4) for stem, ext in CHECKPOINT_FILES}
    result = RunResult.read(run_dir / "result.json")
    assert (result.status, result.steps, result.last_checkpoint) == (
        "completed",
        4,
        "checkpoints/model_0000004.pt",
    )
    assert all(torch.isfinite(torch.tensor(list(vars(result.final_losses).values()))))


def test_exported_teacher_matches_the_final_checkpoint(finished_run: tuple[Path, PretrainConfig]) -> None:
    run_dir, _ = finished_run
    result = RunResult.read(run_dir / "result.json")
    teacher = backbone_state(load_checkpoint(run_dir / result.last_checkpoint).teacher)
    for file in (result.teacher_safetensors, result.teacher_franca_pth):
        assert file is not None
        loaded = load_backbone(run_dir / file, num_heads=2).state_dict()
        for key, value in teacher.items():
            assert torch.equal(loaded[key], value), (file, key)
    official = torch.load(run_dir / str(result.teacher_franca_pth), weights_only=True)
    assert "backbone.blocks.0.0.attn.qkv.weight" in official["teacher"]


def test_rerun_of_a_finished_run_does_not_train_again(finished_run: tuple[Path, PretrainConfig]) -> None:
    run_dir, cfg = finished_run
    before = (run_dir / "metrics.jsonl").read_text()
    result = pretrain(cfg, run_dir)
    assert result.steps == 4 and (run_dir / "metrics.jsonl").read_text().count('"step"') == before.count(
        '"step"'
    )


def test_a_different_config_is_refused_but_a_longer_run_extends(tiny_config: Tiny, tmp_path: Path) -> None:
    pretrain(tiny_config("runtime.max_steps=2"), tmp_path)
    with pytest.raises(RunDirError, match=r"optim.base_lr"):
        pretrain(tiny_config("runtime.max_steps=2", "optim.base_lr=0.5"), tmp_path)
    result = pretrain(tiny_config("runtime.max_steps=3", "runtime.checkpoint_every=5"), tmp_path)
    assert result.steps == 3 and latest_good_checkpoint(tmp_path) == tmp_path / "checkpoints/model_0000003.pt"
    assert [r["step"] for r in read_jsonl_metrics(tmp_path / "metrics.jsonl")] == [1, 2, 3]


def test_highres_stages_start_from_the_pretrained_teacher(
    finished_run: tuple[Path, PretrainConfig], tmp_path: Path
) -> None:
    run_dir, _ = finished_run
    teacher = backbone_state(load_checkpoint(run_dir / "checkpoints/model_0000004.pt").teacher)
    start = initial_backbone_state(run_dir, img_size=364, patch_size=14)
    assert start["pos_embed"].shape == (1, 1 + 26 * 26, 32)
    assert torch.equal(start["blocks.1.mlp.w3.weight"], teacher["blocks.1.mlp.w3.weight"])
    argv = ["finetune-highres", "--from", str(run_dir), "--run-dir", str(tmp_path), "--max-steps", "1"]
    code = franca_main([*argv, "--no-progress", "data.batch_size_per_rank=2", "crops.n_local=1"])
    assert code == 0
    for name, grid in (("hr364", 26), ("hr518", 37)):
        result = RunResult.read(tmp_path / name / "result.json")
        backbone = load_backbone(tmp_path / name / str(result.teacher_safetensors))
        assert backbone.pos_embed.shape == (1, 1 + grid * grid, 32) and result.steps == 1
    summary = json.loads((tmp_path / "summary.json").read_text())  # every stage, not only the last
    assert [(s["stage"], s["global_size"], s["run_dir"]) for s in summary["stages"]] == [
        ("hr364", 364, "hr364"),
        ("hr518", 518, "hr518"),
    ]
    for stage in summary["stages"]:
        result = RunResult.read(tmp_path / stage["run_dir"] / "result.json")
        assert (stage["steps"], stage["wall_time_s"], stage["status"]) == (1, result.wall_time_s, "completed")
        assert stage["final_losses"]["total"] == result.final_losses.total
        for key in ("teacher_safetensors", "teacher_franca_pth", "last_checkpoint"):
            assert (tmp_path / stage[key]).is_file(), key
    assert summary["backbone"] == summary["stages"][-1]["teacher_safetensors"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["data.source=folder", "data.path=/does/not/exist"], "data path does not exist"),
        (["data.source=folder", "data.path={empty}"], "empty dataset"),
        (["optim.bse_lr=1"], "unknown config key 'optim.bse_lr'"),
    ],
)
def test_cli_reports_user_errors_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    argv = ["pretrain", "--config", "debug", "--run-dir", str(tmp_path / "run")]
    code = franca_main(argv + [a.format(empty=empty) for a in args])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_cli_prints_the_resolved_config(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code = franca_main(
        ["pretrain", "--config", "debug", "--run-dir", str(tmp_path), "--max-steps", "9", "--print-config"]
    )
    assert code == 0 and json.loads(capsys.readouterr().out)["runtime"]["max_steps"] == 9


def test_a_run_written_before_a_field_existed_still_resumes(tiny_config: Tiny, tmp_path: Path) -> None:
    """A config.json without a field added later (here ``backbone.drop_path_mode``) reads as its default."""
    cfg = tiny_config()
    stored = cfg.model_dump(mode="json")
    del stored["backbone"]["drop_path_mode"]
    (tmp_path / "config.json").write_text(json.dumps(stored))
    RunDir(tmp_path).check_config(cfg)  # no difference: a field missing from the file takes its default
    with pytest.raises(RunDirError, match=r"backbone.drop_path_mode: 'official' -> 'per_sample'"):
        RunDir(tmp_path).check_config(tiny_config("backbone.drop_path_mode=per_sample"))
