"""``franca curate`` through the lead's dispatcher: a folder source, decontamination, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from curate_catalogue import jpeg, png, rgb

from franca_core.cli import main


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    source = tmp_path / "images"
    (source / "sub").mkdir(parents=True)
    (source / "astronaut.jpg").write_bytes(jpeg(rgb("astronaut")))
    (source / "astronaut_copy.png").write_bytes(png(rgb("astronaut")))  # different pixels (JPEG loss)
    (source / "sub" / "coffee.jpg").write_bytes(jpeg(rgb("coffee")))
    (source / "sub" / "coffee_again.jpg").write_bytes(jpeg(rgb("coffee")))  # same bytes: exact dup
    (source / "sub" / "rocket.jpg").write_bytes(jpeg(rgb("rocket")))
    (source / "sub" / "broken.jpg").write_bytes(b"GIF89a but not really")
    return source


def test_curate_a_folder_with_an_eval_set(
    folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    evalset = tmp_path / "eval"
    evalset.mkdir()
    (evalset / "rocket_small.png").write_bytes(png(rgb("rocket").resize((160, 107))))
    out = tmp_path / "out"
    code = main(
        ["curate", "--urls", str(folder), "--out", str(out), "--eval-sets", str(evalset), "--no-progress"]
    )
    assert code == 0
    assert "6 in" in capsys.readouterr().out
    manifest = pd.read_parquet(out / "manifest.parquet").set_index("url")
    reasons = {Path(str(url)).name: reason for url, reason in manifest["reason"].items()}
    assert reasons == {
        "astronaut.jpg": None,
        "astronaut_copy.png": "duplicate_near",
        "broken.jpg": "decode_error",
        "coffee.jpg": None,
        "coffee_again.jpg": "duplicate_exact",
        "rocket.jpg": "eval_contamination",
    }
    assert all(Path(str(url)).is_absolute() for url in manifest.index)
    report = json.loads((out / "report.json").read_text())
    assert report["source_kind"] == "folder" and report["n_kept"] == 2
    assert sorted(p.name for p in (out / "shards").glob("*.tar")) == ["00000.tar"]


def test_runs_on_a_cluster_given_by_address(folder: Path, tmp_path: Path) -> None:
    from distributed import LocalCluster

    from data_filters.cluster import local_cluster_options
    from data_filters.config import DaskConfig

    with LocalCluster(**local_cluster_options(DaskConfig(n_workers=1, threads_per_worker=2))) as cluster:
        args = ["curate", "--urls", str(folder), "--out", str(tmp_path / "out"), "--no-progress"]
        assert main([*args, "--dask", cluster.scheduler_address, "--nsfw-detector", "none"]) == 0
    manifest = pd.read_parquet(tmp_path / "out" / "manifest.parquet")
    assert manifest["nsfw_opennsfw"].isna().all() and (manifest["status"] == "kept").sum() == 3


def test_malformed_url_file_is_refused_with_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    urls = tmp_path / "urls.csv"
    urls.write_text("link,caption\nhttp://example.org/a.jpg,a\n")
    out = tmp_path / "out"
    assert main(["curate", "--urls", str(urls), "--out", str(out), "--no-progress"]) == 2
    assert "missing the 'url' column" in capsys.readouterr().err
    assert not out.exists()


def test_half_configured_clip_detector_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["curate", "--urls", str(tmp_path), "--out", str(tmp_path / "out"), "--nsfw-model", str(tmp_path)]
    assert main(args) == 2
    assert "must be given together" in capsys.readouterr().err
