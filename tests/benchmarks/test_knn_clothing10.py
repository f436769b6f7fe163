"""The clothing10 learning benchmark, run as users run it, on a tiny stand-in dataset (CPU, seconds).

``../shared/datasets/clothing10`` is absent on a fresh machine, so the benchmark reads an image folder
of the same layout (``train``/``val``/``test``, a folder per class) cut from the scikit-image photographs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest
import torch

from franca_core.data.sources import sample_images

TRAIN_STEP = Path(__file__).resolve().parents[2] / "benchmarks" / "train_step"
PER_SPLIT = {"train": 6, "val": 3, "test": 2}  # crops per class


def write_folder(root: Path) -> Path:
    """Three classes (photographs), each with random 64 px crops per split."""
    generator = torch.Generator().manual_seed(0)
    for cid, photo in enumerate(sample_images()[:3]):
        for split, count in PER_SPLIT.items():
            folder = root / split / f"class{cid}"
            folder.mkdir(parents=True)
            for i in range(count):
                x, y = (int(torch.randint(0, s - 64, (1,), generator=generator)) for s in photo.size)
                photo.crop((x, y, x + 64, y + 64)).save(folder / f"{i}.png")
    return root


@pytest.fixture
def script(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    monkeypatch.syspath_prepend(str(TRAIN_STEP))
    import knn_clothing10

    yield knn_clothing10
    sys.modules.pop("knn_clothing10", None)


def test_mcnemar_z_counts_only_the_queries_that_changed(script: ModuleType) -> None:
    before = torch.tensor([True, False, False, True, True, False])
    after = torch.tensor([True, True, True, False, True, False])
    # gained 2 (queries 1, 2), lost 1 (query 3); unchanged queries do not count.
    assert script.mcnemar_z(before, after) == pytest.approx(1 / 3**0.5)
    assert script.mcnemar_z(before, before) == 0.0


def test_learning_curve_from_random_init_to_every_checkpoint(
    tmp_path: Path, tiny_args: Callable[..., list[str]]
) -> None:
    root, out = write_folder(tmp_path / "data"), tmp_path / "out"
    command = [
        sys.executable,
        str(TRAIN_STEP / "knn_clothing10.py"),
        *("--root", str(root), "--steps", "4", "--eval-every", "2", "--workers", "0"),
        *("--run-dir", str(tmp_path / "run"), "--out", str(out)),
        *tiny_args(),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert results["steps"] == 4 and [p["step"] for p in results["points"]] == [0, 2, 4]
    for point in results["points"]:
        assert [s["split"] for s in point["scores"]] == ["val", "test"]
        for s in point["scores"]:
            assert s["queries"] == 3 * PER_SPLIT[s["split"]]
            # top-1 is a whole number of correct queries; its standard error follows from it.
            hits = s["top1"] / 100 * s["queries"]
            assert hits == pytest.approx(round(hits))
            p = s["top1"] / 100
            assert s["standard_error"] == pytest.approx(100 * (p * (1 - p) / s["queries"]) ** 0.5)
            assert (s["mcnemar_z"] is None) == (point["step"] == 0)
    assert (out / "knn_curve.png").stat().st_size > 0
    assert "step      4" in done.stdout
