"""``report.json`` and ``summary.txt``: counts per reason, timings and throughput of a run."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from data_filters.config import CurateConfig
from data_filters.reasons import Reason, Status


class StageReport(BaseModel):
    """Time spent in one stage of this run."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(description="Stage name.")
    seconds: float = Field(description="Wall-clock seconds in this run.")
    items: int = Field(description="Rows or shards the stage handled.")
    unit: str = Field(description="What ``items`` counts.")
    items_per_second: float = Field(description="items / seconds (0 when no time was spent).")
    reused: int = Field(0, description="Shards whose result was found on disk and reused.")


class CurateReport(BaseModel):
    """Machine-readable summary of one curation run."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: str = Field(description="The URL file or folder.")
    source_kind: str = Field(description="'urls' or 'folder'.")
    n_in: int = Field(description="Input rows.")
    n_kept: int = Field(description="Rows kept.")
    n_dropped: int = Field(description="Rows dropped; n_in = n_kept + n_dropped.")
    dropped_by_reason: dict[str, int] = Field(description="Dropped rows per reason (every reason listed).")
    download_status: dict[str, int] = Field(description="img2dataset per-sample statuses.")
    nsfw_detector: str = Field(description="Image NSFW detector that ran ('none' if disabled).")
    stages: list[StageReport] = Field(description="Per-stage timings of this run.")
    total_seconds: float = Field(description="Wall-clock seconds of this run.")
    rows_per_second: float = Field(description="n_in / total_seconds.")
    config: dict[str, object] = Field(description="The CurateConfig of the run.")


@dataclass
class StageClock:
    """Collects ``StageReport``s of a run: ``t = clock.now()`` ... ``clock.record(name, t, ...)``."""

    started: float = field(default_factory=time.perf_counter)
    stages: list[StageReport] = field(default_factory=list)

    @staticmethod
    def now() -> float:
        return time.perf_counter()

    def record(self, name: str, since: float, items: int, unit: str, reused: int = 0) -> None:
        seconds = time.perf_counter() - since
        rate = items / seconds if seconds > 0 else 0.0
        report = StageReport(
            name=name, seconds=seconds, items=items, unit=unit, items_per_second=rate, reused=reused
        )
        self.stages.append(report)

    def total(self) -> float:
        return time.perf_counter() - self.started


def build_report(
    config: CurateConfig, source_kind: str, manifest: pd.DataFrame, detector: str, clock: StageClock
) -> CurateReport:
    """Counts from the manifest plus the clock's timings."""
    reasons = manifest["reason"].value_counts()
    by_reason = {r.value: int(reasons.get(r.value, 0)) for r in Reason}
    statuses = manifest["download_status"].fillna("not_fetched").value_counts()
    total = clock.total()
    n_kept = int((manifest["status"] == Status.KEPT.value).sum())
    return CurateReport(
        source=str(config.source),
        source_kind=source_kind,
        n_in=len(manifest),
        n_kept=n_kept,
        n_dropped=len(manifest) - n_kept,
        dropped_by_reason=by_reason,
        download_status={str(k): int(v) for k, v in statuses.items()},
        nsfw_detector=detector,
        stages=clock.stages,
        total_seconds=total,
        rows_per_second=len(manifest) / total if total > 0 else 0.0,
        config=config.model_dump(mode="json"),
    )


def summary_text(report: CurateReport) -> str:
    """A few human-readable lines."""
    lines = [
        f"curated {report.source} ({report.source_kind}): {report.n_in} in, "
        f"{report.n_kept} kept, {report.n_dropped} dropped in {report.total_seconds:.1f} s",
        f"nsfw detector: {report.nsfw_detector}",
        "dropped by reason:",
    ]
    lines += [f"  {reason:<20} {count}" for reason, count in report.dropped_by_reason.items() if count]
    lines.append("stages:")
    for stage in report.stages:
        reused = f", {stage.reused} reused" if stage.reused else ""
        lines.append(
            f"  {stage.name:<12} {stage.seconds:8.2f} s  {stage.items} {stage.unit} "
            f"({stage.items_per_second:.1f}/s{reused})"
        )
    return "\n".join(lines) + "\n"
