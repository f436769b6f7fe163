"""Evaluation task: ``franca eval`` on a backbone; returns the headline number of each evaluator."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from prefect import task

from tasks.faults import fail_if_asked
from tasks.launch import run_franca
from tasks.links import prefect_tags
from tasks.results import EvalOutput, read_json, stage_key
from tasks.specs import EvalSpec


def headline(results: dict[str, Any]) -> dict[str, dict[str, float]]:
    """evaluator -> {metric: value} for the finite numbers of each evaluator's metrics."""
    table: dict[str, dict[str, float]] = {}
    for key, entry in results.get("evaluators", {}).items():
        metrics = entry.get("metrics", {}) if isinstance(entry, dict) else {}
        numbers = {
            name: float(value)
            for name, value in metrics.items()
            if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        }
        if numbers:
            table[key] = numbers
    return table


@task(name="evaluate")
def evaluate(spec: EvalSpec) -> EvalOutput:
    """Run an evaluation suite; returns results.json's numbers (plots and JSON become artifacts)."""
    fail_if_asked("eval")
    out = Path(spec.out_dir)
    args = ["eval", "--backbone", spec.backbone, "--suite", spec.suite, "--out", str(out), "--no-progress"]
    run_franca([*args, *spec.extra_args], out / "eval.log")
    results = read_json(out / "results.json")
    table = headline(results)
    entries = results.get("evaluators", {})
    protocols = {k: e.get("protocol", {}) for k, e in entries.items() if isinstance(e, dict)}
    return EvalOutput(
        stage="eval",
        key=stage_key("eval", spec, spec.out_dir),
        out_dir=spec.out_dir,
        config={**spec.model_dump(mode="json"), "protocol": protocols},
        summary={f"{k}/{m}": v for k, row in table.items() for m, v in row.items()},
        artifacts={"eval": [str(out / "results.json"), str(out / "eval.log")], "plots": [str(out / "plots")]},
        data_sha256=spec.data_sha256,
        prefect=prefect_tags(),
        results=table,
    )
