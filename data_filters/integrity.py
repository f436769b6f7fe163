"""Decode an image fully, check it, and normalise it to 8-bit RGB.

The checks, in order: the declared size is read from the header and refused above
``max_pixels`` before any pixel is decoded (decompression bombs); the first frame is decoded
completely (truncated files, HTML pages, empty bodies fail here); EXIF orientation is applied; then
the minimum side and the aspect ratio are checked on the upright image. Normalisation covers
CMYK/YCbCr/LAB, palette and 1-bit images, 16-bit and float greyscale, alpha (composited on white)
and animations (first frame). Pillow's global ``ImageFile.LOAD_TRUNCATED_IMAGES`` must stay False.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass

import numpy as np
from PIL import Image

from data_filters.config import IntegrityConfig
from data_filters.reasons import Reason

EXIF_ORIENTATION_TAG = 0x0112
# EXIF orientation value -> the transpose that makes the image upright (EXIF 2.32, tag 274).
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
_WIDE_GREY_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
_COPYABLE_FORMATS = {"JPEG": "jpg", "PNG": "png"}
# Pillow messages can embed "<_io.BytesIO object at 0x7f...>": drop it so details are reproducible.
_OBJECT_REPR = re.compile(r"\s*<[^<>]* at 0x[0-9a-fA-F]+>")


@dataclass(frozen=True)
class ImageCheck:
    """Outcome of decoding one file. ``image`` is the normalised RGB image when it passed."""

    reason: Reason | None
    detail: str | None
    width: int | None
    height: int | None
    image: Image.Image | None = None
    needs_reencode: bool = False
    ext: str = "jpg"

    @property
    def passed(self) -> bool:
        return self.reason is None


def check_image(data: bytes | None, config: IntegrityConfig) -> ImageCheck:
    """Decode ``data`` completely and apply the integrity checks of ``config``."""
    if not data:
        return ImageCheck(Reason.DECODE_ERROR, "empty body (0 bytes)", None, None)
    try:
        image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as err:
        return ImageCheck(Reason.TOO_MANY_PIXELS, f"refused by Pillow: {err}", None, None)
    except Exception as err:  # decoders raise many types on hostile input
        return ImageCheck(Reason.DECODE_ERROR, f"not a decodable image: {_describe(err)}", None, None)
    width, height = image.size
    if width * height > config.max_pixels:
        detail = f"declared {width}x{height} = {width * height} pixels > {config.max_pixels}"
        return ImageCheck(Reason.TOO_MANY_PIXELS, detail, width, height)
    try:
        image.load()  # first frame, fully
    except Exception as err:
        return ImageCheck(Reason.DECODE_ERROR, f"decode failed: {_describe(err)}", width, height)
    return _check_decoded(image, config)


def _check_decoded(image: Image.Image, config: IntegrityConfig) -> ImageCheck:
    orientation = _orientation(image)
    source_format, source_mode = image.format or "", image.mode
    animated = getattr(image, "n_frames", 1) > 1
    rgb = to_rgb(image)
    if orientation in _UPRIGHT:
        rgb = rgb.transpose(_UPRIGHT[orientation])
    width, height = rgb.size
    if min(width, height) < config.min_side:
        detail = f"{width}x{height}: shorter side < {config.min_side}"
        return ImageCheck(Reason.TOO_SMALL, detail, width, height)
    ratio = max(width, height) / min(width, height)
    if ratio > config.max_aspect_ratio:
        detail = f"{width}x{height}: aspect ratio {ratio:.2f} > {config.max_aspect_ratio}"
        return ImageCheck(Reason.BAD_ASPECT_RATIO, detail, width, height)
    copyable = source_format in _COPYABLE_FORMATS and source_mode == "RGB" and not animated
    needs_reencode = not copyable or orientation in _UPRIGHT
    ext = "jpg" if source_format == "JPEG" else "png"
    notes = _notes(source_mode, orientation, animated) if needs_reencode else None
    return ImageCheck(None, notes, width, height, rgb, needs_reencode, ext)


def _notes(mode: str, orientation: int, animated: bool) -> str:
    parts = [f"mode {mode} -> RGB"] if mode != "RGB" else []
    if orientation in _UPRIGHT:
        parts.append(f"EXIF orientation {orientation} applied")
    if animated:
        parts.append("animated: first frame kept")
    return "; ".join(parts) or "re-encoded"


def _orientation(image: Image.Image) -> int:
    try:
        return int(image.getexif().get(EXIF_ORIENTATION_TAG, 1))
    except Exception:  # a corrupt EXIF block must not reject an otherwise valid image
        return 1


def _describe(err: BaseException) -> str:
    text = _OBJECT_REPR.sub("", str(err)).strip() or type(err).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB view of any Pillow mode; alpha is composited on white."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in _WIDE_GREY_MODES:
        return _wide_grey_to_rgb(image)
    if mode == "P" and "transparency" in image.info:
        image, mode = image.convert("RGBA"), "RGBA"
    if mode in _ALPHA_MODES:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _wide_grey_to_rgb(image: Image.Image) -> Image.Image:
    """16-bit / 32-bit / float greyscale to 8 bits by scaling, not clipping."""
    values = np.asarray(image).astype(np.float64)  # (H, W)
    top = float(values.max()) if values.size else 0.0
    if image.mode == "F" and top <= 1.0:
        scale = 255.0
    elif top > 255.0 or image.mode.startswith("I;16"):
        scale = 255.0 / 65535.0
    else:
        scale = 1.0
    grey = np.clip(np.rint(values * scale), 0, 255).astype(np.uint8)
    return Image.fromarray(grey).convert("RGB")


def encode_image(image: Image.Image, ext: str, config: IntegrityConfig) -> bytes:
    """Encode a normalised RGB image for the output shards (JPEG at config quality, or PNG)."""
    buffer = io.BytesIO()
    if ext == "jpg":
        image.save(buffer, format="JPEG", quality=config.jpeg_quality)
    else:
        image.save(buffer, format="PNG")
    return buffer.getvalue()
