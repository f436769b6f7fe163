"""Real servers on 127.0.0.1 for the integration tests: MLflow and Prefect, started and stopped here."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
QUIET = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    "NO_ALBUMENTATIONS_UPDATE": "1",
    "DO_NOT_TRACK": "1",
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False


class Server:
    """A server process in its own session (so all its workers stop together), with a health URL."""

    def __init__(
        self,
        argv: list[str],
        health: str | None,
        log: Path,
        env: dict[str, str] | None = None,
        stop_signal: int = signal.SIGTERM,
    ) -> None:
        self.argv, self.health, self.log, self.stop_signal = argv, health, log, stop_signal
        self.env = {**os.environ, **QUIET, **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Server:
        handle = self.log.open("ab")
        self.process = subprocess.Popen(
            self.argv, stdout=handle, stderr=subprocess.STDOUT, env=self.env, cwd=REPO, start_new_session=True
        )
        return self

    @property
    def url(self) -> str:
        """Base URL (the health URL without its last part)."""
        assert self.health is not None
        return self.health.rsplit("/", 1)[0]

    def wait(self, timeout_s: float = 180) -> Server:
        if self.health is None:
            return self
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if healthy(self.health):
                return self
            if self.process is not None and self.process.poll() is not None:
                break
            time.sleep(0.5)
        raise RuntimeError(f"{self.argv[:3]} did not become healthy; log:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, self.stop_signal)
            self.process.wait(timeout=20)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.process = None


class ServerPool:
    """Servers of one test (or module): started on request, all stopped at the end."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.started: list[Server] = []

    def add(self, server: Server) -> Server:
        self.started.append(server)
        return server

    def mlflow(self, port: int | None = None, name: str = "mlflow") -> Server:
        """An MLflow tracking server (SQLite + proxied artifacts under root/name) on 127.0.0.1."""
        store = self.root / name
        store.mkdir(parents=True, exist_ok=True)
        port = port or free_port()
        argv = [
            str(VENV_BIN / "mlflow"),
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ]
        argv += [
            "--backend-store-uri",
            f"sqlite:///{store / 'mlflow.db'}",
            "--artifacts-destination",
            str(store / "art"),
        ]
        return self.add(Server(argv, f"http://127.0.0.1:{port}/health", store / "server.log"))

    def prefect(self, port: int | None = None) -> Server:
        """A Prefect server with its own home (database) under root/prefect, on 127.0.0.1."""
        home = self.root / "prefect"
        home.mkdir(parents=True, exist_ok=True)
        port = port or free_port()
        argv = [str(VENV_BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)]
        env = {"PREFECT_HOME": str(home), "PREFECT_UI_ENABLED": "false"}
        return self.add(Server(argv, f"http://127.0.0.1:{port}/api/health", home / "server.log", env))

    def worker(self, pool: str, env: dict[str, str]) -> Server:
        """A Prefect worker polling ``pool`` every second (it stops on SIGINT, not SIGTERM)."""
        argv = [str(VENV_BIN / "prefect"), "worker", "start", "--pool", pool]
        env = {"PREFECT_WORKER_QUERY_SECONDS": "1", **env}
        return self.add(Server(argv, None, self.root / "worker.log", env, stop_signal=signal.SIGINT))

    def stop_all(self) -> None:
        for server in reversed(self.started):
            server.stop()


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[ServerPool]:
    pool = ServerPool(tmp_path)
    yield pool
    pool.stop_all()


@pytest.fixture(scope="module")
def module_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerPool]:
    pool = ServerPool(tmp_path_factory.mktemp("servers"))
    yield pool
    pool.stop_all()
