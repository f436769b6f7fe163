"""Results of the Matryoshka ablation (``matryoshka.py``): typed records, aggregation, table and plot.

Accuracies are fractions in [0, 1] in every record and in ``results.json``; the markdown table shows
them in percent. Spread is the sample standard deviation over seeds (0 with a single seed).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from pydantic import BaseModel, ConfigDict

RANDOM_INIT = "random init"


class Record(BaseModel):
    """Base of the result records: immutable, unknown keys rejected when read back."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class LevelAccuracy(Record):
    """k-NN top-1 of one truncation level: the first ``dim`` coordinates, and PCA to ``dim``."""

    dim: int
    slice_top1: float
    pca_top1: float


class HeadParams(Record):
    """Parameters of the DINO (CLS) and iBOT (patch) projection heads of one network."""

    dino: int
    ibot: int

    @property
    def total(self) -> int:
        return self.dino + self.ibot


class RunRecord(Record):
    """One (objective, seed) run: what it was trained with, what it cost, how its features do."""

    objective: str
    seed: int
    steps: int
    overrides: tuple[str, ...]
    head_params: HeadParams | None
    train_seconds: float
    images_per_s: float
    eval_seconds: float
    final_loss: float | None
    levels: tuple[LevelAccuracy, ...]


class Spread(Record):
    """Mean and standard deviation over seeds."""

    mean: float
    std: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        std = statistics.stdev(values) if len(values) > 1 else 0.0
        return cls(mean=statistics.fmean(values), std=std)


class LevelSummary(Record):
    dim: int
    slice_top1: Spread
    pca_top1: Spread


class ObjectiveSummary(Record):
    """One objective (or the random-init reference) over its seeds."""

    objective: str
    seeds: tuple[int, ...]
    levels: tuple[LevelSummary, ...]
    head_params: HeadParams | None
    train_seconds: Spread
    final_loss: Spread | None


class StudyResults(Record):
    """Everything ``results.json`` holds."""

    data: str
    n_bank: int
    n_queries: int
    config: str
    embed_dim: int
    steps: int
    device: str
    knn_k: int
    overrides: tuple[str, ...]
    runs: tuple[RunRecord, ...]
    summaries: tuple[ObjectiveSummary, ...]


def summarise(objective: str, runs: Sequence[RunRecord]) -> ObjectiveSummary:
    """Mean and spread over the seeds of one objective (all runs share the same levels)."""
    dims = [level.dim for level in runs[0].levels]
    levels = tuple(
        LevelSummary(
            dim=dim,
            slice_top1=Spread.of([run.levels[i].slice_top1 for run in runs]),
            pca_top1=Spread.of([run.levels[i].pca_top1 for run in runs]),
        )
        for i, dim in enumerate(dims)
    )
    return ObjectiveSummary(
        objective=objective,
        seeds=tuple(run.seed for run in runs),
        levels=levels,
        head_params=runs[0].head_params,
        train_seconds=Spread.of([run.train_seconds for run in runs]),
        final_loss=_spread_or_none([run.final_loss for run in runs]),
    )


def _spread_or_none(values: Sequence[float | None]) -> Spread | None:
    present = [v for v in values if v is not None]
    return Spread.of(present) if present else None


def summarise_all(runs: Sequence[RunRecord]) -> tuple[ObjectiveSummary, ...]:
    """One summary per objective, in the order the objectives first appear."""
    order = list(dict.fromkeys(run.objective for run in runs))
    return tuple(summarise(name, [r for r in runs if r.objective == name]) for name in order)


def _pct(spread: Spread) -> str:
    return f"{100 * spread.mean:.1f} ± {100 * spread.std:.1f}"


def _accuracy_table(results: StudyResults, field: str) -> list[str]:
    dims = [level.dim for level in results.summaries[0].levels]
    header = "| objective | " + " | ".join(f"m={d}" for d in dims) + " |"
    lines = [header, "|---" * (len(dims) + 1) + "|"]
    for summary in results.summaries:
        cells = [_pct(getattr(level, field)) for level in summary.levels]
        lines.append(f"| {summary.objective} | " + " | ".join(cells) + " |")
    return lines


def _cost_table(results: StudyResults) -> list[str]:
    lines = [
        "| objective | DINO head params | iBOT head params | head params | train time (s) | final loss |",
        "|---|---|---|---|---|---|",
    ]
    for s in results.summaries:
        if s.head_params is None:
            continue
        p, loss = s.head_params, s.final_loss
        loss_cell = f"{loss.mean:.3f} ± {loss.std:.3f}" if loss is not None else "-"
        lines.append(
            f"| {s.objective} | {p.dino:,} | {p.ibot:,} | {p.total:,} | "
            f"{s.train_seconds.mean:.0f} ± {s.train_seconds.std:.0f} | {loss_cell} |"
        )
    return lines


def markdown(results: StudyResults) -> str:
    """The results as markdown: two accuracy tables (slices, PCA) and a cost table."""
    seeds = sorted({run.seed for run in results.runs})
    intro = (
        f"Data: {results.data} ({results.n_bank} bank / {results.n_queries} query images); config "
        f"`{results.config}` (D = {results.embed_dim}), {results.steps} steps, seeds "
        f"{' '.join(map(str, seeds))}, device {results.device}; weighted k-NN (k = {results.knn_k}, "
        "T = 0.07) on the teacher's CLS token. Mean ± std over seeds."
    )
    if results.overrides:
        intro += f" Extra overrides: `{' '.join(results.overrides)}`."
    parts = [
        "# Matryoshka ablation",
        "",
        intro,
        "",
        "## k-NN top-1 (%) on the first m dimensions",
        "",
        *_accuracy_table(results, "slice_top1"),
        "",
        "## k-NN top-1 (%) after PCA to m dimensions (same features)",
        "",
        *_accuracy_table(results, "pca_top1"),
        "",
        "## Heads and cost",
        "",
        *_cost_table(results),
        "",
        "Head parameters: DINO + iBOT heads of one network (student and teacher each hold them). Train "
        "time: the engine's wall time. The final loss sums the per-level losses (one level for `none`), "
        "so it is not comparable across objectives.",
        "",
    ]
    return "\n".join(parts)


def plot(results: StudyResults, path: Path) -> Path:
    """k-NN accuracy against dimension: one line per objective (error bars = std over seeds);
    dashed, same colour: PCA to m of the same features; grey dotted: random init."""
    fig, ax = plt.subplots(figsize=(7.0, 4.6), dpi=130)
    for index, s in enumerate(results.summaries):
        dims = [level.dim for level in s.levels]
        mean = [100 * level.slice_top1.mean for level in s.levels]
        std = [100 * level.slice_top1.std for level in s.levels]
        if s.objective == RANDOM_INIT:
            ax.errorbar(dims, mean, yerr=std, color="grey", linestyle=":", marker=".", label=RANDOM_INIT)
            continue
        colour = f"C{index}"
        ax.errorbar(dims, mean, yerr=std, color=colour, marker="o", capsize=3, label=f"{s.objective}")
        pca = [100 * level.pca_top1.mean for level in s.levels]
        ax.plot(dims, pca, color=colour, linestyle="--", alpha=0.6, label=f"{s.objective}, PCA to m")
    ax.set_xscale("log", base=2)
    ticks = [level.dim for level in results.summaries[0].levels]
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("dimension m (first m coordinates, or PCA to m)")
    ax.set_ylabel(f"k-NN top-1 (k={results.knn_k}) %")
    ax.set_title(f"Matryoshka ablation: {results.data}, {results.steps} steps")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
