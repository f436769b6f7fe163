"""Fixtures of the curation tests: the loopback server, the URL list, and one end-to-end run.

The end-to-end run (real img2dataset download from 127.0.0.1, 2-worker Dask LocalCluster) is
session-scoped: several tests read its manifest, report and shards, and the kill/resume test
compares against it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest

# The helper modules beside this file (curate_*.py) are imported by name, in any import mode.
sys.path.insert(0, str(Path(__file__).parent))

from curate_catalogue import Case, catalogue, eval_folder_images
from curate_server import LoopbackServer
from curate_support import EndToEnd, config_for

from data_filters.config import DaskConfig

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")


@pytest.fixture(scope="session")
def cases() -> list[Case]:
    return catalogue()


@pytest.fixture(scope="session")
def loopback(cases: list[Case]) -> Iterator[LoopbackServer]:
    server = LoopbackServer(cases)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def url_file(tmp_path_factory: pytest.TempPathFactory, cases: list[Case], loopback: LoopbackServer) -> Path:
    path = tmp_path_factory.mktemp("urls") / "urls.parquet"
    frame = pd.DataFrame(
        {
            "url": [c.url(loopback.base_url) for c in cases],
            "caption": [f"caption of {c.name}" for c in cases],
            "punsafe": [c.punsafe for c in cases],
            "similarity": [round(0.2 + 0.01 * i, 2) for i in range(len(cases))],  # LAION metadata, carried
        }
    )
    frame.to_parquet(path, index=False)
    return path


@pytest.fixture(scope="session")
def eval_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("eval") / "evalset"
    folder.mkdir()
    for name, payload in eval_folder_images().items():
        (folder / name).write_bytes(payload)
    return folder


@pytest.fixture(scope="session")
def cli_args(url_file: Path, eval_folder: Path) -> Callable[[Path], list[str]]:
    """``franca curate`` arguments for the catalogue, writing to a given directory."""

    def build(out: Path) -> list[str]:
        return [
            "--urls", str(url_file), "--out", str(out), "--eval-sets", str(eval_folder),
            "--samples-per-shard", "8", "--timeout", "2", "--threads", "8", "--no-progress",
        ]  # fmt: skip

    return build


@pytest.fixture(scope="session")
def end_to_end(
    tmp_path_factory: pytest.TempPathFactory, cli_args: Callable[[Path], list[str]], loopback: LoopbackServer
) -> EndToEnd:
    from data_filters.pipeline import curate

    out = tmp_path_factory.mktemp("e2e") / "out"
    config = config_for(cli_args(out))
    two_processes = DaskConfig(n_workers=2, threads_per_worker=1, processes=True, memory_limit="2GiB")
    config = config.model_copy(update={"dask": two_processes})
    result = curate(config)
    return EndToEnd(config, pd.read_parquet(result.manifest_path), loopback.total_hits())
