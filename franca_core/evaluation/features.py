"""Frozen-feature extraction with an on-disk cache, and the label-oracle feature source.

What is extracted follows the protocols in ``shared/reference/evaluation-protocols.md``:
- ``cls``: ``x_norm_clstoken`` (DINOv2 k-NN, log-reg, OOD);
- ``patch``: ``x_norm_patchtokens`` reshaped to the patch grid (Hummingbird, overclustering, linear
  segmentation, PCA pictures), stored as float16 to halve memory;
- ``blocks_cls`` / ``avgpool``: the class token of the last ``n`` blocks after the final norm and the mean
  of the last block's patch tokens (DINOv2 ``linear.py`` ``create_linear_input``);
- ``patch_rasa``: ``patch_token_rasa`` when the backbone carries a RASA head.

A cache entry is keyed by the backbone identity, the dataset fingerprint (files, split, transform) and the
request, so any change re-extracts. Entries are plain ``torch.save`` dicts loaded with
``weights_only=True``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Protocol

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from franca_core.evaluation.backbone import Backbone, output_field, patch_size_of

CACHE_VERSION = 1


@dataclass(frozen=True)
class FeatureRequest:
    """Which features to extract from each image."""

    patch: bool = False
    last_blocks: int = 0  # 0: none; n: CLS of the last n blocks + avgpool of the last block's patches
    rasa: bool = False


@dataclass
class FeatureSet:
    """Features of every image of one split, row-aligned with ``targets``."""

    cls: Tensor  # [N, D] float32
    targets: Tensor  # [N] int64 labels, or [N, H, W] int16 masks at the input resolution
    patch: Tensor | None = None  # [N, h, w, D] float16
    blocks_cls: Tensor | None = None  # [N, n, D] float32, oldest block first
    avgpool: Tensor | None = None  # [N, D] float32
    patch_rasa: Tensor | None = None  # [N, h, w, D] float16

    def __len__(self) -> int:
        return int(self.cls.shape[0])

    def to_dict(self) -> dict[str, Tensor]:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    @classmethod
    def from_dict(cls, d: dict[str, Tensor]) -> FeatureSet:
        return cls(**d)

    def select(self, idx: Tensor) -> FeatureSet:
        """The rows ``idx`` of every field."""
        return FeatureSet(**{k: v[idx] for k, v in self.to_dict().items()})


class LabelledDataset(Protocol):
    """A torch dataset of (image tensor, target) with a fingerprint for the cache key."""

    fingerprint: str

    def __len__(self) -> int: ...

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor | int]: ...


class FeatureSource(Protocol):
    """Turns a dataset into a :class:`FeatureSet` (a backbone with a cache, or the label oracle)."""

    patch_size: int

    def extract(self, dataset: LabelledDataset, request: FeatureRequest) -> FeatureSet: ...


def _grid(tokens: Tensor, h: int, w: int) -> Tensor:
    """[B, N, D] patch tokens -> [B, h, w, D] (row-major patch order, as the ViT patchifies)."""
    return tokens.reshape(tokens.shape[0], h, w, tokens.shape[-1])


def _depth(model: Backbone) -> int:
    depth = getattr(model, "n_blocks", None)
    if depth is None:
        depth = len(getattr(model, "blocks", ()))
    return int(depth) if depth else 1 << 30


@torch.inference_mode()
def extract_batch(model: Backbone, images: Tensor, request: FeatureRequest) -> dict[str, Tensor]:
    """Features of one batch [B, 3, H, W] as float32 tensors on the CPU."""
    p = patch_size_of(model)
    h, w = images.shape[-2] // p, images.shape[-1] // p
    out: dict[str, Tensor] = {}
    need_forward = request.rasa or request.last_blocks == 0
    if request.last_blocks > 0:
        n = min(request.last_blocks, _depth(model))  # a shallow model has fewer than 4 blocks
        layers = model.get_intermediate_layers(images, n=n, return_class_token=True, norm=True)
        out["blocks_cls"] = torch.stack([cls_tok for _, cls_tok in layers], dim=1)  # [B, n, D]
        last_patch = layers[-1][0]  # [B, N, D] = x_norm_patchtokens
        out["avgpool"] = last_patch.mean(dim=1)
        out["cls"] = layers[-1][1]
        if request.patch:
            out["patch"] = _grid(last_patch, h, w)
    if need_forward:
        feats = model.forward_features(images)
        cls_tok, patch_tok = output_field(feats, "x_norm_clstoken"), output_field(feats, "x_norm_patchtokens")
        if cls_tok is None or patch_tok is None:
            raise TypeError("forward_features must return x_norm_clstoken and x_norm_patchtokens")
        out["cls"] = cls_tok
        if request.patch:
            out["patch"] = _grid(patch_tok, h, w)
        if request.rasa:
            rasa = output_field(feats, "patch_token_rasa")
            if rasa is None:
                raise ValueError("RASA features requested but the backbone returns no patch_token_rasa")
            out["patch_rasa"] = _grid(rasa, h, w)
    return {k: v.float().cpu() for k, v in out.items()}


def _stack(parts: dict[str, list[Tensor]], targets: list[Tensor]) -> FeatureSet:
    half = {"patch", "patch_rasa"}
    arrays = {k: torch.cat(v).to(torch.float16 if k in half else torch.float32) for k, v in parts.items()}
    tgt = torch.cat(targets)
    tgt = tgt.to(torch.int16) if tgt.ndim > 1 else tgt.long()
    return FeatureSet(targets=tgt, **arrays)


class BackboneFeatures:
    """Extracts features of a dataset with a backbone, batched, with progress and an on-disk cache."""

    def __init__(
        self,
        model: nn.Module,
        identity: str,
        cache_dir: Path | None = None,
        batch_size: int = 32,
        num_workers: int = 0,
        device: str | torch.device = "cpu",
        progress: bool = True,
    ):
        self.model = model.eval()
        self.identity = identity
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.device = torch.device(device)
        self.progress = progress
        self.patch_size = patch_size_of(model)  # type: ignore[arg-type]

    def cache_path(self, dataset: LabelledDataset, request: FeatureRequest) -> Path | None:
        if self.cache_dir is None:
            return None
        key = json.dumps([CACHE_VERSION, self.identity, dataset.fingerprint, asdict(request)])
        return self.cache_dir / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.pt"

    def extract(self, dataset: LabelledDataset, request: FeatureRequest) -> FeatureSet:
        path = self.cache_path(dataset, request)
        if path is not None and path.is_file():
            return FeatureSet.from_dict(torch.load(path, weights_only=True))
        fs = self._run(dataset, request)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            torch.save(fs.to_dict(), tmp)
            tmp.replace(path)  # atomic: a killed run never leaves a half-written entry
        return fs

    def _run(self, dataset: LabelledDataset, request: FeatureRequest) -> FeatureSet:
        loader: DataLoader[tuple[Tensor, Tensor]] = DataLoader(
            dataset,  # type: ignore[arg-type]
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            shuffle=False,
        )
        parts: dict[str, list[Tensor]] = {}
        targets: list[Tensor] = []
        use_amp = self.device.type == "cuda"
        desc = f"features {dataset.fingerprint[:40]}"
        for images, tgt in tqdm(loader, desc=desc, disable=not self.progress, leave=False):
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=use_amp):
                batch = extract_batch(self.model, images.to(self.device), request)  # type: ignore[arg-type]
            for k, v in batch.items():
                parts.setdefault(k, []).append(v)
            targets.append(torch.as_tensor(tgt))
        return _stack(parts, targets)
