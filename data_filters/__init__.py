"""Curation library of the Franca pipeline (issue 5): URL lists or image folders in; clean,
deduplicated, NSFW-filtered webdataset shards and a manifest with a reason for every row out.

No Prefect and no MLflow here. The whole stage is ``curate(CurateConfig(...)) -> CurateResult``;
the per-shard units an orchestrator can fan out are ``fetch``, ``inspect_shard``,
``score_nsfw_shard``, ``deduplicate`` and ``write_kept_shard``; ``shard_files`` says where the
per-shard results must go for ``curate`` to reuse them. Names are imported lazily so that
``import data_filters.config`` stays light (Dask, torch and img2dataset load only when used).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from data_filters.config import CurateConfig, DedupConfig, IntegrityConfig, NsfwConfig
    from data_filters.dedup import deduplicate
    from data_filters.download import fetch
    from data_filters.inspection import inspect_shard
    from data_filters.neardup import brute_force_pairs, build_index, search, search_self
    from data_filters.nsfw import score_nsfw_shard
    from data_filters.pipeline import CurateResult, curate, shard_files
    from data_filters.reasons import Reason, Status
    from data_filters.sources import InputFileError, load_source
    from data_filters.writer import write_kept_shard

_EXPORTS = {
    "CurateConfig": "data_filters.config",
    "DedupConfig": "data_filters.config",
    "IntegrityConfig": "data_filters.config",
    "NsfwConfig": "data_filters.config",
    "deduplicate": "data_filters.dedup",
    "fetch": "data_filters.download",
    "inspect_shard": "data_filters.inspection",
    "brute_force_pairs": "data_filters.neardup",
    "build_index": "data_filters.neardup",
    "search": "data_filters.neardup",
    "search_self": "data_filters.neardup",
    "score_nsfw_shard": "data_filters.nsfw",
    "CurateResult": "data_filters.pipeline",
    "curate": "data_filters.pipeline",
    "shard_files": "data_filters.pipeline",
    "Reason": "data_filters.reasons",
    "Status": "data_filters.reasons",
    "InputFileError": "data_filters.sources",
    "load_source": "data_filters.sources",
    "write_kept_shard": "data_filters.writer",
}
__all__ = [
    "CurateConfig",
    "CurateResult",
    "DedupConfig",
    "InputFileError",
    "IntegrityConfig",
    "NsfwConfig",
    "Reason",
    "Status",
    "brute_force_pairs",
    "build_index",
    "curate",
    "deduplicate",
    "fetch",
    "inspect_shard",
    "load_source",
    "score_nsfw_shard",
    "search",
    "search_self",
    "shard_files",
    "write_kept_shard",
]


def __getattr__(name: str) -> object:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'data_filters' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
