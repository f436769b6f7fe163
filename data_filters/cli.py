"""``franca curate``: command-line front of ``data_filters.curate``.

    franca curate --urls FILE_OR_FOLDER --out DIR [--eval-sets DIR ...] [--dask ADDRESS]
                  [--nsfw-model PATH --nsfw-head PATH] [--dashboard-port PORT]

Rerunning the same command on the same DIR resumes. Exit status: 0 done, 2 unusable input or
configuration (nothing was started), 1 the stage failed (rerun to resume).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from data_filters.config import (
    CurateConfig,
    DaskConfig,
    DecontamConfig,
    DedupConfig,
    DownloadConfig,
    IntegrityConfig,
    NsfwConfig,
)

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the ``curate`` options on ``parser``."""
    add = parser.add_argument
    add("--urls", type=Path, required=True, help="URL list (.parquet/.csv/.jsonl) or image folder")
    add("--out", type=Path, required=True, help="output directory (rerun to resume)")
    add("--url-col", default="url", help="URL column (LAION parquet files call it URL)")
    add("--caption-col", default="caption", help="caption column (LAION: TEXT)")
    add("--eval-sets", type=Path, nargs="+", default=[], help="folders or manifests to decontaminate")
    add("--dask", default=None, metavar="ADDRESS", help="Dask scheduler (default: LocalCluster)")
    add("--workers", type=int, default=1, help="LocalCluster workers")
    add("--dashboard-port", type=int, default=None, help="Dask dashboard on 127.0.0.1:PORT (0: free port)")
    add("--nsfw-model", type=Path, default=None, help="local open_clip model dir or weights file")
    parser.add_argument("--nsfw-head", type=Path, default=None, help="local CLIP NSFW head (safetensors)")
    parser.add_argument("--clip-arch", default="ViT-L-14", help="open_clip architecture for a weights file")
    parser.add_argument("--nsfw-detector", choices=["auto", "opennsfw", "clip", "none"], default="auto")
    parser.add_argument("--nsfw-threshold", type=float, default=0.5, help="drop above this detector score")
    parser.add_argument("--punsafe-threshold", type=float, default=0.5, help="drop above this punsafe")
    parser.add_argument("--min-side", type=int, default=64)
    parser.add_argument("--max-aspect", type=float, default=3.0)
    parser.add_argument("--max-pixels", type=int, default=40_000_000)
    parser.add_argument("--hamming-radius", type=int, default=4, help="near-duplicate pHash radius")
    parser.add_argument("--decontam-radius", type=int, default=6, help="evaluation-set pHash radius")
    parser.add_argument("--samples-per-shard", type=int, default=10_000)
    parser.add_argument("--timeout", type=int, default=10, help="download timeout (s)")
    parser.add_argument("--threads", type=int, default=32, help="download threads")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def config_from_args(args: argparse.Namespace) -> CurateConfig:
    """Build the typed config; raises pydantic.ValidationError on bad values."""
    return CurateConfig(
        source=args.urls,
        out_dir=args.out,
        url_col=args.url_col,
        caption_col=args.caption_col,
        samples_per_shard=args.samples_per_shard,
        download=DownloadConfig(timeout_s=args.timeout, thread_count=args.threads),
        integrity=IntegrityConfig(
            min_side=args.min_side, max_aspect_ratio=args.max_aspect, max_pixels=args.max_pixels
        ),
        nsfw=NsfwConfig(
            detector=args.nsfw_detector,
            clip_model=args.nsfw_model,
            clip_head=args.nsfw_head,
            clip_arch=args.clip_arch,
            punsafe_threshold=args.punsafe_threshold,
            detector_threshold=args.nsfw_threshold,
        ),
        dedup=DedupConfig(hamming_radius=args.hamming_radius),
        decontam=DecontamConfig(eval_sets=tuple(args.eval_sets), hamming_radius=args.decontam_radius),
        dask=DaskConfig(address=args.dask, n_workers=args.workers, dashboard_port=args.dashboard_port),
        progress=not args.no_progress,
    )


def run(args: argparse.Namespace) -> int:
    """Run the stage; print the summary. Returns the exit status."""
    from data_filters.errors import USER_ERRORS
    from data_filters.pipeline import curate

    try:
        config = config_from_args(args)
    except ValidationError as err:
        print(f"franca curate: invalid options:\n{err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        result = curate(config)
    except USER_ERRORS as err:
        print(f"franca curate: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as err:
        print(f"franca curate: failed: {type(err).__name__}: {err}", file=sys.stderr)
        print("Rerun the same command to resume.", file=sys.stderr)
        return EXIT_FAILED
    print(result.summary_path.read_text(), end="")
    print(f"manifest: {result.manifest_path}\nshards:   {result.out_dir / 'shards'}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Standalone entry point: ``python -m data_filters.cli ...``."""
    parser = argparse.ArgumentParser(prog="franca curate", description="curate a URL list or image folder")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
