"""Test images and the bad-input catalogue served by the loopback HTTP server.

Real photographs come from scikit-image's bundled data (no download, no ../shared). Each ``Case``
is one row of the URL list with the reason the curation stage must give it (None = kept).
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass
from functools import cache

import numpy as np
import skimage.data
from PIL import Image

from data_filters.reasons import Reason


@cache
def photo(name: str) -> Image.Image:
    """A scikit-image sample as a Pillow image (RGB, RGBA or L, as the sample is)."""
    array = np.asarray(getattr(skimage.data, name)())
    if array.dtype == bool:
        array = array.astype(np.uint8) * 255
    return Image.fromarray(array)


def rgb(name: str) -> Image.Image:
    return photo(name).convert("RGB")


def jpeg(image: Image.Image, quality: int = 90, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality, **options)
    return buffer.getvalue()


def png(image: Image.Image, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **options)
    return buffer.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares width x height (a decompression bomb's header)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\0" * 1024)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", pixels) + _chunk(b"IEND", b"")


def sixteen_bit_png(name: str) -> bytes:
    grey = np.asarray(photo(name).convert("L"), dtype=np.uint16) * 257  # full 16-bit range
    return png(Image.fromarray(grey))


def rotated_jpeg(name: str) -> bytes:
    """Pixels stored sideways with EXIF orientation 6 (display rotated 90 degrees clockwise)."""
    upright = rgb(name)
    stored = upright.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    return jpeg(stored, exif=exif.tobytes())


def animated_gif(names: tuple[str, ...], size: tuple[int, int]) -> bytes:
    frames = [rgb(n).resize(size) for n in names]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buffer.getvalue()


@dataclass(frozen=True)
class Case:
    """One URL-list row: what the server answers and the reason the stage must record."""

    name: str
    expected: Reason | None
    body: bytes = b""
    status: int = 200
    content_type: str = "image/jpeg"
    delay_s: float = 0.0
    redirect_to: str | None = None
    punsafe: float = 0.0
    url_override: str | None = None  # malformed URLs are not served

    def url(self, base: str) -> str:
        return self.url_override if self.url_override is not None else f"{base}/{self.name}"


def catalogue() -> list[Case]:
    """Every bad input of issue 5, plus images that must be kept, in URL-list order."""
    return [*_images_and_duplicates(), *_bad_images(), *_bad_downloads_and_rows()]


def _images_and_duplicates() -> list[Case]:
    rocket = jpeg(rgb("rocket"))
    immuno = rgb("immunohistochemistry")
    coffee = rgb("coffee")
    return [
        Case("astronaut.jpg", None, jpeg(rgb("astronaut"))),
        Case("camera_grey.jpg", None, jpeg(photo("camera"))),
        Case("coffee_small.jpg", Reason.DUPLICATE_NEAR, jpeg(coffee.resize((420, 280)), quality=60)),
        Case("coffee.jpg", None, jpeg(coffee)),
        Case("rocket.jpg", None, rocket),
        Case("rocket_copy.jpg", Reason.DUPLICATE_EXACT, rocket),
        Case("immuno.png", None, png(immuno), content_type="image/png"),
        Case(
            "immuno_recompressed.png",
            Reason.DUPLICATE_EXACT,
            png(immuno, compress_level=1),
            content_type="image/png",
        ),
        Case("hubble_cmyk.jpg", None, jpeg(rgb("hubble_deep_field").resize((500, 436)).convert("CMYK"))),
        Case("moon16.png", None, sixteen_bit_png("moon"), content_type="image/png"),
        Case("logo_rgba.png", None, png(photo("logo")), content_type="image/png"),
        Case("coins_clock.gif", None, animated_gif(("coins", "clock"), (300, 240)), content_type="image/gif"),
        Case("page_rotated.jpg", None, rotated_jpeg("page")),
    ]


def _bad_images() -> list[Case]:
    gravel = jpeg(rgb("gravel"))
    return [
        Case(
            "tiny.png",
            Reason.TOO_SMALL,
            png(Image.new("RGB", (1, 1), (200, 10, 10))),
            content_type="image/png",
        ),
        Case("small.jpg", Reason.TOO_SMALL, jpeg(rgb("colorwheel").resize((40, 40)))),
        Case("banner.jpg", Reason.BAD_ASPECT_RATIO, jpeg(rgb("retina").resize((600, 100)))),
        Case("bomb.png", Reason.TOO_MANY_PIXELS, png_declaring(60_000, 60_000), content_type="image/png"),
        Case(
            "big_declared.png", Reason.TOO_MANY_PIXELS, png_declaring(8_000, 6_000), content_type="image/png"
        ),
        Case("truncated.jpg", Reason.DECODE_ERROR, gravel[: len(gravel) // 2]),
        Case("page.html.jpg", Reason.DECODE_ERROR, b"<!doctype html><html><body>not an image</body></html>"),
        Case("empty.jpg", Reason.DECODE_ERROR, b""),
    ]


def _bad_downloads_and_rows() -> list[Case]:
    return [
        Case("missing.jpg", Reason.DOWNLOAD_FAILED, status=404),
        Case("error.jpg", Reason.DOWNLOAD_FAILED, status=500),
        Case("slow.jpg", Reason.DOWNLOAD_FAILED, jpeg(rgb("brick")), delay_s=5.0),
        Case("loop.jpg", Reason.DOWNLOAD_FAILED, status=302, redirect_to="/loop.jpg"),
        Case("grass_unsafe.jpg", Reason.NSFW_PUNSAFE, jpeg(rgb("grass")), punsafe=0.93),
        Case("chelsea.jpg", Reason.EVAL_CONTAMINATION, jpeg(rgb("chelsea"))),
        Case("clock.jpg", None, jpeg(rgb("clock"))),
        Case("bad-scheme", Reason.MALFORMED_URL, url_override="htp://127.0.0.1/broken.jpg"),
        Case("spaces", Reason.MALFORMED_URL, url_override="http://127.0.0.1/with space.jpg"),
        Case("not-a-url", Reason.MALFORMED_URL, url_override="not a url"),
        Case("no-host", Reason.MALFORMED_URL, url_override="http:///nohost.jpg"),
        Case("astronaut.jpg", Reason.DUPLICATE_ROW),  # the same URL as row 0
    ]


def eval_folder_images() -> dict[str, bytes]:
    """An evaluation set containing a re-encoded, resized chelsea (contaminates the training list)."""
    return {
        "cat_small.png": png(rgb("chelsea").resize((225, 150))),
        "texture.jpg": jpeg(rgb("brick").resize((64, 64))),
    }
