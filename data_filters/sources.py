"""Input sources: a URL list (parquet, CSV, JSONL) or a folder of images.

A URL file is validated as a whole before any work starts (missing ``url`` column, wrong column
type, no rows); the file is then split into rows that will be fetched and rows refused up front
(malformed URL, duplicate of an earlier row), each with its reason, so every input row reaches the
manifest. Row ids are positions in the file and give every row a stable key.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from data_filters.reasons import Reason

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff"})
URL_FILE_SUFFIXES = (".parquet", ".csv", ".jsonl", ".json")
MAX_URL_LENGTH = 4096
# Columns of ``InputRows.frame``; ``url`` holds the file path for a folder source.
INPUT_COLUMNS = ("row_id", "key", "url", "caption", "punsafe", "reason", "detail", "duplicate_of")
# Names the manifest uses itself; an input column with one of these names is carried as ``input_<name>``.
RESERVED_COLUMNS = frozenset(
    {*INPUT_COLUMNS, "status", "download_status", "width", "height", "pixel_hash", "phash", "shard"}
    | {"nsfw_punsafe", "nsfw_opennsfw", "nsfw_clip"}
)


class InputFileError(ValueError):
    """The URL file cannot be used; raised before any download starts."""


@dataclass(frozen=True)
class InputRows:
    """Every input row with its key, and the reason it is refused before download (if any)."""

    kind: Literal["urls", "folder"]
    frame: pd.DataFrame
    has_punsafe: bool
    extra: pd.DataFrame  # other input columns (LAION metadata such as similarity), same row order

    @property
    def n_rows(self) -> int:
        return len(self.frame)

    def accepted(self) -> pd.DataFrame:
        """Rows that go on to download / decoding, in row order."""
        return self.frame[self.frame["reason"].isna()]


def row_key(row_id: int, n_rows: int) -> str:
    """Stable webdataset key of a row: its zero-padded position in the input."""
    width = max(9, len(str(max(n_rows - 1, 0))))
    return f"{row_id:0{width}d}"


def load_source(path: Path, url_col: str = "url", caption_col: str = "caption") -> InputRows:
    """Read and validate a URL file or list an image folder; raise InputFileError if unusable."""
    if path.is_dir():
        return _folder_rows(path)
    table = read_url_table(path, url_col, caption_col)
    return _url_rows(table, url_col, caption_col)


def read_url_table(path: Path, url_col: str, caption_col: str) -> pd.DataFrame:
    """Parse a URL file and check its columns; never returns an unusable table."""
    if not path.exists():
        raise InputFileError(f"{path}: no such file or folder")
    name = path.name.lower()
    if not name.endswith(URL_FILE_SUFFIXES):
        raise InputFileError(
            f"{path}: unsupported URL file type; expected one of {', '.join(URL_FILE_SUFFIXES)}"
        )
    table = _parse(path, name)
    if len(table) == 0:
        raise InputFileError(f"{path}: the file has no rows")
    if url_col not in table.columns:
        found = ", ".join(map(str, table.columns)) or "none"
        raise InputFileError(f"{path}: missing the '{url_col}' column (columns found: {found})")
    if table[url_col].notna().sum() == 0:
        raise InputFileError(f"{path}: the '{url_col}' column is empty (every value is null)")
    _check_string_column(path, table[url_col], url_col)
    if "punsafe" in table.columns and not pd.api.types.is_numeric_dtype(table["punsafe"]):
        raise InputFileError(f"{path}: column 'punsafe' has type {table['punsafe'].dtype}, expected numbers")
    return table


def _parse(path: Path, name: str) -> pd.DataFrame:
    try:
        if name.endswith(".parquet"):
            return pq.read_table(path).to_pandas()
        if name.endswith(".csv"):
            return pd.read_csv(path, keep_default_na=True)
        return pd.read_json(path, lines=name.endswith(".jsonl"), dtype=False, precise_float=True)
    except pd.errors.EmptyDataError as err:
        raise InputFileError(f"{path}: the file is empty") from err
    except (ValueError, OSError, pa.ArrowException) as err:
        raise InputFileError(f"{path}: cannot parse as {path.suffix.lstrip('.')}: {err}") from err


def _check_string_column(path: Path, column: pd.Series, name: str) -> None:
    if pd.api.types.is_string_dtype(column) and not pd.api.types.is_object_dtype(column):
        return
    if not pd.api.types.is_object_dtype(column):
        raise InputFileError(f"{path}: column '{name}' has type {column.dtype}, expected strings (URLs)")
    bad = column[column.map(lambda v: v is not None and not _is_nan(v) and not isinstance(v, str))]
    if len(bad) > 0:
        first = bad.index[0]
        raise InputFileError(
            f"{path}: column '{name}' must hold strings; {len(bad)} value(s) are not "
            f"(first at row {first}: {bad.iloc[0]!r} of type {type(bad.iloc[0]).__name__})"
        )


def _is_nan(value: object) -> bool:
    return isinstance(value, float) and math.isnan(value)


def url_problem(url: object) -> str | None:
    """Why a URL cannot be fetched, or None when it looks fetchable (http/https with a host)."""
    if url is None or _is_nan(url) or url is pd.NA:
        return "no URL (null value)"
    if not isinstance(url, str):
        return f"not a string: {url!r}"
    if not url or len(url) > MAX_URL_LENGTH:
        return "empty URL" if not url else f"URL longer than {MAX_URL_LENGTH} characters"
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        return "URL contains whitespace or control characters"
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError on a non-numeric port
    except ValueError as err:
        return f"unparsable URL: {err}"
    if parts.scheme not in ("http", "https"):
        return (
            f"unsupported scheme {parts.scheme!r}" if parts.scheme else "no scheme (expected http or https)"
        )
    if not parts.hostname:
        return "no host"
    return None


def _url_rows(table: pd.DataFrame, url_col: str, caption_col: str) -> InputRows:
    n_rows = len(table)
    urls = table[url_col].tolist()
    captions = table[caption_col].tolist() if caption_col in table.columns else [None] * n_rows
    has_punsafe = "punsafe" in table.columns
    punsafe = table["punsafe"].astype("float64").tolist() if has_punsafe else [math.nan] * n_rows
    reasons: list[str | None] = []
    details: list[str | None] = []
    duplicate_of: list[str | None] = []
    first_seen: dict[str, int] = {}
    for row_id, url in enumerate(urls):
        problem = url_problem(url)
        earlier = first_seen.get(url) if problem is None else None
        if problem is not None:
            reasons.append(Reason.MALFORMED_URL.value)
        elif earlier is not None:
            reasons.append(Reason.DUPLICATE_ROW.value)
            problem = f"same URL as row {earlier}"
        else:
            first_seen[url] = row_id
            reasons.append(None)
        details.append(problem)
        duplicate_of.append(row_key(earlier, n_rows) if earlier is not None else None)
    frame = _frame(n_rows, [_as_text(u) for u in urls], captions, punsafe, reasons, details, duplicate_of)
    return InputRows(
        kind="urls", frame=frame, has_punsafe=has_punsafe, extra=_extra(table, url_col, caption_col)
    )


def _extra(table: pd.DataFrame, url_col: str, caption_col: str) -> pd.DataFrame:
    """Input columns other than url / caption / punsafe, renamed when they clash with ours."""
    extra = table.drop(columns=[c for c in (url_col, caption_col, "punsafe") if c in table.columns])
    names = [f"input_{c}" if str(c) in RESERVED_COLUMNS else str(c) for c in extra.columns]
    return extra.set_axis(names, axis=1).reset_index(drop=True)


def _as_text(value: object) -> str | None:
    if value is None or _is_nan(value) or value is pd.NA:
        return None
    return str(value)


def _frame(
    n_rows: int,
    urls: list[str | None],
    captions: list[object],
    punsafe: list[float],
    reasons: list[str | None],
    details: list[str | None],
    duplicate_of: list[str | None],
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "row_id": pd.Series(range(n_rows), dtype="int64"),
            "key": [row_key(i, n_rows) for i in range(n_rows)],
            "url": pd.Series(urls, dtype="object"),
            "caption": pd.Series([_as_text(c) for c in captions], dtype="object"),
            "punsafe": pd.Series(punsafe, dtype="float64"),
            "reason": pd.Series(reasons, dtype="object"),
            "detail": pd.Series(details, dtype="object"),
            "duplicate_of": pd.Series(duplicate_of, dtype="object"),
        }
    )


def list_image_files(folder: Path) -> list[Path]:
    """Image files under ``folder`` (recursive), sorted by relative path for a stable row order."""
    files = [p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    return sorted(files, key=lambda p: p.relative_to(folder).as_posix())


def _folder_rows(folder: Path) -> InputRows:
    files = list_image_files(folder)
    if not files:
        suffixes = ", ".join(sorted(IMAGE_SUFFIXES))
        raise InputFileError(f"{folder}: the folder holds no image files ({suffixes})")
    n_rows = len(files)
    none: list[str | None] = [None] * n_rows
    frame = _frame(
        n_rows, [str(p.resolve()) for p in files], [None] * n_rows, [math.nan] * n_rows, none, none, none
    )
    return InputRows(kind="folder", frame=frame, has_punsafe=False, extra=pd.DataFrame(index=range(n_rows)))
