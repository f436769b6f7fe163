"""Decoding, checks and colour normalisation of single images, and the two hashes."""

from __future__ import annotations

import io

import imagehash
import numpy as np
import pytest
import xxhash
from curate_catalogue import animated_gif, jpeg, photo, png, png_declaring, rgb, rotated_jpeg, sixteen_bit_png
from PIL import Image

from data_filters.config import IntegrityConfig
from data_filters.hashing import image_hashes, perceptual_hash, phash_hex, pixel_hash, popcount64
from data_filters.integrity import check_image, encode_image
from data_filters.reasons import Reason

CONFIG = IntegrityConfig()


@pytest.mark.parametrize(
    ("payload", "reason", "fragment"),
    [
        (b"", Reason.DECODE_ERROR, "empty body"),
        (b"<html><body>hello</body></html>", Reason.DECODE_ERROR, "not a decodable image"),
        (jpeg(rgb("gravel"))[:5000], Reason.DECODE_ERROR, "truncated"),
        (png(Image.new("RGB", (1, 1))), Reason.TOO_SMALL, "1x1"),
        (jpeg(rgb("retina").resize((600, 100))), Reason.BAD_ASPECT_RATIO, "aspect ratio 6.00"),
        (png_declaring(60_000, 60_000), Reason.TOO_MANY_PIXELS, "Pillow"),
        (png_declaring(8_000, 6_000), Reason.TOO_MANY_PIXELS, "declared 8000x6000"),
    ],
)
def test_bad_images_get_their_reason(payload: bytes, reason: Reason, fragment: str) -> None:
    check = check_image(payload, CONFIG)
    assert check.reason is reason and check.image is None
    assert check.detail is not None and fragment in check.detail
    assert " at 0x" not in check.detail  # no object addresses: details must be reproducible


def test_declared_size_is_refused_before_decoding() -> None:
    small_limit = IntegrityConfig(max_pixels=100_000)
    check = check_image(jpeg(rgb("astronaut")), small_limit)
    assert check.reason is Reason.TOO_MANY_PIXELS and (check.width, check.height) == (512, 512)


@pytest.mark.parametrize(
    ("payload", "note"),
    [
        (jpeg(rgb("hubble_deep_field").resize((300, 262)).convert("CMYK")), "mode CMYK -> RGB"),
        (sixteen_bit_png("moon"), "mode I;16 -> RGB"),
        (png(photo("logo")), "mode RGBA -> RGB"),
        (png(rgb("coffee").convert("P")), "mode P -> RGB"),
        (jpeg(photo("camera")), "mode L -> RGB"),
        (animated_gif(("coins", "clock"), (200, 160)), "animated: first frame kept"),
        (rotated_jpeg("page"), "EXIF orientation 6 applied"),
    ],
)
def test_unusual_images_are_normalised_to_rgb(payload: bytes, note: str) -> None:
    check = check_image(payload, CONFIG)
    assert check.passed and check.image is not None and check.image.mode == "RGB"
    assert check.needs_reencode and check.detail is not None and note in check.detail
    again = Image.open(io.BytesIO(encode_image(check.image, check.ext, CONFIG)))
    assert again.mode == "RGB" and again.size == check.image.size


def test_plain_rgb_jpeg_is_copied_not_reencoded() -> None:
    check = check_image(jpeg(rgb("astronaut")), CONFIG)
    assert check.passed and not check.needs_reencode and check.ext == "jpg" and check.detail is None


def test_sixteen_bit_is_scaled_not_clipped() -> None:
    check = check_image(sixteen_bit_png("moon"), CONFIG)
    assert check.image is not None
    expected = np.asarray(photo("moon").convert("L"))
    assert np.abs(np.asarray(check.image)[..., 0].astype(int) - expected).max() <= 1


def test_alpha_is_composited_on_white() -> None:
    rgba = Image.new("RGBA", (80, 80), (255, 0, 0, 0))  # fully transparent red
    check = check_image(png(rgba), CONFIG)
    assert check.image is not None and check.image.getpixel((5, 5)) == (255, 255, 255)


def test_exif_rotation_gives_the_upright_image() -> None:
    check = check_image(rotated_jpeg("page"), CONFIG)
    assert check.image is not None and check.image.size == rgb("page").size
    upright = np.asarray(rgb("page"), dtype=float)
    assert np.abs(np.asarray(check.image, dtype=float) - upright).mean() < 8  # JPEG noise only


def test_pixel_hash_ignores_the_file_format_only() -> None:
    image = rgb("immunohistochemistry")
    a, b = check_image(png(image), CONFIG).image, check_image(png(image, compress_level=1), CONFIG).image
    c = check_image(jpeg(image), CONFIG).image
    assert a is not None and b is not None and c is not None
    assert pixel_hash(a) == pixel_hash(b) != pixel_hash(c)


def test_phash_matches_imagehash_and_finds_near_duplicates() -> None:
    coffee = rgb("coffee")
    assert phash_hex(perceptual_hash(coffee)) == str(imagehash.phash(coffee))
    small = check_image(jpeg(coffee.resize((420, 280)), quality=60), CONFIG).image
    other = rgb("rocket")
    assert small is not None
    near = popcount64(np.array([perceptual_hash(coffee) ^ perceptual_hash(small)], dtype=np.uint64))[0]
    far = popcount64(np.array([perceptual_hash(coffee) ^ perceptual_hash(other)], dtype=np.uint64))[0]
    assert near <= 4 < 16 <= far


def test_pixel_hash_is_of_the_canonical_rgbx_layout() -> None:
    """Read in place (Arrow export) or copied out, the hashed bytes are Pillow's RGBX rows."""
    image = rgb("coffee")
    expected = xxhash.xxh3_128(f"{image.width}x{image.height}:RGBX".encode() + image.tobytes("raw", "RGBX"))
    assert pixel_hash(image) == expected.hexdigest()
    assert set(np.frombuffer(image.tobytes("raw", "RGBX"), np.uint8)[3::4].tolist()) == {255}
    large = Image.new("RGB", (4000, 2600), (10, 20, 30))  # rows in several blocks: copied out
    blob = f"{large.width}x{large.height}:RGBX".encode() + large.tobytes("raw", "RGBX")
    assert pixel_hash(large) == xxhash.xxh3_128(blob).hexdigest()


def test_pixel_hash_is_equal_for_equal_pixels_however_they_were_made() -> None:
    pixels = np.asarray(check_image(jpeg(rgb("chelsea")), CONFIG).image)  # (H, W, 3) JPEG-decoded
    made = [
        Image.fromarray(pixels),
        check_image(png(Image.fromarray(pixels)), CONFIG).image,
        check_image(png(Image.fromarray(pixels).convert("RGBA")), CONFIG).image,  # opaque alpha
        check_image(png(Image.fromarray(pixels).transpose(Image.Transpose.ROTATE_90)), CONFIG).image,
    ]
    made[3] = made[3].transpose(Image.Transpose.ROTATE_270) if made[3] is not None else None
    digests = {pixel_hash(im) for im in made if im is not None}
    assert len(digests) == 1 and len(made) == 4


def test_phash_bits_follow_imagehash_on_photographs() -> None:
    """Same recipe as imagehash.phash up to rounding: equal bits, or a coefficient at the median."""
    distances = []
    for name in ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "camera", "page"):
        for size in ((512, 512), (300, 200), (1000, 700), (90, 70)):
            image = rgb(name).resize(size)
            ours = image_hashes(image).phash
            distances.append(bin(ours ^ int(str(imagehash.phash(image)), 16)).count("1"))
    assert max(distances) <= 2 and distances.count(0) >= 0.7 * len(distances)


def test_flat_images_hash_deterministically() -> None:
    """No floating-point noise decides the bits of a flat image: only a non-zero DC sets a bit."""
    for colour in ((0, 0, 0), (128, 128, 128), (255, 10, 40)):
        expected = 0 if colour == (0, 0, 0) else 1 << 63
        for size in ((64, 64), (333, 97), (1200, 800)):
            assert perceptual_hash(Image.new("RGB", size, colour)) == expected
