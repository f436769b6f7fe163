"""Image fingerprints for deduplication.

Two hashes per image, both computed on the normalised RGB image (EXIF rotation applied):

- ``pixel_hash``: a 128-bit xxh3 hash of the size and raw RGB bytes. Equal hashes mean equal
  decoded pixels, whatever the file format or metadata, which is what exact dedup compares.
- ``phash``: the 64-bit DCT perceptual hash of imagehash (Zauner 2010), used for near duplicates
  by Hamming distance. imagehash shrinks the image to 32x32 grey with a Lanczos filter; we do that
  shrink ourselves with Pillow's reducing_gap (box pre-reduction, then Lanczos), which gives the
  same bits on photographs at a fraction of the cost.
"""

from __future__ import annotations

import imagehash
import numpy as np
import xxhash
from PIL import Image

PHASH_SIDE = 32  # imagehash.phash: hash_size 8 x highfreq_factor 4
_BYTE_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.int64)


def pixel_hash(image: Image.Image) -> str:
    """Hex xxh3-128 of ``WIDTHxHEIGHT:MODE`` followed by the raw pixel bytes."""
    hasher = xxhash.xxh3_128()
    hasher.update(f"{image.width}x{image.height}:{image.mode}".encode())
    hasher.update(image.tobytes())
    return hasher.hexdigest()


def perceptual_hash(image: Image.Image) -> int:
    """64-bit pHash as an unsigned integer (bit 63 = first DCT coefficient of imagehash's grid)."""
    grey = image.convert("L").resize((PHASH_SIDE, PHASH_SIDE), Image.Resampling.LANCZOS, reducing_gap=2.0)
    bits = imagehash.phash(grey).hash.reshape(-1)  # (64,) bool, row-major like str(ImageHash)
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


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
