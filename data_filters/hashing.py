"""Image fingerprints for deduplication.

Two hashes per image, both computed on the normalised RGB image (EXIF rotation applied) that the
integrity check's one full decode produced; nothing is decoded a second time:

- ``pixel_hash``: a 128-bit xxh3 hash of the size and the decoded pixels in a canonical layout,
  Pillow's own: 4 bytes per pixel, R, G, B and a padding byte that Pillow always sets to 255
  (``tobytes("raw", "RGBX")``), row-major. Equal hashes mean equal decoded pixels, whatever the
  file format or metadata, which is what exact dedup compares. The bytes are read in place through
  Pillow's Arrow export (Pillow >= 11.2, rows in one block) instead of being copied out, and copied
  only when that export is unavailable; both give the same bytes.
- ``phash``: the 64-bit DCT perceptual hash of imagehash (Zauner 2010), used for near duplicates
  by Hamming distance: a 32x32 grey Lanczos thumbnail, its 2-D DCT-II, the 8x8 lowest
  frequencies, one bit per coefficient above their median. imagehash converts the whole image to
  grey and resamples it with Lanczos; we first box-reduce the RGB image by whole factors while both
  sides stay at least 64 px (Pillow's ``reduce``, as ``reducing_gap=2`` does), convert that small
  image to grey, and apply Lanczos (Pillow's weights) and the DCT together as two small matrix
  products in floating point. About 9 photographs in 10 get imagehash's exact bits, the others
  differ in 2 bits (a coefficient crossing the median), as with any change of resampling; the
  full-size grey conversion, Pillow's resampler setup and scipy's DCT were most of the hash time.

``HASH_VERSION`` names this recipe. It is part of the fingerprint of cached per-shard results, so
a rerun on an output directory hashed by another recipe recomputes them instead of mixing values.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pyarrow as pa
import xxhash
from PIL import Image

HASH_VERSION = "pixel=xxh3-128(WxH:RGBX); phash=reduce64-grey-lanczos32-dct8; v2"
PHASH_SIDE = 32  # imagehash.phash: hash_size 8 x highfreq_factor 4
PHASH_BITS_SIDE = 8
_MIN_REDUCED_SIDE = 2 * PHASH_SIDE  # box-reduce no further than this (Pillow's reducing_gap=2)
_LANCZOS_SUPPORT = 3.0
_DECIMALS = 6  # DCT coefficients are rounded so floating-point noise cannot flip a bit
_BYTE_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.int64)


def _dct_rows(n: int, k: int) -> np.ndarray:
    """First ``k`` rows of the unnormalised DCT-II matrix of size ``n`` (scipy.fftpack's 'dct')."""
    freq = np.arange(k, dtype=np.float64)[:, None]
    pos = np.arange(n, dtype=np.float64)[None, :]
    return 2.0 * np.cos(np.pi * freq * (2.0 * pos + 1.0) / (2.0 * n))  # (k, n)


_DCT_LOW = _dct_rows(PHASH_SIDE, PHASH_BITS_SIDE)  # (8, 32)


@dataclass(frozen=True)
class ImageHashes:
    """Both fingerprints of one decoded image."""

    pixel_hash: str
    phash: int


def image_hashes(image: Image.Image) -> ImageHashes:
    """The exact and the perceptual hash of one decoded image."""
    return ImageHashes(pixel_hash(image), perceptual_hash(image))


def pixel_hash(image: Image.Image) -> str:
    """Hex xxh3-128 of ``WIDTHxHEIGHT:LAYOUT`` followed by the pixel bytes in that layout."""
    layout = "RGBX" if image.mode == "RGB" else image.mode
    hasher = xxhash.xxh3_128()
    hasher.update(f"{image.width}x{image.height}:{layout}".encode())
    hasher.update(_pixel_bytes(image, layout))
    return hasher.hexdigest()


def _pixel_bytes(image: Image.Image, layout: str) -> bytes | memoryview:
    """``image.tobytes("raw", layout)``, without the copy when Pillow can export its rows."""
    if layout == "RGBX" and hasattr(image, "__arrow_c_array__"):
        try:
            values = pa.array(image).values  # uint8, 4 per pixel, Pillow's memory
        except (ValueError, TypeError, pa.ArrowException):  # rows in several blocks, old pyarrow
            values = None
        if values is not None and len(values) == 4 * image.width * image.height:
            return memoryview(values.buffers()[1])[values.offset : values.offset + len(values)]
    return image.tobytes("raw", layout)


def _lanczos(x: np.ndarray) -> np.ndarray:
    """Pillow's Lanczos kernel: sinc(x) sinc(x/3) on [-3, 3)."""
    inside = (x >= -_LANCZOS_SUPPORT) & (x < _LANCZOS_SUPPORT)
    return np.where(inside, np.sinc(x) * np.sinc(x / _LANCZOS_SUPPORT), 0.0)


@lru_cache(maxsize=4096)
def _resample_dct(in_size: int, extent: float) -> np.ndarray:
    """(8, in_size): Lanczos from ``[0, extent)`` to 32 samples (Pillow's weights), then the DCT rows."""
    scale = extent / PHASH_SIDE
    filter_scale = max(scale, 1.0)
    support = _LANCZOS_SUPPORT * filter_scale
    centre = (np.arange(PHASH_SIDE, dtype=np.float64) + 0.5) * scale  # (32,)
    low = np.maximum(np.floor(centre - support + 0.5), 0.0)[:, None]  # Pillow's window per output
    high = np.minimum(np.floor(centre + support + 0.5), in_size)[:, None]
    pos = np.arange(in_size, dtype=np.float64)[None, :]  # (1, in_size)
    taps = _lanczos((pos - centre[:, None] + 0.5) / filter_scale) * ((pos >= low) & (pos < high))
    matrix = _DCT_LOW @ (taps / taps.sum(axis=1, keepdims=True))  # (8, in_size)
    matrix.flags.writeable = False  # shared by every caller (and thread) through the cache
    return matrix


def reduced_grey(image: Image.Image) -> tuple[np.ndarray, float, float]:
    """Box-reduced grey pixels (h', w') and the image's extent in reduced pixels (height, width)."""
    if image.mode not in ("RGB", "L"):  # the stage passes RGB; anything else as imagehash would
        image = image.convert("RGB")
    fx, fy = max(1, image.width // _MIN_REDUCED_SIDE), max(1, image.height // _MIN_REDUCED_SIDE)
    small = image.reduce((fx, fy)) if (fx, fy) != (1, 1) else image  # size rounded up
    grey = small if small.mode == "L" else small.convert("L")
    return np.asarray(grey, dtype=np.float64), image.height / fy, image.width / fx


def perceptual_hash(image: Image.Image) -> int:
    """64-bit pHash as an unsigned integer (bit 63 = first DCT coefficient of imagehash's grid)."""
    grey, height, width = reduced_grey(image)
    rows, cols = _resample_dct(grey.shape[0], height), _resample_dct(grey.shape[1], width)
    low = np.round(rows @ grey @ cols.T, _DECIMALS).reshape(-1)  # (64,) row-major, like imagehash
    ordered, half = np.sort(low), low.size // 2
    median = (ordered[half - 1] + ordered[half]) / 2.0  # numpy.median of an even count
    return int.from_bytes(np.packbits(low > median).tobytes(), "big")


def phash_hex(value: int) -> str:
    """16-digit hex spelling of a pHash, the same string ``str(imagehash.phash(...))`` gives."""
    return f"{value:016x}"


def phash_from_hex(text: str) -> int:
    """Inverse of ``phash_hex``."""
    return int(text, 16)


def popcount64(values: np.ndarray) -> np.ndarray:
    """Number of set bits of each uint64 (vectorised)."""
    values = np.ascontiguousarray(values, dtype=np.uint64)
    if hasattr(np, "bitwise_count"):  # numpy >= 2.0
        return np.bitwise_count(values).astype(np.int64)
    as_bytes = values.view(np.uint8).reshape(-1, 8)  # (n, 8)
    return _BYTE_POPCOUNT[as_bytes].sum(axis=1)
