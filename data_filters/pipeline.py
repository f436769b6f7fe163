"""``curate(config)``: the whole curation stage as one resumable library call.

Stages: validate the input (before any work) and start the NSFW detector (so a broken detector
fails first, not after the download) -> fetch shards -> inspect each shard -> score each shard ->
decontaminate and deduplicate across shards -> manifest -> write kept shards -> report. Per-shard
results are files (see ``workdir``), so a rerun on the same directory, after a crash or a kill,
redoes only what is missing and produces the same manifest.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from distributed import Client

from data_filters.cluster import dask_client, map_with_progress
from data_filters.config import CurateConfig
from data_filters.dedup import CandidateSource, DedupDrops, deduplicate
from data_filters.download import fetch
from data_filters.evalsets import EvalSetError, load_eval_hashes
from data_filters.hashing import HASH_VERSION
from data_filters.inspection import ShardInspection, inspect_shard
from data_filters.manifest import ShardFiles, build_manifest
from data_filters.neardup import HashIndex, build_index
from data_filters.nsfw import NsfwShardScores, check_detector, score_nsfw_shard
from data_filters.reasons import Reason, Status
from data_filters.report import StageClock, build_report, summary_text
from data_filters.shards import ShardRef
from data_filters.sources import InputRows, load_source
from data_filters.workdir import (
    WorkDir,
    fingerprint,
    source_fingerprint,
    write_parquet_atomic,
    write_text_atomic,
)
from data_filters.writer import WrittenShard, write_kept_shard


@dataclass(frozen=True)
class CurateResult:
    """Where a run's outputs are and what it decided."""

    out_dir: Path
    manifest_path: Path
    report_path: Path
    summary_path: Path
    shard_paths: tuple[Path, ...]
    n_in: int
    n_kept: int
    n_dropped: int
    dropped_by_reason: dict[Reason, int]


def curate(config: CurateConfig) -> CurateResult:
    """Curate ``config.source`` into ``config.out_dir``; resumes when the directory exists."""
    clock = StageClock()
    rows = load_source(config.source, config.url_col, config.caption_col)
    detector = check_detector(config.nsfw)
    for path in config.decontam.eval_sets:
        if not path.exists():
            raise EvalSetError(f"evaluation set {path} does not exist")
    workdir = WorkDir(config.out_dir)
    workdir.claim(config.source)
    with dask_client(config.dask) as client:
        manifest, written = _run_stages(client, rows, workdir, config, clock)
    report = build_report(config, rows.kind, manifest, detector, clock)
    write_parquet_atomic(workdir.manifest_path, manifest)
    write_text_atomic(workdir.report_path, report.model_dump_json(indent=2))
    summary = summary_text(report)
    write_text_atomic(workdir.summary_path, summary)
    return CurateResult(
        out_dir=workdir.root,
        manifest_path=workdir.manifest_path,
        report_path=workdir.report_path,
        summary_path=workdir.summary_path,
        shard_paths=tuple(w.path for w in written),
        n_in=report.n_in,
        n_kept=report.n_kept,
        n_dropped=report.n_dropped,
        dropped_by_reason={Reason(k): v for k, v in report.dropped_by_reason.items()},
    )


def _run_stages(
    client: Client, rows: InputRows, workdir: WorkDir, config: CurateConfig, clock: StageClock
) -> tuple[pd.DataFrame, list[WrittenShard]]:
    since = clock.now()
    fetched = fetch(rows, workdir, config)
    clock.record("download", since, len(fetched.shards), "shards", fetched.reused)
    shards = list(fetched.shards)
    files = _inspect(client, shards, config, clock)
    files = _score(client, shards, files, config, clock)
    since = clock.now()
    eval_labels, eval_index = _eval_index(client, config)
    drops = _dedup(client, files, rows, config, eval_index)
    clock.record("dedup", since, len(files), "shards")
    manifest = build_manifest(rows, files, config.nsfw, drops, eval_labels)
    written = _write(client, shards, files, manifest, workdir, config, clock)
    return manifest, written


def shard_files(config: CurateConfig, shard_name: str) -> ShardFiles:
    """Where ``curate`` keeps one shard's inspection and detector scores (its resume files).

    An orchestrator fanning out ``inspect_shard`` / ``score_nsfw_shard`` per shard should write
    to these paths, so that a later ``curate`` on the same directory reuses the results.
    """
    workdir = WorkDir(config.out_dir)
    inspect_key = fingerprint(config.integrity, HASH_VERSION)  # another hash recipe recomputes
    inspection = workdir.stage_dir("inspect", inspect_key) / f"{shard_name}.parquet"
    nsfw = config.nsfw
    if nsfw.resolved_detector == "none":
        return ShardFiles(shard_name, inspection, None)
    identity = f"{nsfw.resolved_detector}|{nsfw.clip_model}|{nsfw.clip_head}|{nsfw.clip_arch}"
    scores = workdir.stage_dir("nsfw", fingerprint(config.integrity, identity)) / f"{shard_name}.parquet"
    return ShardFiles(shard_name, inspection, scores)


def _inspect(
    client: Client, shards: list[ShardRef], config: CurateConfig, clock: StageClock
) -> list[ShardFiles]:
    since = clock.now()
    jobs = [(s, shard_files(config, s.name).inspection_path) for s in shards]
    done: list[ShardInspection] = map_with_progress(
        client, _inspect_task, jobs, "inspect", config.progress, config=config
    )
    clock.record("inspect", since, sum(d.n_rows for d in done), "rows", sum(d.reused for d in done))
    return [ShardFiles(s.name, d.path, None) for s, d in zip(shards, done)]


def _inspect_task(job: tuple[ShardRef, Path], config: CurateConfig) -> ShardInspection:
    return inspect_shard(job[0], config.integrity, job[1])


def _score(
    client: Client, shards: list[ShardRef], files: list[ShardFiles], config: CurateConfig, clock: StageClock
) -> list[ShardFiles]:
    if config.nsfw.resolved_detector == "none":
        return files
    since = clock.now()
    jobs = [(s, f.inspection_path, shard_files(config, s.name).nsfw_path) for s, f in zip(shards, files)]
    done: list[NsfwShardScores] = map_with_progress(
        client, _score_task, jobs, "nsfw", config.progress, config=config
    )
    clock.record("nsfw", since, sum(d.n_scored for d in done), "images", sum(d.reused for d in done))
    return [ShardFiles(f.name, f.inspection_path, d.path) for f, d in zip(files, done)]


def _score_task(job: tuple[ShardRef, Path, Path], config: CurateConfig) -> NsfwShardScores:
    return score_nsfw_shard(job[0], job[1], config.integrity, config.nsfw, job[2])


def _eval_index(client: Client, config: CurateConfig) -> tuple[list[str], HashIndex | None]:
    if not config.decontam.eval_sets:
        return [], None
    hashes = load_eval_hashes(config.decontam.eval_sets, client)
    return list(hashes.labels), build_index(hashes.phash, config.decontam.hamming_radius)


def _dedup(
    client: Client,
    files: list[ShardFiles],
    rows: InputRows,
    config: CurateConfig,
    eval_index: HashIndex | None,
) -> DedupDrops:
    punsafe = rows.frame["punsafe"]
    excluded = rows.frame.loc[punsafe > config.nsfw.punsafe_threshold, "row_id"].to_numpy(np.int64)
    sources = [CandidateSource(f.inspection_path, f.nsfw_path) for f in files]
    threshold = config.nsfw.detector_threshold
    return deduplicate(client, sources, config.dedup, threshold, excluded, eval_index)


def _decision_fingerprint(config: CurateConfig) -> str:
    eval_sets = "|".join(source_fingerprint(p) for p in config.decontam.eval_sets)
    return fingerprint(config.integrity, config.nsfw, config.dedup, config.decontam, eval_sets, HASH_VERSION)


def _write(
    client: Client,
    shards: list[ShardRef],
    files: list[ShardFiles],
    manifest: pd.DataFrame,
    workdir: WorkDir,
    config: CurateConfig,
    clock: StageClock,
) -> list[WrittenShard]:
    since = clock.now()
    workdir.reset_shards(_decision_fingerprint(config))
    kept = manifest[manifest["status"] == Status.KEPT.value]
    by_shard = {name: group for name, group in kept.groupby("shard", sort=False)}
    jobs = []
    for shard, shard_files in zip(shards, files):
        rows = by_shard.get(f"{shard.name}.tar", kept.iloc[0:0])
        jobs.append((shard, rows, shard_files.inspection_path, workdir.shards_dir / f"{shard.name}.tar"))
    written: list[WrittenShard] = map_with_progress(
        client, _write_task, jobs, "write", config.progress, config=config
    )
    clock.record("write", since, sum(w.n_samples for w in written), "images", sum(w.reused for w in written))
    return written


def _write_task(job: tuple[ShardRef, pd.DataFrame, Path, Path], config: CurateConfig) -> WrittenShard:
    return write_kept_shard(job[0], job[1], job[2], config.integrity, job[3])
