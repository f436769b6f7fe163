"""SLURM launcher: an sbatch script running ``srun torchrun`` on N nodes, polled until it ends.

The script asks for one task per node; each task runs torchrun with a c10d rendezvous on the
first node of the allocation, so the training code sees the usual torchrun environment on every
node and needs no SLURM-specific code. The job's output goes to ``<run_dir>/slurm-<jobid>.out``
(the run directory is on a shared file system, as training already requires); after the job ends
its state and exit code come from ``scontrol`` (or ``sacct`` once the job has left the
controller's memory).
"""

from __future__ import annotations

import re
import shlex
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from tasks.launch import LaunchOutcome, StopCheck, torchrun_args
from tasks.specs import LaunchParams

TERMINAL = frozenset(
    {
        "BOOT_FAIL",
        "CANCELLED",
        "COMPLETED",
        "DEADLINE",
        "FAILED",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "PREEMPTED",
        "TIMEOUT",
    }
)


def sbatch_script(launch: LaunchParams, cli_args: Sequence[str], run_dir: Path, workdir: Path) -> str:
    """The batch script: resources, setup lines, then srun torchrun with a c10d rendezvous."""
    s = launch.slurm
    options = [
        "--job-name=franca-" + (cli_args[0] if cli_args else "train"),
        f"--nodes={launch.nnodes}",
        "--ntasks-per-node=1",
        f"--output={run_dir.resolve()}/slurm-%j.out",
        f"--time={s.time_limit}",
    ]
    options += [f"--partition={s.partition}"] if s.partition else []
    options += [f"--account={s.account}"] if s.account else []
    options += [f"--gpus-per-node={s.gpus_per_node}"] if s.gpus_per_node else []
    options += [f"--cpus-per-task={s.cpus_per_task}"] if s.cpus_per_task else []
    options += list(s.extra_sbatch)
    rdzv = [
        "--nnodes",
        "$SLURM_JOB_NUM_NODES",
        "--rdzv-id",
        "$SLURM_JOB_ID",
        "--rdzv-backend",
        "c10d",
        "--rdzv-endpoint",
        f"$head:{s.rdzv_port}",
    ]
    command = torchrun_args(launch.nproc_per_node, cli_args, rdzv)
    # Quote everything except the $VARIABLES the job fills in.
    quoted = " ".join(f'"{a}"' if a.startswith("$") else shlex.quote(a) for a in command)
    lines = ["#!/bin/bash", *(f"#SBATCH {o}" for o in options), "set -euo pipefail", *s.setup]
    lines += [
        f"cd {shlex.quote(str(workdir))}",
        'head=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)',
        f"srun --kill-on-bad-exit=1 {quoted}",
    ]
    return "\n".join(lines) + "\n"


def submit(script: Path) -> str:
    """``sbatch --parsable``; returns the job id."""
    out = subprocess.run(["sbatch", "--parsable", str(script)], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"sbatch failed ({out.returncode}): {out.stderr.strip() or out.stdout.strip()}")
    return out.stdout.strip().split(";")[0]


def _exit_code(text: str) -> int:
    """SLURM's ``code:signal`` as one number: the code, or 128 + signal when killed by one."""
    code, _, sig = text.partition(":")
    return 128 + int(sig) if sig and int(sig) else int(code or 0)


def job_state(job_id: str) -> tuple[str, int | None]:
    """(state, exit code or None) from scontrol, else sacct; ('UNKNOWN', None) if neither knows it."""
    out = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True)
    state = re.search(r"\bJobState=(\S+)", out.stdout)
    if out.returncode == 0 and state:
        code = re.search(r"\bExitCode=(\d+:\d+)", out.stdout)
        return state.group(1), _exit_code(code.group(1)) if code else None
    acct = subprocess.run(
        ["sacct", "-n", "-P", "-X", "-j", job_id, "-o", "State,ExitCode"], capture_output=True, text=True
    )
    first = acct.stdout.strip().splitlines()[:1]
    if acct.returncode == 0 and first:
        state_text, _, code_text = first[0].partition("|")
        return state_text.split()[0], _exit_code(code_text)
    return "UNKNOWN", None


def run_slurm(
    launch: LaunchParams, cli_args: Sequence[str], run_dir: Path, should_stop: StopCheck | None = None
) -> LaunchOutcome:
    """Submit, poll every ``slurm.poll_s`` until a terminal state, and return state, code and log."""
    run_dir.mkdir(parents=True, exist_ok=True)
    script = run_dir / "launch.sbatch"
    script.write_text(sbatch_script(launch, cli_args, run_dir, Path.cwd()))
    job_id = submit(script)
    (run_dir / "slurm_job_id").write_text(job_id + "\n")
    state, code = "PENDING", None
    try:
        while state not in TERMINAL:
            time.sleep(launch.slurm.poll_s)
            state, code = job_state(job_id)
            if state == "UNKNOWN":
                break
            if should_stop is not None and should_stop() and state not in TERMINAL:
                subprocess.run(["scancel", "--signal=KILL", "--full", job_id], check=False)
    except BaseException:
        subprocess.run(["scancel", job_id], check=False)
        raise
    log_path = run_dir / f"slurm-{job_id}.out"
    return LaunchOutcome(code if code is not None else -1, state.rstrip("+"), log_path, job_id)
