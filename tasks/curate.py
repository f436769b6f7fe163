"""Curation tasks: fetch shards, process each shard (on the Dask task runner), then finish.

``fetch_shards`` validates the input and downloads (img2dataset) or lists it into shards;
``process_shard`` inspects and NSFW-scores one shard into the per-shard files the library reuses;
``finish_curation`` calls ``data_filters.pipeline.curate`` on the same directory and the same Dask
cluster: it finds every per-shard file done, and runs the cross-shard part (dedup,
decontamination, manifest, kept shards, report). Everything is resumable by the library's own
files, so a retry or a rerun redoes only what is missing.
"""

from __future__ import annotations

from pathlib import Path

from prefect import task

from data_filters.config import CurateConfig, DaskConfig
from data_filters.pipeline import curate, shard_files
from data_filters.shards import ShardRef
from data_filters.workdir import WorkDir
from franca_core.config.loading import apply_overrides
from tasks.faults import fail_if_asked
from tasks.links import prefect_tags
from tasks.results import CurateOutput, sha256_file, stage_key
from tasks.samples import resolved_source
from tasks.specs import CurateSpec, DataRef, Spec


class ShardJob(Spec):
    """One input shard, as plain data."""

    name: str
    kind: str
    rows_path: str
    tar_path: str | None = None

    def ref(self) -> ShardRef:
        tar = Path(self.tar_path) if self.tar_path else None
        return ShardRef(
            self.name, "folder" if self.kind == "folder" else "img2dataset", Path(self.rows_path), tar
        )


class ShardDone(Spec):
    """What processing one shard produced."""

    name: str
    n_rows: int
    n_passed: int
    reused: bool


def curate_config(spec: CurateSpec, source: Path, dask_address: str | None = None) -> CurateConfig:
    """The library config of a spec: its fields, then the dotted overrides."""
    base = CurateConfig(
        source=source,
        out_dir=Path(spec.out_dir),
        samples_per_shard=spec.samples_per_shard,
        dask=DaskConfig(address=dask_address or spec.dask_address, n_workers=spec.dask_workers),
        progress=False,
    )
    return apply_overrides(base, spec.overrides)


@task(name="fetch-shards", retries=2, retry_delay_seconds=[10, 60], tags=["io"])
def fetch_shards(spec: CurateSpec) -> list[ShardJob]:
    """Check the input and the NSFW detector, then download or list it into shards."""
    from data_filters.download import fetch
    from data_filters.nsfw import check_detector
    from data_filters.sources import load_source

    fail_if_asked("curate")
    with resolved_source(spec.source, Path(spec.out_dir)) as source:
        config = curate_config(spec, source)
        rows = load_source(config.source, config.url_col, config.caption_col)
        check_detector(config.nsfw)
        workdir = WorkDir(config.out_dir)
        workdir.claim(config.source)
        shards = fetch(rows, workdir, config).shards
    return [
        ShardJob(name=s.name, kind=s.kind, rows_path=str(s.rows_path), tar_path=_opt(s.tar_path))
        for s in shards
    ]


def _opt(path: Path | None) -> str | None:
    return None if path is None else str(path)


@task(name="process-shard", retries=1, retry_delay_seconds=10)
def process_shard(job: ShardJob, spec: CurateSpec) -> ShardDone:
    """Inspect and NSFW-score one shard (reused when its files exist)."""
    from data_filters.inspection import inspect_shard
    from data_filters.nsfw import score_nsfw_shard

    config = curate_config(spec, Path(spec.source))  # the source itself is not read here
    shard = job.ref()
    files = shard_files(config, shard.name)  # the paths `curate` reuses
    found = inspect_shard(shard, config.integrity, files.inspection_path)
    if files.nsfw_path is not None:
        score_nsfw_shard(shard, files.inspection_path, config.integrity, config.nsfw, files.nsfw_path)
    return ShardDone(name=job.name, n_rows=found.n_rows, n_passed=found.n_passed, reused=found.reused)


@task(name="finish-curation", retries=1, retry_delay_seconds=30)
def finish_curation(spec: CurateSpec, done: list[ShardDone], dask_address: str | None) -> CurateOutput:
    """Dedup, manifest, kept shards and report on the shared cluster; returns the data reference."""
    with resolved_source(spec.source, Path(spec.out_dir)) as source:
        config = curate_config(spec, source, dask_address)
        result = curate(config)
    sha = sha256_file(result.manifest_path)
    data = DataRef(
        shards_dir=str(Path(spec.out_dir) / "shards"),
        manifest=str(result.manifest_path),
        manifest_sha256=sha,
        n_kept=result.n_kept,
    )
    drops = {f"dropped/{reason.value}": float(n) for reason, n in result.dropped_by_reason.items()}
    return CurateOutput(
        stage="curate",
        key=stage_key("curate", spec, spec.out_dir),
        out_dir=spec.out_dir,
        config=config.model_dump(mode="json", exclude={"dask"}),
        summary={"n_in": result.n_in, "n_kept": result.n_kept, "n_dropped": result.n_dropped, **drops},
        artifacts={"data": [str(result.manifest_path), str(result.report_path), str(result.summary_path)]},
        data_sha256=sha,
        prefect=prefect_tags(),
        data=data,
    )
