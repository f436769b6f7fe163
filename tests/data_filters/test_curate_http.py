"""Issue 5 acceptance: the whole stage over a loopback HTTP server with every bad input.

The URL list (``curate_catalogue.catalogue``) is downloaded by the real img2dataset from
127.0.0.1 and curated on a 2-worker Dask LocalCluster; each row must come out once with its reason.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pandas as pd
import pytest
from curate_catalogue import Case
from curate_server import LoopbackServer
from curate_support import EndToEnd
from PIL import Image

from data_filters.pipeline import curate
from data_filters.reasons import Reason

pytestmark = pytest.mark.integration


def test_every_input_row_appears_once_with_its_reason(end_to_end: EndToEnd, cases: list[Case]) -> None:
    manifest = end_to_end.manifest
    assert manifest["row_id"].tolist() == list(range(len(cases)))
    assert manifest["key"].is_unique
    wrong = [
        f"row {i} {case.name}: expected {case.expected}, got {reason} ({detail})"
        for i, (case, reason, detail) in enumerate(zip(cases, manifest["reason"], manifest["detail"]))
        if (case.expected.value if case.expected else None) != (reason if isinstance(reason, str) else None)
    ]
    assert not wrong, "\n".join(wrong)
    assert ((manifest["status"] == "kept") == manifest["reason"].isna()).all()
    assert set(manifest["status"]) == {"kept", "dropped"}


def test_duplicates_point_at_kept_rows(end_to_end: EndToEnd, cases: list[Case]) -> None:
    manifest = end_to_end.manifest.set_index("key")
    dups = manifest[
        manifest["reason"].isin([Reason.DUPLICATE_EXACT, Reason.DUPLICATE_NEAR, Reason.DUPLICATE_ROW])
    ]
    assert len(dups) == 4
    for key, row in dups.iterrows():
        keeper = manifest.loc[row["duplicate_of"]]
        assert keeper["status"] == "kept", key
    near = dups[dups["reason"] == Reason.DUPLICATE_NEAR].iloc[0]
    # the re-encoded, smaller copy comes first in the list, yet the larger original is kept
    assert manifest.loc[near["duplicate_of"], "url"].endswith("/coffee.jpg")


def test_download_status_and_errors_are_kept(end_to_end: EndToEnd) -> None:
    manifest = end_to_end.manifest
    failed = manifest[manifest["reason"] == Reason.DOWNLOAD_FAILED]
    assert (failed["download_status"] == "failed_to_download").all()
    by_name = dict(zip(failed["url"].str.rsplit("/", n=1).str[-1], failed["detail"]))
    assert "404" in by_name["missing.jpg"] and "500" in by_name["error.jpg"]
    assert "timed out" in by_name["slow.jpg"] and "redirect" in by_name["loop.jpg"]
    refused = manifest[manifest["reason"].isin([Reason.MALFORMED_URL, Reason.DUPLICATE_ROW])]
    assert refused["download_status"].isna().all()
    decoded = manifest[manifest["width"].notna() & manifest["reason"].ne(Reason.TOO_MANY_PIXELS)]
    assert (decoded["download_status"] == "success").all()


def test_hashes_sizes_and_scores_recorded(end_to_end: EndToEnd) -> None:
    manifest = end_to_end.manifest
    hashed = manifest["pixel_hash"].notna()
    assert (hashed == manifest["phash"].notna()).all()
    assert manifest.loc[hashed, "phash"].str.fullmatch(r"[0-9a-f]{16}").all()
    assert manifest.loc[manifest["status"] == "kept", ["width", "height"]].notna().all().all()
    rotated = manifest[manifest["url"].str.endswith("/page_rotated.jpg")].iloc[0]
    assert (rotated["width"], rotated["height"]) == (384, 191)  # EXIF orientation applied
    assert manifest.loc[hashed, "nsfw_opennsfw"].between(0, 1).all()
    assert manifest["nsfw_clip"].isna().all()
    assert manifest.columns[-1] == "similarity" and manifest["similarity"].notna().all()
    assert manifest.loc[manifest["url"].str.endswith("/grass_unsafe.jpg"), "nsfw_punsafe"].iloc[0] == 0.93


def test_report_counts_add_up(end_to_end: EndToEnd) -> None:
    out = end_to_end.config.out_dir
    report = json.loads((out / "report.json").read_text())
    manifest = end_to_end.manifest
    assert report["n_in"] == len(manifest) == report["n_kept"] + report["n_dropped"]
    assert sum(report["dropped_by_reason"].values()) == report["n_dropped"]
    assert report["dropped_by_reason"] == {
        r.value: int((manifest["reason"] == r.value).sum()) for r in Reason
    }
    assert [s["name"] for s in report["stages"]] == ["download", "inspect", "nsfw", "dedup", "write"]
    assert report["nsfw_detector"] == "opennsfw"
    assert "kept" in (out / "summary.txt").read_text()


def _read_shards(out_dir: Path) -> dict[str, dict[str, bytes]]:
    samples: dict[str, dict[str, bytes]] = {}
    for path in sorted((out_dir / "shards").glob("*.tar")):
        with tarfile.open(path) as archive:
            for member in archive.getmembers():
                key, _, ext = member.name.partition(".")
                handle = archive.extractfile(member)
                assert handle is not None
                samples.setdefault(f"{path.name}/{key}", {})[ext] = handle.read()
    return samples


def test_kept_shards_hold_exactly_the_kept_rows(end_to_end: EndToEnd) -> None:
    manifest = end_to_end.manifest
    kept = manifest[manifest["status"] == "kept"]
    samples = _read_shards(end_to_end.config.out_dir)
    assert set(samples) == {f"{s}/{k}" for s, k in zip(kept["shard"], kept["key"])}
    for row in kept.itertuples():
        files = samples[f"{row.shard}/{row.key}"]
        meta = json.loads(files["json"])
        assert meta["url"] == row.url and meta["row_id"] == row.row_id
        assert meta["similarity"] == row.similarity  # input metadata travels with the sample
        assert files["txt"].decode() == row.caption
        image_ext = next(e for e in files if e in ("jpg", "png"))
        image = Image.open(io.BytesIO(files[image_ext]))
        assert image.mode == "RGB" and image.size == (row.width, row.height)


def test_rerun_on_same_directory_fetches_nothing(end_to_end: EndToEnd, loopback: LoopbackServer) -> None:
    result = curate(end_to_end.config)
    assert loopback.total_hits() == end_to_end.hits_after_run
    pd.testing.assert_frame_equal(pd.read_parquet(result.manifest_path), end_to_end.manifest)
    report = json.loads(result.report_path.read_text())
    download = next(s for s in report["stages"] if s["name"] == "download")
    assert download["reused"] == download["items"] == 4
