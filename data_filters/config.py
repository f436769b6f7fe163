"""Typed configuration of the curation stage (issue 5).

Every knob of ``franca curate`` lives here as a frozen pydantic model with a description per
field, so a Prefect task can take a ``CurateConfig`` as its parameter schema and a run directory
can record exactly what produced it. The sub-configs are also the fingerprints that decide which
cached per-shard results a rerun may reuse (see ``data_filters.workdir``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

NsfwDetectorName = Literal["auto", "opennsfw", "clip", "none"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DownloadConfig(_Frozen):
    """How img2dataset fetches a URL list."""

    timeout_s: int = Field(10, ge=1, description="Per-request timeout in seconds.")
    retries: int = Field(0, ge=0, description="Extra attempts per URL after a failed download.")
    thread_count: int = Field(32, ge=1, description="Download threads per img2dataset process.")
    processes: int = Field(1, ge=1, description="img2dataset worker processes (one shard each at a time).")
    user_agent_token: str | None = Field(
        "franca-curate", description="Token added to the User-Agent so site owners can identify the crawler."
    )
    respect_robots_headers: bool = Field(
        True, description="Skip images whose X-Robots-Tag says noai / noimageai / noindex / noimageindex."
    )


class IntegrityConfig(_Frozen):
    """Checks every image must pass after a full decode."""

    min_side: int = Field(64, ge=1, description="Minimum width and height in pixels (after EXIF rotation).")
    max_aspect_ratio: float = Field(3.0, ge=1.0, description="Maximum long side / short side.")
    max_pixels: int = Field(
        40_000_000, ge=1, description="Maximum declared width x height; larger files are not decoded (bombs)."
    )
    jpeg_quality: int = Field(
        95, ge=1, le=100, description="Quality used when a normalised JPEG is re-encoded."
    )


class NsfwConfig(_Frozen):
    """NSFW scoring: the LAION ``punsafe`` column when present, plus one image detector."""

    detector: NsfwDetectorName = Field(
        "auto",
        description="'auto': 'clip' if clip_model is given, else 'opennsfw'; 'none' turns image scoring off.",
    )
    clip_model: Path | None = Field(
        None,
        description="Local open_clip weights: a directory with open_clip_config.json, or a weights file.",
    )
    clip_head: Path | None = Field(
        None, description="Local NSFW head (safetensors) applied to CLIP embeddings."
    )
    clip_arch: str = Field(
        "ViT-L-14", description="open_clip architecture name, used when clip_model is a single weights file."
    )
    punsafe_threshold: float = Field(0.5, ge=0.0, le=1.0, description="Drop rows whose punsafe exceeds this.")
    detector_threshold: float = Field(
        0.5, ge=0.0, le=1.0, description="Drop images whose detector probability exceeds this."
    )
    batch_size: int = Field(32, ge=1, description="Images per detector forward pass.")

    @model_validator(mode="after")
    def _clip_paths_together(self) -> NsfwConfig:
        if (self.clip_model is None) != (self.clip_head is None):
            raise ValueError("nsfw: clip_model and clip_head must be given together")
        if self.detector == "clip" and self.clip_model is None:
            raise ValueError("nsfw: detector='clip' needs clip_model and clip_head (local paths)")
        return self

    @property
    def resolved_detector(self) -> Literal["opennsfw", "clip", "none"]:
        """The detector that actually runs once 'auto' is resolved."""
        if self.detector == "auto":
            return "clip" if self.clip_model is not None else "opennsfw"
        return self.detector


class DedupConfig(_Frozen):
    """Exact and near-duplicate removal across all shards."""

    exact: bool = Field(True, description="Drop images whose decoded RGB pixels are identical to another's.")
    near: bool = Field(True, description="Drop images whose perceptual hash is within hamming_radius.")
    hamming_radius: int = Field(
        4, ge=0, le=16, description="Near-duplicate radius in bits of the 64-bit pHash."
    )
    n_bands: int | None = Field(
        None, ge=3, le=16, description="Multi-index bands; None picks the cheapest from a cost model."
    )
    query_chunk: int = Field(65_536, ge=1, description="Hashes per near-duplicate search task.")
    hash_buckets: int = Field(16, ge=1, description="Partitions of the exact-dedup shuffle.")


class DecontamConfig(_Frozen):
    """Drop training images that are near-duplicates of evaluation images."""

    eval_sets: tuple[Path, ...] = Field(
        (), description="Image folders, or parquet manifests with a 'phash' column (e.g. a curate manifest)."
    )
    hamming_radius: int = Field(6, ge=0, le=16, description="pHash radius counted as contamination.")


class DaskConfig(_Frozen):
    """Where per-shard work and dedup run."""

    address: str | None = Field(None, description="Scheduler address; None starts a LocalCluster.")
    n_workers: int = Field(1, ge=1, description="LocalCluster workers.")
    threads_per_worker: int | None = Field(None, ge=1, description="LocalCluster threads; None = CPU count.")
    processes: bool = Field(False, description="LocalCluster workers as processes instead of threads.")
    memory_limit: str = Field("4GiB", description="LocalCluster memory limit per worker.")
    dashboard_port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="LocalCluster dashboard on 127.0.0.1 at this port (0: any free port); None: off.",
    )


class CurateConfig(_Frozen):
    """One curation run: a URL list (or image folder) in, clean shards and a manifest out."""

    source: Path = Field(description="URL list (.parquet, .csv, .jsonl) or a folder of images.")
    out_dir: Path = Field(description="Output directory; rerunning on the same directory resumes.")
    url_col: str = Field("url", description="Column holding the image URL.")
    caption_col: str = Field("caption", description="Optional caption column, kept when present.")
    samples_per_shard: int = Field(10_000, ge=1, description="Input rows per download / output shard.")
    download: DownloadConfig = Field(default_factory=DownloadConfig, description="Downloader settings.")
    integrity: IntegrityConfig = Field(default_factory=IntegrityConfig, description="Decode checks.")
    nsfw: NsfwConfig = Field(default_factory=NsfwConfig, description="NSFW scoring and thresholds.")
    dedup: DedupConfig = Field(default_factory=DedupConfig, description="Exact / near-duplicate removal.")
    decontam: DecontamConfig = Field(
        default_factory=DecontamConfig, description="Evaluation-set decontamination."
    )
    dask: DaskConfig = Field(default_factory=DaskConfig, description="Cluster settings.")
    progress: bool = Field(True, description="Show progress bars on stderr.")
