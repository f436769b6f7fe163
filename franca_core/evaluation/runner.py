"""Run a suite: build the context, call each evaluator by name, write ``results.json``.

``results.json`` holds, under each evaluator's key (its name, or ``name/tag``), the protocol parameters
(the evaluator's config and its dataset's config), the metrics (the result dataclass as JSON) and the
run time. NaN becomes null so that the file is strict JSON.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import math
import time
from collections.abc import Collection
from pathlib import Path
from typing import Any

import torch
from torch import nn

from franca_core.evaluation.base import EvalContext, EvalResult
from franca_core.evaluation.features import FeatureSource
from franca_core.evaluation.registry import EVALUATORS
from franca_core.evaluation.suites import SuiteConfig, unset_datasets

log = logging.getLogger(__name__)


def _jsonable(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def result_to_json(result: EvalResult) -> dict[str, Any]:
    """A result dataclass as a JSON-ready dict (the only place results become string-keyed)."""
    assert dataclasses.is_dataclass(result) and not isinstance(result, type)
    return _jsonable(dataclasses.asdict(result))  # type: ignore[no-any-return]


def selected(suite: SuiteConfig, only: Collection[str] | None) -> list[Any]:
    """The suite's evaluator configs whose kind or key is in ``only`` (all when None)."""
    return [e for e in suite.evaluators if only is None or e.kind in only or e.key in only]


def run_suite(
    suite: SuiteConfig,
    source: FeatureSource,
    out_dir: Path,
    backbone: nn.Module | None = None,
    backbone_description: str = "",
    device: torch.device | None = None,
    only: Collection[str] | None = None,
) -> dict[str, EvalResult]:
    """Run the selected evaluators in order; write ``out_dir/results.json``; return the results."""
    configs = selected(suite, only)
    used = {c.data for c in configs} | {n for c in configs for n in getattr(c, "ood_data", ())}
    missing = unset_datasets(suite, used)
    if missing:
        raise ValueError(f"datasets without a root: {missing}; pass --data NAME=PATH for each")
    out_dir.mkdir(parents=True, exist_ok=True)
    ctx = EvalContext(source, suite.datasets, out_dir, backbone, device or torch.device("cpu"))
    results: dict[str, EvalResult] = {}
    entries: dict[str, Any] = {}
    for cfg in configs:
        log.info("running %s", cfg.key)
        start = time.perf_counter()
        result = EVALUATORS[cfg.kind].evaluate(cfg, ctx)
        results[cfg.key] = result
        entries[cfg.key] = {
            "protocol": cfg.model_dump(mode="json"),
            "dataset": suite.datasets[cfg.data].model_dump(mode="json"),
            "metrics": result_to_json(result),
            "seconds": round(time.perf_counter() - start, 2),
        }
        write_results(out_dir, suite, backbone_description, entries)  # after each: a crash keeps the rest
    return results


def write_results(out_dir: Path, suite: SuiteConfig, backbone: str, entries: dict[str, Any]) -> Path:
    path = out_dir / "results.json"
    doc = {
        "suite": suite.name,
        "backbone": backbone,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "evaluators": entries,
    }
    path.write_text(json.dumps(_jsonable(doc), indent=2, allow_nan=False) + "\n")
    return path
