"""Curation speed: images/s per core for each filter, and near-duplicate search growth.

    .venv/bin/python benchmarks/curate/bench_curate.py            # full run (~2-4 min on 2 cores)
    .venv/bin/python benchmarks/curate/bench_curate.py --quick    # 1e4 and 1e5 hashes only

Every filter runs in this one process on one thread (torch, onnxruntime and BLAS pinned to a
single thread) and is timed in CPU seconds, so images/s is per core even on a shared machine.
Test images are scikit-image photographs re-encoded as JPEG at typical web sizes, plus camera JPEGs
as published (clothing10, side "web") when ../shared/datasets has them. Hashing rows also give the
rate of the previous hashing recipe, measured in turn with the current one. Near-duplicate
search: a self-join of N random 64-bit hashes with 1% planted near copies, at the default radius,
with the growth exponent fitted on log t vs log N; brute force on 10^4 hashes is the baseline
measured in the same run. Goals (issue 5): integrity plus hashing >= 1000 images/s/core; search
growing no faster than about N^1.2.
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import imagehash  # noqa: E402
import numpy as np  # noqa: E402
import skimage.data  # noqa: E402
import xxhash  # noqa: E402
from PIL import Image  # noqa: E402

from data_filters.config import DedupConfig, IntegrityConfig  # noqa: E402
from data_filters.hashing import image_hashes  # noqa: E402
from data_filters.integrity import check_image  # noqa: E402
from data_filters.neardup import brute_force_pairs, plan_bands, self_pairs  # noqa: E402

PHOTOS = ("astronaut", "coffee", "rocket", "chelsea", "hubble_deep_field", "immunohistochemistry", "camera")
SIDES = (256, 384, 512)
GOAL = 1000  # integrity + hashes, images/s/core (issue 5)
_SHARED = os.environ.get("FRANCA_SHARED_DATASETS")
SHARED_DATASETS = Path(_SHARED) if _SHARED else Path(__file__).resolve().parents[3] / "shared" / "datasets"
WEB_PHOTOS = SHARED_DATASETS / "clothing10"


@dataclass(frozen=True)
class Rate:
    """Throughput of one filter on one image size, and of its reference recipe when it has one."""

    name: str
    side: int | str
    images_per_second: float
    reference_per_second: float | None = None

    @property
    def speedup(self) -> float | None:
        if self.reference_per_second is None:
            return None
        return self.images_per_second / self.reference_per_second


@dataclass(frozen=True)
class SearchPoint:
    """Near-duplicate self-join at one N."""

    n: int
    seconds: float
    pairs: int
    bands: int


def jpeg_set(side: int) -> list[bytes]:
    """The photographs resized so their longer side is ``side``, as quality-90 JPEGs."""
    payloads = []
    for name in PHOTOS:
        image = Image.fromarray(np.asarray(getattr(skimage.data, name)())).convert("RGB")
        image.thumbnail((side, side))
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=90)
        payloads.append(buffer.getvalue())
    return payloads


def web_photo_set(limit: int = 48) -> list[bytes]:
    """Camera JPEGs as they were published (clothing10, about 400x530), when ../shared has them."""
    files = sorted(WEB_PHOTOS.glob("train/*/*.jpg"))
    return [path.read_bytes() for path in files[:: max(1, len(files) // limit)][:limit]]


def rate(work: Callable[[], int], min_seconds: float = 1.5) -> float:
    """Items per CPU-second of ``work`` (which returns how many items it did), repeated for a while.

    CPU time of this single-threaded process, so a machine shared with other jobs still gives the
    per-core figure.
    """
    work()  # warm-up
    done, start = 0, time.process_time()
    while time.process_time() - start < min_seconds:
        done += work()
    return done / (time.process_time() - start)


def best_rates(works: dict[str, Callable[[], int]], rounds: int, seconds: float = 0.6) -> dict[str, float]:
    """``rate`` of each work, the best of ``rounds`` taken in turn.

    A recipe and its reference then see the same machine load (other jobs only slow a round down).
    """
    best = dict.fromkeys(works, 0.0)
    for _ in range(rounds):
        for name, work in works.items():
            best[name] = max(best[name], rate(work, seconds))
    return best


def reference_hashes(image: Image.Image) -> tuple[str, int]:
    """The hashing recipe before the hash-path speed-up, timed in the same run as the baseline.

    RGB bytes copied out for xxh3; grey at full size, Lanczos with reducing_gap=2, imagehash.phash
    (scipy DCT).
    """
    hasher = xxhash.xxh3_128()
    hasher.update(f"{image.width}x{image.height}:{image.mode}".encode())
    hasher.update(image.tobytes())
    grey = image.convert("L").resize((32, 32), Image.Resampling.LANCZOS, reducing_gap=2.0)
    bits = imagehash.phash(grey).hash.reshape(-1)  # (64,) bool
    return hasher.hexdigest(), int.from_bytes(np.packbits(bits).tobytes(), "big")


def decoded(payloads: Sequence[bytes], integrity: IntegrityConfig) -> list[Image.Image]:
    images = [check_image(p, integrity).image for p in payloads]
    return [im for im in images if im is not None]


def size_rates(payloads: list[bytes], side: int | str, quick: bool) -> list[Rate]:
    """Integrity alone, the two hashes alone and both together, each against the reference recipe."""
    integrity = IntegrityConfig()
    images = decoded(payloads, integrity)

    def checks() -> int:
        return sum(check_image(p, integrity).passed for p in payloads)

    def hashes(recipe: Callable[[Image.Image], object]) -> Callable[[], int]:
        return lambda: sum(1 for im in images if recipe(im))

    def checked_hashes(recipe: Callable[[Image.Image], object]) -> Callable[[], int]:
        def work() -> int:
            for payload in payloads:
                image = check_image(payload, integrity).image
                assert image is not None
                recipe(image)
            return len(payloads)

        return work

    works = {
        "integrity": checks,
        "hashes": hashes(image_hashes),
        "hashes/ref": hashes(reference_hashes),
        "both": checked_hashes(image_hashes),
        "both/ref": checked_hashes(reference_hashes),
    }
    best = best_rates(works, rounds=2 if quick else 3)
    return [
        Rate("integrity (full decode + checks)", side, best["integrity"]),
        Rate("hashes (xxh3-128 + pHash)", side, best["hashes"], best["hashes/ref"]),
        Rate("integrity + hashes", side, best["both"], best["both/ref"]),
    ]


def filter_rates(quick: bool) -> list[Rate]:
    rates: list[Rate] = []
    for side in SIDES:
        rates += size_rates(jpeg_set(side), side, quick)
    web = web_photo_set() if WEB_PHOTOS.is_dir() else []
    if web:
        rates += size_rates(web, "web", quick)
    rates += detector_rates(jpeg_set(384), quick)
    return rates


def detector_rates(payloads: Sequence[bytes], quick: bool) -> list[Rate]:
    import torch

    from data_filters.nsfw import OpenNsfwDetector

    torch.set_num_threads(1)
    images = decoded(payloads, IntegrityConfig())
    batch = (images * 5)[:32]
    opennsfw = OpenNsfwDetector()
    rates = [Rate("nsfw: opennsfw (onnxruntime)", 384, rate(lambda: len(opennsfw.score(batch)), 3.0))]
    if not quick:
        rates.append(Rate("nsfw: CLIP ViT-B-32 + head (random weights)", 384, clip_rate(batch)))
    return rates


def clip_rate(batch: list[Image.Image]) -> float:
    """Speed of the CLIP detector's forward pass with a ViT-B-32 of random weights."""
    import open_clip
    import torch

    from data_filters.clip_head import ClipHead

    model, _, preprocess = open_clip.create_model_and_transforms("ViT-B-32", pretrained=None)
    model.eval()
    head = ClipHead.mlp([512, 64, 1])

    def score() -> int:
        tensors = torch.stack([preprocess(im) for im in batch])  # (32, 3, 224, 224)
        with torch.inference_mode():
            head(model.encode_image(tensors, normalize=True))
        return len(batch)

    return rate(score, 3.0)


def planted_hashes(n: int, radius: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    hashes = rng.integers(0, np.iinfo(np.uint64).max, size=n, dtype=np.uint64, endpoint=True)
    copies = max(1, n // 100)
    sources, targets = rng.integers(0, n, size=copies), rng.integers(0, n, size=copies)
    masks = np.zeros(copies, dtype=np.uint64)
    for _ in range(radius):  # each copy differs in up to ``radius`` random bits
        flip = rng.random(copies) < 0.5
        masks[flip] |= np.uint64(1) << rng.integers(0, 64, size=int(flip.sum())).astype(np.uint64)
    hashes[targets] = hashes[sources] ^ masks
    return hashes


def search_points(sizes: Sequence[int], radius: int) -> list[SearchPoint]:
    points = []
    for n in sizes:
        hashes = planted_hashes(n, radius)
        start = time.process_time()
        a, _ = self_pairs(hashes, radius)
        seconds = time.process_time() - start
        points.append(SearchPoint(n, seconds, len(a), plan_bands(n, n, radius).n_bands))
    return points


def growth_exponent(points: Sequence[SearchPoint]) -> float:
    """Least-squares slope of log(seconds) against log(N)."""
    slope, _ = np.polyfit(np.log([p.n for p in points]), np.log([p.seconds for p in points]), 1)
    return float(slope)


def print_rates(rates: Sequence[Rate]) -> None:
    """The filter table; a hashing row also gives its reference recipe's rate and the speed-up."""
    width = max(len(r.name) for r in rates) + 2
    print(f"{'filter':<{width}}{'side':>6}{'images/s/core':>15}{'reference':>11}{'speed-up':>10}")
    for r in rates:
        extra = "" if r.speedup is None else f"{r.reference_per_second:>11.0f}{r.speedup:>9.2f}x"
        print(f"{r.name:<{width}}{r.side!s:>6}{r.images_per_second:>15.0f}{extra}")
    both = [r for r in rates if r.name == "integrity + hashes"]
    verdict = ", ".join(f"{r.side}: {'met' if r.images_per_second >= GOAL else 'below'}" for r in both)
    print(
        f"reference = the previous hashing recipe, timed in turn with the current one (best of rounds)\n"
        f"goal: integrity + hashes >= {GOAL} images/s/core ({verdict})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="skip 1e6 hashes and the CLIP forward")
    parser.add_argument("--radius", type=int, default=DedupConfig().hamming_radius)
    parser.add_argument("--json", default=None, help="also write the numbers to this file")
    args = parser.parse_args()

    print(f"cpu cores: {os.cpu_count()}  (every figure below uses one thread)\n")
    rates = filter_rates(args.quick)
    print_rates(rates)

    sizes = [10**4, 10**5] if args.quick else [10**4, 10**5, 10**6]
    points = search_points(sizes, args.radius)
    start = time.process_time()
    brute_force_pairs(planted_hashes(10**4, args.radius), args.radius)
    brute = time.process_time() - start
    print(f"\nnear-duplicate self-join, radius {args.radius} (multi-index hashing, one thread)")
    print(f"{'N':>10}{'bands':>7}{'CPU s':>10}{'pairs':>9}{'brute force (CPU s)':>22}")
    for p in points:
        measured = "" if p.n != 10**4 else " measured"
        estimate = f"{brute * (p.n / 1e4) ** 2:.1f}{measured or ' est. N^2'}"
        print(f"{p.n:>10}{p.bands:>7}{p.seconds:>10.3f}{p.pairs:>9}   {estimate}")
    exponent = growth_exponent(points)
    steps = ", ".join(
        f"{np.log(b.seconds / a.seconds) / np.log(b.n / a.n):.2f}" for a, b in itertools.pairwise(points)
    )
    print(f"growth exponent (fit): N^{exponent:.2f}   step by step: {steps}   goal: <= ~1.2")
    if args.json:
        rows = {
            "rates": [{**asdict(r), "speedup": r.speedup} for r in rates],
            "search": [asdict(p) for p in points],
        }
        with open(args.json, "w") as handle:
            json.dump({**rows, "exponent": exponent}, handle, indent=2)


if __name__ == "__main__":
    main()
