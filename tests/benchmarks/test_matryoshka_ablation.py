"""The Matryoshka ablation (``benchmarks/ablations/matryoshka.py``) end to end in ``--smoke`` mode.

Two objectives x one seed, two training steps each on the scikit-image photographs (``--data sample``,
so no ``../shared`` is needed); checks the outputs, their contents and that a rerun skips finished runs.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import torch

ABLATIONS = Path(__file__).resolve().parents[2] / "benchmarks" / "ablations"


@pytest.fixture
def study(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """The study module (a script beside its report module, so its folder goes on sys.path)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.syspath_prepend(str(ABLATIONS))
    import matryoshka

    yield matryoshka
    torch.set_num_threads(threads)
    sys.modules.pop("matryoshka", None)
    sys.modules.pop("matryoshka_report", None)


def test_smoke_study_writes_table_plot_and_consistent_results(study: ModuleType, tmp_path: Path) -> None:
    out = tmp_path / "study"
    argv = ["--smoke", "--data", "sample", "--objectives", "project", "shared", "--seeds", "0"]
    argv += ["--steps", "2", "--device", "cpu", "--threads", "1", "--out", str(out)]
    results = study.main(argv)

    for name in ("results.json", "results.md", "matryoshka.png"):
        assert (out / name).stat().st_size > 0, name
    report = sys.modules["matryoshka_report"]
    assert report.StudyResults.model_validate_json((out / "results.json").read_text()) == results

    table = (out / "results.md").read_text()
    for objective in ("project", "shared", "random init"):
        rows = [line for line in table.splitlines() if line.startswith(f"| {objective} |")]
        assert len(rows) == (2 if objective == "random init" else 3), (objective, rows)  # 2 accuracy + cost

    dims = [96, 48, 24, 12, 6, 3, 1]  # debug preset: D = 96, then d/2 ... d/64
    trained = [run for run in results.runs if run.objective != "random init"]
    assert sorted(run.objective for run in trained) == ["project", "shared"]
    assert len(results.runs) == 3 and results.summaries[-1].objective == "random init"
    for run in results.runs:
        assert [level.dim for level in run.levels] == dims
        for level in run.levels:
            assert 0.0 <= level.slice_top1 <= 1.0 and 0.0 <= level.pca_top1 <= 1.0
        # At m = d the PCA projection is a rotation of the raw features: the same neighbours.
        assert run.levels[0].pca_top1 == pytest.approx(run.levels[0].slice_top1, abs=0.051)
    for run in trained:
        assert run.steps == 2 and run.train_seconds > 0 and run.head_params is not None
        assert "heads.mode=" + run.objective in run.overrides

    params = {run.objective: run.head_params for run in trained}
    assert params["shared"].total < params["project"].total  # one head vs a head per level
    assert params["shared"].dino < params["project"].dino and params["shared"].ibot < params["project"].ibot

    # A rerun finds every run's ablation.json and trains nothing again.
    record = out / "runs" / "project_seed0" / "ablation.json"
    written = record.stat().st_mtime_ns
    assert study.main(argv) == results
    assert record.stat().st_mtime_ns == written


def test_study_logs_params_metrics_and_outputs_to_mlflow(study: ModuleType, tmp_path: Path) -> None:
    """``--mlflow``: one run in the embedded SQLite store under OUT/mlflow, with the table and plot."""
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    out = tmp_path / "study"
    argv = ["--smoke", "--data", "sample", "--objectives", "shared", "--seeds", "0", "--steps", "2"]
    results = study.main([*argv, "--device", "cpu", "--threads", "1", "--out", str(out), "--mlflow"])
    sys.modules.pop("matryoshka_mlflow", None)

    client = MlflowClient(tracking_uri=f"sqlite:///{(out / 'mlflow' / 'mlflow.db').resolve()}")
    experiment = client.get_experiment_by_name("matryoshka-ablation")
    assert experiment is not None
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED" and run.data.params["objectives"] == "shared,random init"
    shared = next(s for s in results.summaries if s.objective == "shared")
    full = shared.levels[0]
    assert run.data.metrics[f"knn_shared_m{full.dim}"] == pytest.approx(100 * full.slice_top1.mean)
    assert run.data.metrics["head_params_shared"] == shared.head_params.total
    logged = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert logged == {"results.json", "results.md", "matryoshka.png"}
