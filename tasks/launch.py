"""Start a training CLI in its own processes: torchrun on this host, or srun torchrun through SLURM.

Both launchers take the ``franca`` subcommand arguments (``["pretrain", "--config", ...]``), block
until the run ends, and return a ``LaunchOutcome`` (exit code, final state, log file). While they
wait they call ``should_stop()`` every few seconds; returning True kills the run (the task uses it
for injected preemptions). The training process writes its own run directory; nothing but files
crosses the boundary.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tasks.specs import LaunchParams

StopCheck = Callable[[], bool]


@dataclass(frozen=True)
class LaunchOutcome:
    """How a launched run ended."""

    returncode: int
    state: str  # COMPLETED, FAILED, KILLED, or a SLURM job state
    log_path: Path
    job_id: str | None = None

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and self.state == "COMPLETED"


def torchrun_args(nproc_per_node: int, cli_args: Sequence[str], rdzv: Sequence[str] = ()) -> list[str]:
    """``python -m torch.distributed.run ... -m franca_core.cli <cli_args>`` (this interpreter)."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        *(rdzv or ("--standalone", "--nnodes", "1")),
        "--nproc-per-node",
        str(nproc_per_node),
        "-m",
        "franca_core.cli",
        *cli_args,
    ]


def tail(path: Path, lines: int = 40) -> str:
    """The last lines of a log file ('' when missing)."""
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def run_process(
    argv: Sequence[str], log_path: Path, should_stop: StopCheck | None = None, poll_s: float = 0.5
) -> LaunchOutcome:
    """Run ``argv`` in its own session, output appended to ``log_path``; kill it when asked to stop."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log_file:
        log_file.write(f"\n$ {' '.join(argv)}\n".encode())
        log_file.flush()
        process = subprocess.Popen(
            list(argv), stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            while True:
                try:
                    code = process.wait(timeout=poll_s)
                    return LaunchOutcome(code, "COMPLETED" if code == 0 else "FAILED", log_path)
                except subprocess.TimeoutExpired:
                    if should_stop is not None and should_stop():
                        _kill_group(process)
                        return LaunchOutcome(-9, "KILLED", log_path)
        except BaseException:  # the task was cancelled: do not leave training running
            _kill_group(process)
            raise


def run_local(
    launch: LaunchParams, cli_args: Sequence[str], log_path: Path, should_stop: StopCheck | None = None
) -> LaunchOutcome:
    """torchrun on this host (``nproc_per_node`` processes); output appended to ``log_path``."""
    return run_process(torchrun_args(launch.nproc_per_node, cli_args), log_path, should_stop)


def run_training(
    launch: LaunchParams,
    cli_args: Sequence[str],
    run_dir: Path,
    should_stop: StopCheck | None = None,
) -> LaunchOutcome:
    """Dispatch on ``launch.launcher``."""
    if launch.launcher == "slurm":
        from tasks.slurm import run_slurm

        return run_slurm(launch, cli_args, run_dir, should_stop)
    return run_local(launch, cli_args, run_dir / "launch.log", should_stop)


def run_franca(cli_args: Sequence[str], log_path: Path) -> None:
    """Run ``franca <cli_args>`` in a fresh process (one rank, no torchrun); raise with the log tail."""
    outcome = run_process([sys.executable, "-m", "franca_core.cli", *cli_args], log_path)
    if not outcome.ok:
        raise RuntimeError(
            f"franca {cli_args[0]} failed (exit {outcome.returncode}); log {log_path}:\n{tail(log_path)}"
        )
