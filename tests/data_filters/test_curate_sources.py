"""URL-file validation (refused before any work) and per-row classification."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from data_filters.config import CurateConfig
from data_filters.pipeline import curate
from data_filters.reasons import Reason
from data_filters.sources import InputFileError, load_source, row_key, url_problem

GOOD = ["http://example.org/a.jpg", "https://example.org/b.png"]


def _write(path: Path, frame: pd.DataFrame) -> Path:
    if path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    elif path.suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in frame.to_dict(orient="records")))
    return path


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl"])
def test_reads_every_format_with_caption_and_punsafe(tmp_path: Path, suffix: str) -> None:
    frame = pd.DataFrame({"url": GOOD, "caption": ["a", "b"], "punsafe": [0.1, 0.7]})
    rows = load_source(_write(tmp_path / f"urls{suffix}", frame))
    assert rows.kind == "urls" and rows.has_punsafe and rows.n_rows == 2
    assert rows.frame["url"].tolist() == GOOD
    assert rows.frame["caption"].tolist() == ["a", "b"]
    assert rows.frame["punsafe"].tolist() == [0.1, 0.7]
    assert rows.frame["reason"].isna().all()


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl"])
def test_missing_url_column_is_refused(tmp_path: Path, suffix: str) -> None:
    path = _write(tmp_path / f"urls{suffix}", pd.DataFrame({"link": GOOD}))
    with pytest.raises(InputFileError, match=r"missing the 'url' column \(columns found: link\)"):
        load_source(path)


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl"])
def test_url_column_of_wrong_type_is_refused(tmp_path: Path, suffix: str) -> None:
    path = _write(tmp_path / f"urls{suffix}", pd.DataFrame({"url": [1, 2, 3]}))
    with pytest.raises(InputFileError, match="column 'url' has type int64, expected strings"):
        load_source(path)


def test_mixed_types_in_url_column_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "urls.jsonl"
    path.write_text('{"url": "http://example.org/a.jpg"}\n{"url": 42}\n')
    with pytest.raises(InputFileError, match=r"must hold strings; 1 value\(s\) are not \(first at row 1: 42"):
        load_source(path)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.csv", "", "the file is empty"),
        ("header.csv", "url,caption\n", "the file has no rows"),
        ("empty.jsonl", "", "has no rows"),
        ("nulls.csv", "url,caption\n,a\n,b\n", "column is empty"),
        ("broken.parquet", "not parquet", "cannot parse as parquet"),
        ("urls.txt", "http://example.org/a.jpg\n", "unsupported URL file type"),
    ],
)
def test_empty_or_unreadable_files_are_refused(tmp_path: Path, name: str, content: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(InputFileError, match=message):
        load_source(path)


def test_empty_parquet_and_missing_file_are_refused(tmp_path: Path) -> None:
    path = _write(tmp_path / "empty.parquet", pd.DataFrame({"url": pd.Series([], dtype=str)}))
    with pytest.raises(InputFileError, match="no rows"):
        load_source(path)
    with pytest.raises(InputFileError, match="no such file"):
        load_source(tmp_path / "absent.parquet")


def test_non_numeric_punsafe_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path / "urls.parquet", pd.DataFrame({"url": GOOD, "punsafe": ["low", "high"]}))
    with pytest.raises(InputFileError, match="'punsafe' has type"):
        load_source(path)


def test_laion_column_names_and_extra_columns(tmp_path: Path) -> None:
    frame = pd.DataFrame({"URL": GOOD, "TEXT": ["a", "b"], "similarity": [0.3, 0.4], "status": ["x", "y"]})
    rows = load_source(_write(tmp_path / "laion.parquet", frame), url_col="URL", caption_col="TEXT")
    assert rows.frame["url"].tolist() == GOOD and rows.frame["caption"].tolist() == ["a", "b"]
    assert rows.extra.columns.tolist() == ["similarity", "input_status"]  # no clash with manifest names
    assert not rows.has_punsafe and rows.frame["punsafe"].isna().all()


def test_malformed_urls_and_duplicate_rows_are_classified(tmp_path: Path) -> None:
    urls = [
        GOOD[0],
        "ftp://example.org/a.jpg",
        None,
        "http://",
        GOOD[0],
        "http://example.org/x y.jpg",
        GOOD[1],
    ]
    rows = load_source(_write(tmp_path / "urls.parquet", pd.DataFrame({"url": urls})))
    reasons = rows.frame["reason"].tolist()
    assert reasons == [
        None,
        "malformed_url",
        "malformed_url",
        "malformed_url",
        "duplicate_row",
        "malformed_url",
        None,
    ]
    assert rows.frame.loc[4, "duplicate_of"] == row_key(0, len(urls))
    assert rows.accepted()["row_id"].tolist() == [0, 6]


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("http://example.org:port/a.jpg", "unparsable"),
        ("mailto:someone@example.org", "unsupported scheme"),
        ("//example.org/a.jpg", "no scheme"),
        ("", "empty URL"),
        ("http://example.org/\ta.jpg", "whitespace"),
    ],
)
def test_url_problems_are_explained(url: str, fragment: str) -> None:
    problem = url_problem(url)
    assert problem is not None and fragment in problem


def test_folder_source_lists_images_in_stable_order(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    for name in ["b/2.png", "a.jpg", "b/1.JPG", "notes.txt"]:
        (tmp_path / name).write_bytes(b"x")
    rows = load_source(tmp_path)
    assert rows.kind == "folder"
    assert [Path(u).relative_to(tmp_path).as_posix() for u in rows.frame["url"]] == [
        "a.jpg",
        "b/1.JPG",
        "b/2.png",
    ]


def test_curate_refuses_a_bad_file_before_any_work(tmp_path: Path) -> None:
    path = _write(tmp_path / "urls.csv", pd.DataFrame({"link": GOOD}))
    out = tmp_path / "out"
    with pytest.raises(InputFileError, match="missing the 'url' column"):
        curate(CurateConfig(source=path, out_dir=out, progress=False))
    assert not out.exists()


def test_a_list_of_only_refused_rows_still_finishes(tmp_path: Path) -> None:
    urls = ["not a url", "ftp://example.org/a.jpg", "not a url"]
    path = _write(tmp_path / "urls.jsonl", pd.DataFrame({"url": urls}))
    result = curate(CurateConfig(source=path, out_dir=tmp_path / "out", progress=False))
    manifest = pd.read_parquet(result.manifest_path)
    assert manifest["reason"].tolist() == ["malformed_url"] * 3
    assert (result.n_in, result.n_kept, result.shard_paths) == (3, 0, ())


def test_reason_order_is_documented() -> None:
    order = list(Reason)
    assert order[0] is Reason.MALFORMED_URL and order[-1] is Reason.DUPLICATE_NEAR
