"""The SLURM launcher against a real single-node SLURM (munge + slurmctld + slurmd started here).

Needs Debian's ``slurm-wlm`` and ``munge`` and root (slurmd runs jobs as their user); skips
cleanly otherwise. The cluster uses its own config, key copy, ports and state under a temporary
folder, so it does not touch a SLURM that may already run on the machine.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tasks.launch import tail
from tasks.slurm import run_slurm
from tasks.specs import LaunchParams, SlurmParams

pytestmark = [pytest.mark.integration, pytest.mark.slow]
BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "scontrol", "sinfo")
MUNGE_KEY = Path("/etc/munge/munge.key")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _config(root: Path, host: str) -> str:
    sock = root / "munge.sock"
    return f"""ClusterName=francatest
SlurmctldHost={host}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
AuthType=auth/munge
AuthInfo=socket={sock}
CredType=cred/munge
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
MinJobAge=600
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
NodeName={host} NodeAddr=127.0.0.1 CPUs={os.cpu_count() or 1} State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


def _start_munge(root: Path) -> subprocess.Popen[bytes]:
    key = root / "munge.key"
    shutil.copy(MUNGE_KEY, key)
    key.chmod(0o600)
    args = [f"--key-file={key}", f"--socket={root / 'munge.sock'}", f"--pid-file={root / 'munged.pid'}"]
    args += [f"--log-file={root / 'munged.log'}", f"--seed-file={root / 'munge.seed'}"]
    return subprocess.Popen(["munged", "--force", "--foreground", *args])


def _idle(env: dict[str, str], timeout_s: float = 30) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        out = subprocess.run(["sinfo", "-h", "-o", "%t"], env=env, capture_output=True, text=True)
        if out.returncode == 0 and out.stdout.strip() in {"idle", "mix"}:
            return True
        time.sleep(1)
    return False


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A one-node SLURM; yields the environment that points its clients at it."""
    missing = [b for b in BINARIES if shutil.which(b) is None]
    if missing or not MUNGE_KEY.exists() or os.geteuid() != 0:
        pytest.skip(f"single-node SLURM needs slurm-wlm + munge and root (missing: {missing or 'root/key'})")
    root = tmp_path_factory.mktemp("slurm")
    (root / "state").mkdir()
    (root / "spool").mkdir()
    (root / "slurm.conf").write_text(_config(root, socket.gethostname().split(".")[0]))
    env = {**os.environ, "SLURM_CONF": str(root / "slurm.conf")}
    daemons = [_start_munge(root)]
    time.sleep(1)
    daemons.append(subprocess.Popen(["slurmctld", "-D", "-i"], env=env))
    time.sleep(1)
    daemons.append(subprocess.Popen(["slurmd", "-D"], env=env))
    try:
        if not _idle(env):
            pytest.skip(
                f"SLURM did not start: {tail(root / 'slurmctld.log', 5)} {tail(root / 'slurmd.log', 5)}"
            )
        yield env
    finally:
        for daemon in reversed(daemons):
            daemon.terminate()
            try:
                daemon.wait(timeout=10)
            except subprocess.TimeoutExpired:
                daemon.kill()


@pytest.fixture
def slurm_env(slurm_cluster: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLURM_CONF", slurm_cluster["SLURM_CONF"])


LAUNCH = LaunchParams(
    launcher="slurm", nnodes=1, nproc_per_node=1, slurm=SlurmParams(poll_s=1, time_limit="10:00")
)


def test_slurm_runs_srun_torchrun_training(tmp_path: Path, slurm_env: None) -> None:
    run_dir = tmp_path / "run"
    small = ["data.batch_size_per_rank=2", "crops.global_size=56", "crops.local_size=28", "crops.n_local=2"]
    args = [
        "pretrain",
        "--config",
        "debug",
        "--run-dir",
        str(run_dir),
        "--max-steps",
        "2",
        "--no-progress",
        *small,
    ]
    outcome = run_slurm(LAUNCH, args, run_dir)
    assert (outcome.state, outcome.returncode) == ("COMPLETED", 0), tail(outcome.log_path)
    assert (run_dir / "result.json").exists() and outcome.log_path.exists()
    assert "completed: debug, 2 steps" in outcome.log_path.read_text()


def test_slurm_failure_comes_back_with_state_and_log(tmp_path: Path, slurm_env: None) -> None:
    run_dir = tmp_path / "bad"
    args = ["pretrain", "--config", "debug", "--run-dir", str(run_dir), "optim.no_such_key=1"]
    outcome = run_slurm(LAUNCH, args, run_dir)
    assert outcome.state == "FAILED" and outcome.returncode != 0
    assert "no_such_key" in outcome.log_path.read_text()
