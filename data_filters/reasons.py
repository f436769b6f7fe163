"""Why a row was dropped: the closed vocabulary of the manifest's ``reason`` column.

Filters run in the order below and a row carries the first reason that applies, so the report's
counts per reason add up to the number of dropped rows.
"""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    """Drop reasons, in the order the filters apply."""

    MALFORMED_URL = "malformed_url"
    DUPLICATE_ROW = "duplicate_row"
    DOWNLOAD_FAILED = "download_failed"
    DECODE_ERROR = "decode_error"
    TOO_MANY_PIXELS = "too_many_pixels"
    TOO_SMALL = "too_small"
    BAD_ASPECT_RATIO = "bad_aspect_ratio"
    NSFW_PUNSAFE = "nsfw_punsafe"
    NSFW_DETECTOR = "nsfw_detector"
    EVAL_CONTAMINATION = "eval_contamination"
    DUPLICATE_EXACT = "duplicate_exact"
    DUPLICATE_NEAR = "duplicate_near"


class Status(StrEnum):
    """Final fate of an input row."""

    KEPT = "kept"
    DROPPED = "dropped"
