"""Real photographs with near-duplicate variants, hashed the way the curation stage hashes them.

The originals are camera JPEGs from ``../shared/datasets/clothing10`` (or ``$FRANCA_SHARED_DATASETS``);
tests using them skip when it is absent. Every second original gets variants: downscaled, re-encoded
at low quality, slightly cropped, and saved losslessly as PNG (same decoded pixels: an exact duplicate).
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from data_filters.config import IntegrityConfig
from data_filters.hashing import image_hashes
from data_filters.integrity import check_image


def shared_datasets() -> Path:
    env = os.environ.get("FRANCA_SHARED_DATASETS")
    return Path(env) if env else Path(__file__).resolve().parents[3] / "shared" / "datasets"


CLOTHING = shared_datasets() / "clothing10"
HAS_PHOTOS = (CLOTHING / "train").is_dir()


def _encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _crop(image: Image.Image, fraction: float) -> Image.Image:
    dx, dy = round(image.width * fraction), round(image.height * fraction)
    return image.crop((dx, dy, image.width - dx, image.height - dy))


VARIANTS: dict[str, Callable[[Image.Image], bytes]] = {
    "resized": lambda im: _encode(im.resize((im.width * 3 // 5, im.height * 3 // 5)), "JPEG", quality=85),
    "reencoded": lambda im: _encode(im, "JPEG", quality=35),
    "cropped": lambda im: _encode(_crop(im, 0.02), "JPEG", quality=90),
    "png": lambda im: _encode(im, "PNG", compress_level=1),
}


def photo_rows(n_originals: int = 150) -> pd.DataFrame:
    """``n_originals`` photographs spread over the classes, plus four variants of every second one.

    One row per image, in inspection-file columns (``row_id, reason, pixel_hash, phash, width,
    height``) plus ``name``, ``source`` (the original's index) and ``variant``.
    """
    return _photo_rows(n_originals).copy()


@cache
def _photo_rows(n_originals: int) -> pd.DataFrame:
    files = sorted((CLOTHING / "train").glob("*/*.jpg"))
    files = files[:: max(1, len(files) // n_originals)][:n_originals]
    payloads: list[tuple[str, int, str, bytes]] = []
    for i, path in enumerate(files):
        data = path.read_bytes()
        payloads.append((path.name, i, "original", data))
        if i % 2 == 0:
            original = check_image(data, IntegrityConfig()).image
            assert original is not None
            payloads += [(path.name, i, kind, make(original)) for kind, make in VARIANTS.items()]
    return _hashed_rows(payloads)


def _hashed_rows(payloads: list[tuple[str, int, str, bytes]]) -> pd.DataFrame:
    records = []
    for row_id, (name, source, variant, data) in enumerate(payloads):
        check = check_image(data, IntegrityConfig())
        assert check.image is not None, f"{name} ({variant}) did not decode"
        hashes = image_hashes(check.image)
        records.append(
            {
                "row_id": row_id,
                "name": name,
                "source": source,
                "variant": variant,
                "reason": None,
                "pixel_hash": hashes.pixel_hash,
                "phash": hashes.phash,
                "width": check.image.width,
                "height": check.image.height,
            }
        )
    frame = pd.DataFrame.from_records(records)
    frame["row_id"] = frame["row_id"].astype(np.int64)
    frame["reason"] = frame["reason"].astype(object)
    frame["phash"] = frame["phash"].astype("UInt64")
    frame[["width", "height"]] = frame[["width", "height"]].astype("Int64")
    return frame
