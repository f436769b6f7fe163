"""Launchers, failure injection, training-task helpers and the embedded source: no training here."""

from __future__ import annotations

import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from tasks.faults import InjectedFailureError, fail_if_asked, kill_step
from tasks.launch import run_process, torchrun_args
from tasks.samples import serve_folder, write_embedded_source
from tasks.slurm import _exit_code, sbatch_script
from tasks.specs import DataRef, LaunchParams, SlurmParams, TrainSpec
from tasks.train import cli_args, run_dir_of, stage_name


def test_torchrun_command_is_this_interpreter() -> None:
    argv = torchrun_args(2, ["pretrain", "--config", "debug"])
    assert argv[:3] == [sys.executable, "-m", "torch.distributed.run"]
    assert argv[argv.index("--nproc-per-node") + 1] == "2"
    assert argv[-4:] == ["franca_core.cli", "pretrain", "--config", "debug"]


def test_run_process_reports_exit_and_kills_on_request(tmp_path: Path) -> None:
    done = run_process([sys.executable, "-c", "print('hello'); raise SystemExit(3)"], tmp_path / "a.log")
    assert (done.returncode, done.state, done.ok) == (3, "FAILED", False)
    assert "hello" in (tmp_path / "a.log").read_text()
    start = time.monotonic()
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    killed = run_process(sleeper, tmp_path / "b.log", should_stop=lambda: time.monotonic() - start > 0.5)
    assert killed.state == "KILLED" and time.monotonic() - start < 20


def test_sbatch_script_runs_srun_torchrun(tmp_path: Path) -> None:
    slurm = SlurmParams(
        partition="gpu", gpus_per_node=8, extra_sbatch=["--qos=high"], setup=["module load cuda"]
    )
    launch = LaunchParams(launcher="slurm", nnodes=4, nproc_per_node=8, slurm=slurm)
    script = sbatch_script(launch, ["pretrain", "--run-dir", "runs/a b"], tmp_path, Path("/repo"))
    assert "#SBATCH --nodes=4" in script and "#SBATCH --gpus-per-node=8" in script
    assert "#SBATCH --qos=high" in script and "module load cuda" in script
    srun = script.strip().splitlines()[-1]
    assert srun.startswith("srun --kill-on-bad-exit=1 ")
    assert '"$SLURM_JOB_NUM_NODES"' in srun and '"$head:29500"' in srun and "'runs/a b'" in srun


def test_slurm_exit_codes() -> None:
    assert (_exit_code("0:0"), _exit_code("3:0"), _exit_code("0:9")) == (0, 3, 137)


def test_failure_injection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRANCA_FAIL_STAGE", "rasa,pretrain@30")
    with pytest.raises(InjectedFailureError):
        fail_if_asked("rasa")
    fail_if_asked("eval")
    assert (kill_step("pretrain"), kill_step("eval")) == (30, None)


def test_training_cli_arguments() -> None:
    data = DataRef(shards_dir="/d/shards", manifest="/d/manifest.parquet", manifest_sha256="s")
    spec = TrainSpec(run_dir="runs/p", max_steps=5, overrides=["optim.base_lr=1e-3"], data=data)
    assert cli_args(spec) == [
        "pretrain", "--run-dir", "runs/p", "--no-progress", "--config", "debug", "--max-steps", "5",
        "optim.base_lr=1e-3", "data.source=webdataset", "data.path=/d/shards",
    ]  # fmt: skip
    hr = TrainSpec(kind="finetune-highres", run_dir="runs/hr", init_from="runs/p", highres_stage=2)
    assert cli_args(hr)[:7] == [
        "finetune-highres",
        "--run-dir",
        "runs/hr",
        "--no-progress",
        "--from",
        "runs/p",
        "--stages",
    ]
    assert (stage_name(hr), run_dir_of(hr)) == ("finetune-highres/hr518", Path("runs/hr/hr518"))


def test_embedded_source_is_stable_and_served(tmp_path: Path) -> None:
    urls, port = write_embedded_source(tmp_path)
    assert write_embedded_source(tmp_path) == (urls, port)  # a rerun gives the same list
    table = pd.read_parquet(urls)
    assert len(table) == 17 and table["url"].str.startswith(f"http://127.0.0.1:{port}/").all()
    with serve_folder(tmp_path / "images", port) as base:
        body = urllib.request.urlopen(f"{base}/astronaut.png", timeout=5).read()
    assert body.startswith(b"\x89PNG")
