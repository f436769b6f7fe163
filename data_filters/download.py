"""Fetch stage: turn accepted input rows into input shards.

URL lists go through img2dataset (webdataset output, its ``incremental`` mode: a shard with a
``_stats.json`` is finished and never fetched again; an interrupted shard is fetched again from
scratch). img2dataset runs in a child process because it installs signal handlers and spawns its
own pool. We ask it for the original bytes (``disable_all_reencoding``) so that decoding and every
check happens once, in ``integrity``, with our reasons; its per-sample ``status`` and
``error_message`` are kept. A folder source is only listed into shards; files are read in place.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from data_filters.config import CurateConfig
from data_filters.shards import ShardRef, list_img2dataset_shards, write_folder_listing
from data_filters.sources import InputRows
from data_filters.workdir import WorkDir, write_parquet_atomic, write_text_atomic

# Environment for img2dataset and everything it spawns: no update checks, no telemetry.
QUIET_ENV = {"NO_ALBUMENTATIONS_UPDATE": "1", "WANDB_MODE": "disabled", "DO_NOT_TRACK": "1"}


class DownloadError(RuntimeError):
    """img2dataset did not finish every shard."""


@dataclass(frozen=True)
class FetchResult:
    """Input shards ready for inspection."""

    shards: tuple[ShardRef, ...]
    fetched: int
    reused: int
    seconds: float


def fetch(rows: InputRows, workdir: WorkDir, config: CurateConfig) -> FetchResult:
    """Download a URL list with img2dataset, or list a folder source into shards."""
    start = time.perf_counter()
    accepted = rows.accepted()
    if accepted.empty:
        return FetchResult((), 0, 0, time.perf_counter() - start)
    n_shards = math.ceil(len(accepted) / config.samples_per_shard)
    oom = max(5, len(str(n_shards - 1)))
    if rows.kind == "folder":
        shards, fetched = _list_folder(accepted, workdir.folder_dir, config.samples_per_shard, oom)
    else:
        shards, fetched = download_urls(accepted, workdir, config, oom)
    return FetchResult(tuple(shards), fetched, len(shards) - fetched, time.perf_counter() - start)


def _list_folder(
    accepted: pd.DataFrame, folder: Path, per_shard: int, oom: int
) -> tuple[list[ShardRef], int]:
    shards, written = [], 0
    row_ids, paths = accepted["row_id"].tolist(), accepted["url"].tolist()
    for shard_id, begin in enumerate(range(0, len(row_ids), per_shard)):
        path = folder / f"{shard_id:0{oom}d}.parquet"
        if not path.exists():
            write_folder_listing(path, row_ids[begin : begin + per_shard], paths[begin : begin + per_shard])
            written += 1
        shards.append(ShardRef(path.stem, "folder", path))
    return shards, written


def shard_finished(shard: ShardRef) -> bool:
    """img2dataset writes ``NNNNN_stats.json`` after closing the shard's tar and parquet."""
    stats = shard.rows_path.with_name(f"{shard.name}_stats.json")
    return (
        stats.exists() and shard.rows_path.exists() and shard.tar_path is not None and shard.tar_path.exists()
    )


def download_urls(
    accepted: pd.DataFrame, workdir: WorkDir, config: CurateConfig, oom: int
) -> tuple[list[ShardRef], int]:
    """Run img2dataset until every shard of ``accepted`` is finished; returns (shards, fetched now)."""
    list_path = workdir.work / "download_list.parquet"
    if not list_path.exists():
        write_parquet_atomic(list_path, accepted[["url", "caption", "row_id"]].reset_index(drop=True))
    n_shards = math.ceil(len(accepted) / config.samples_per_shard)
    shards = list_img2dataset_shards(workdir.download_dir, n_shards, oom)
    pending = [s for s in shards if not shard_finished(s)]
    if pending:
        run_img2dataset(list_path, workdir, config, oom, shards)
    missing = [s.name for s in shards if not shard_finished(s)]
    if missing:
        log = workdir.work / "img2dataset.log"
        raise DownloadError(
            f"img2dataset did not finish shard(s) {', '.join(missing[:10])}; see {log}. "
            "Rerun the same command to resume."
        )
    return shards, len(pending)


def img2dataset_arguments(list_path: Path, output: Path, config: CurateConfig, oom: int) -> dict[str, object]:
    """Keyword arguments of ``img2dataset.download`` for one run."""
    dl = config.download
    return {
        "url_list": str(list_path),
        "input_format": "parquet",
        "url_col": "url",
        "caption_col": "caption",
        "save_additional_columns": ["row_id"],
        "output_folder": str(output),
        "output_format": "webdataset",
        "number_sample_per_shard": config.samples_per_shard,
        "oom_shard_count": oom,
        "processes_count": dl.processes,
        "thread_count": dl.thread_count,
        "timeout": dl.timeout_s,
        "retries": dl.retries,
        "resize_mode": "no",
        "disable_all_reencoding": True,
        "encode_format": "jpg",
        "extract_exif": False,
        "compute_hash": None,
        "enable_wandb": False,
        "incremental_mode": "incremental",
        "user_agent_token": dl.user_agent_token,
        "disallowed_header_directives": None if dl.respect_robots_headers else [],
    }


def run_img2dataset(
    list_path: Path, workdir: WorkDir, config: CurateConfig, oom: int, shards: list[ShardRef]
) -> None:
    """Run img2dataset in a child process, showing finished shards as progress."""
    job = workdir.work / "img2dataset_job.json"
    write_text_atomic(job, json.dumps(img2dataset_arguments(list_path, workdir.download_dir, config, oom)))
    env = {**os.environ, **QUIET_ENV}
    command = [sys.executable, "-m", "data_filters.img2dataset_job", str(job)]
    with (workdir.work / "img2dataset.log").open("ab") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            _follow(process, shards, config.progress)
        finally:
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=30)
    if process.returncode != 0:
        raise DownloadError(
            f"img2dataset exited with status {process.returncode}; see {workdir.work}/img2dataset.log"
        )


def _follow(process: subprocess.Popen[bytes], shards: list[ShardRef], progress: bool) -> None:
    done = sum(shard_finished(s) for s in shards)
    with tqdm(total=len(shards), initial=done, desc="download", unit="shard", disable=not progress) as bar:
        while process.poll() is None:
            time.sleep(0.5)
            now = sum(shard_finished(s) for s in shards)
            bar.update(now - done)
            done = now
        bar.update(sum(shard_finished(s) for s in shards) - done)
