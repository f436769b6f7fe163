"""Issue 5 acceptance: killing the stage mid-way and rerunning gives the uninterrupted manifest."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from curate_server import LoopbackServer
from curate_support import EndToEnd

from data_filters import pipeline
from data_filters.pipeline import curate

pytestmark = pytest.mark.integration
ENV = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"}


def _shard_bytes(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((out / "shards").glob("*.tar"))}


def _wait_for_first_shard(process: subprocess.Popen[bytes], out: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and process.poll() is None:
        if any((out / "work" / "download").glob("*_stats.json")):
            return
        time.sleep(0.05)
    raise AssertionError("the first shard never finished downloading")


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_manifest(
    tmp_path: Path, cli_args: Callable[[Path], list[str]], end_to_end: EndToEnd
) -> None:
    out = tmp_path / "out"
    command = [sys.executable, "-m", "data_filters.cli", *cli_args(out)]
    log = (tmp_path / "killed.log").open("wb")
    process = subprocess.Popen(command, env=ENV, stdout=log, stderr=log, start_new_session=True)
    try:
        _wait_for_first_shard(process, out, timeout_s=180)
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # the whole group: img2dataset's pool included
        process.wait()
    assert not (out / "manifest.parquet").exists(), "the kill came too late to test anything"
    finished = len(list((out / "work" / "download").glob("*_stats.json")))
    assert 1 <= finished < 4

    resumed = subprocess.run(command, env=ENV, capture_output=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr.decode()[-3000:]
    pd.testing.assert_frame_equal(pd.read_parquet(out / "manifest.parquet"), end_to_end.manifest)
    assert _shard_bytes(out) == _shard_bytes(end_to_end.config.out_dir)


def test_lost_intermediate_files_are_rebuilt_identically(
    tmp_path: Path, end_to_end: EndToEnd, loopback: LoopbackServer
) -> None:
    out = tmp_path / "copy"
    shutil.copytree(end_to_end.config.out_dir, out)
    (out / "manifest.parquet").unlink()
    next((out / "work").glob("inspect-*/00001.parquet")).unlink()
    next((out / "work").glob("nsfw-*/00002.parquet")).unlink()
    (out / "shards" / "00000.tar").unlink()
    hits = loopback.total_hits()
    result = curate(end_to_end.config.model_copy(update={"out_dir": out}))
    pd.testing.assert_frame_equal(pd.read_parquet(result.manifest_path), end_to_end.manifest)
    assert _shard_bytes(out) == _shard_bytes(end_to_end.config.out_dir)
    assert loopback.total_hits() == hits  # finished shards are never fetched again


def _stale(values: pd.Series, mangle: Callable[[object], object]) -> pd.Series:
    return pd.Series([v if pd.isna(v) else mangle(v) for v in values], dtype=values.dtype)


def test_hashes_cached_by_another_recipe_are_recomputed(
    tmp_path: Path, end_to_end: EndToEnd, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hash values are part of what a per-shard file caches: a new recipe must not mix with them."""
    out = tmp_path / "copy"
    shutil.copytree(end_to_end.config.out_dir, out)
    (out / "manifest.parquet").unlink()
    for path in (out / "work").glob("inspect-*/*.parquet"):  # stand-ins for another recipe's values
        frame = pd.read_parquet(path)
        frame["phash"] = _stale(frame["phash"], lambda v: int(str(v)) ^ 0xFFFF)
        frame["pixel_hash"] = _stale(frame["pixel_hash"], lambda v: "0" * 32)  # all "equal pixels"
        frame.to_parquet(path, index=False)
    monkeypatch.setattr(pipeline, "HASH_VERSION", "the next recipe")
    result = curate(end_to_end.config.model_copy(update={"out_dir": out}))
    pd.testing.assert_frame_equal(pd.read_parquet(result.manifest_path), end_to_end.manifest)
    assert _shard_bytes(out) == _shard_bytes(end_to_end.config.out_dir)
    assert len(list((out / "work").glob("inspect-*"))) == 2  # the stale directory was left alone
