"""Pictures of what a backbone sees: PCA of patch features as RGB, and CLS attention maps of the last block.

PCA-RGB (Franca ``franca/eval/visualize_PCA.py``; DINOv2 paper Fig. 1 for the joint fit): PCA-1 of the
patch tokens, min-max scaled, background = first component > 0.35; the sign of a component is arbitrary,
so the side whose foreground sits more in the image centre than on its border is kept; PCA-3 refitted on
the foreground patches (jointly over the shown images, so colours correspond) and min-max scaled to RGB;
background black. Inputs use the ImageNet normalisation of the other evaluators (Franca's script uses
mean 0.5, std 0.2).

Attention (DINO ``visualize_attention.py``): the last block's attention from the CLS query to the patch
keys, per head. SDPA and xFormers return no weights, so they are recomputed: a forward hook on the last
``attn.qkv`` Linear captures [B, T, 3D], and softmax(q k^T / sqrt(d_head)) is formed here. This assumes
the DINOv2 attention (no q/k norm, no positional bias inside attention).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from franca_core.evaluation.base import EvalContext
from franca_core.evaluation.config import EvalConfig
from franca_core.evaluation.features import FeatureRequest
from franca_core.evaluation.pca import Pca, minmax
from franca_core.evaluation.plots import save_image_grid
from franca_core.evaluation.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ClassificationDataset,
    SegmentationDataset,
)


class PicturesConfig(EvalConfig):
    """PCA-RGB and CLS-attention pictures of a few images."""

    kind: Literal["pictures"] = "pictures"
    data: str
    """Name of a dataset of the suite (either task)."""
    split: str = "val"
    """Split the images are taken from (the first ``num_images``)."""
    num_images: int = 4
    """Images shown."""
    resolution: int = 448
    """Input size (Franca's PCA script: 448)."""
    threshold: float = 0.35
    """Background threshold on the min-max scaled first component."""
    heads_shown: int = 3
    """Attention heads shown besides the mean over heads."""


@dataclass(frozen=True)
class PicturesResult:
    foreground_fraction: tuple[float, ...]
    attention: bool
    plots: tuple[str, ...]

    def headline(self) -> dict[str, float]:
        return {"mean_foreground_fraction": float(np.mean(self.foreground_fraction))}


def _centre_box(h: int, w: int) -> Tensor:
    box = torch.zeros(h, w, dtype=torch.bool)
    box[h // 4 : h - h // 4, w // 4 : w - w // 4] = True
    return box


def foreground_mask(patch: Tensor, threshold: float = 0.35) -> Tensor:
    """[h, w, D] patch tokens -> boolean [h, w] foreground by thresholding the first principal component."""
    h, w, d = patch.shape
    first = minmax(Pca.fit(patch.reshape(-1, d)).transform(patch.reshape(-1, d), 1))[:, 0].reshape(h, w)
    box = _centre_box(h, w)
    best, best_gap = first <= threshold, -2.0
    for comp in (first, 1 - first):
        fg = comp <= threshold
        gap = fg[box].float().mean() - (fg[~box].float().mean() if (~box).any() else 0)
        if gap > best_gap:
            best, best_gap = fg, float(gap)
    return best


def pca_rgb(patches: list[Tensor], threshold: float = 0.35) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per image [h, w, D]: (RGB [h, w, 3] in [0, 1], foreground [h, w]); PCA-3 fit jointly on foregrounds."""
    masks = [foreground_mask(p.float(), threshold) for p in patches]
    fg_rows = torch.cat([p.float()[m] for p, m in zip(patches, masks)])  # [F, D]
    if fg_rows.shape[0] < 3:
        fg_rows = torch.cat([p.float().reshape(-1, p.shape[-1]) for p in patches])
    pca = Pca.fit(fg_rows)
    coords = pca.transform(fg_rows, 3)
    lo, hi = coords.min(dim=0).values, coords.max(dim=0).values
    out = []
    for p, m in zip(patches, masks):
        rgb = (
            (pca.transform(p.float().reshape(-1, p.shape[-1]), 3) - lo) / (hi - lo).clamp(min=1e-12)
        ).clamp(0, 1)
        rgb = rgb.reshape(*p.shape[:2], 3) * m[..., None]
        out.append((rgb.numpy(), m.numpy()))
    return out


def _last_attention_module(model: nn.Module) -> tuple[nn.Module, nn.Linear]:
    names = [n for n, mod in model.named_modules() if n.endswith("attn.qkv") and isinstance(mod, nn.Linear)]
    if not names:
        raise ValueError("the backbone has no '*.attn.qkv' Linear: cannot recompute attention weights")
    return model.get_submodule(names[-1][: -len(".qkv")]), model.get_submodule(names[-1])  # type: ignore[return-value]


@torch.no_grad()
def last_block_attention(model: nn.Module, images: Tensor) -> Tensor:
    """Attention weights [B, heads, T, T] of the last block: the backbone's ``get_last_self_attention``
    when it has one, else recomputed here from the last ``attn.qkv`` output."""
    helper = getattr(model, "get_last_self_attention", None)
    if callable(helper):
        return helper(images)  # type: ignore[no-any-return]
    return attention_from_qkv_hook(model, images)


@torch.no_grad()
def attention_from_qkv_hook(model: nn.Module, images: Tensor) -> Tensor:
    """Attention weights [B, heads, T, T] of the last block, recomputed from its qkv projection."""
    attn_mod, qkv = _last_attention_module(model)
    heads = int(getattr(attn_mod, "num_heads", 0))
    if heads <= 0:
        raise ValueError("the last attention module does not expose num_heads")
    captured: list[Tensor] = []
    handle = qkv.register_forward_hook(lambda _m, _i, out: captured.append(out.detach()))
    try:
        model.forward_features(images)  # type: ignore[operator]
    finally:
        handle.remove()
    b, t, three_d = captured[-1].shape
    q, k, _ = captured[-1].float().reshape(b, t, 3, heads, three_d // (3 * heads)).permute(2, 0, 3, 1, 4)
    return (q @ k.transpose(-2, -1) * q.shape[-1] ** -0.5).softmax(dim=-1)  # [B, H, T, T]


def cls_attention_maps(model: nn.Module, images: Tensor, patch: int) -> Tensor:
    """CLS-to-patch attention [B, heads, h, w] of the last block (register tokens skipped)."""
    attn = last_block_attention(model, images)
    regs = int(getattr(model, "num_register_tokens", 0))
    h, w = images.shape[-2] // patch, images.shape[-1] // patch
    return attn[:, :, 0, 1 + regs :].reshape(attn.shape[0], attn.shape[1], h, w)


def _display(img: Tensor) -> np.ndarray:
    mean, std = torch.tensor(IMAGENET_MEAN)[:, None, None], torch.tensor(IMAGENET_STD)[:, None, None]
    return (img * std + mean).clamp(0, 1).permute(1, 2, 0).numpy()


def _upsample(x: np.ndarray, size: int, mode: str) -> np.ndarray:
    t = torch.from_numpy(np.ascontiguousarray(x)).float()
    t = t.permute(2, 0, 1)[None] if t.ndim == 3 else t[None, None]
    up = F.interpolate(t, size=(size, size), mode=mode)[0]
    return (up.permute(1, 2, 0) if up.shape[0] == 3 else up[0]).numpy()


def _first_images(cfg: PicturesConfig, ctx: EvalContext) -> ClassificationDataset | SegmentationDataset:
    if ctx.datasets[cfg.data].task == "segmentation":
        seg = ctx.segmentation_split(cfg.data, cfg.split)
        return SegmentationDataset(seg.subset(range(min(cfg.num_images, len(seg)))), cfg.resolution)
    cls = ctx.classification_split(cfg.data, cfg.split)
    return ClassificationDataset(cls.subset(range(min(cfg.num_images, len(cls)))), cfg.resolution)


def _grid_row(image: Tensor, rgb: np.ndarray, attn: Tensor | None, cfg: PicturesConfig) -> list[np.ndarray]:
    """image, PCA-RGB, and (with attention [heads, h, w]) the head mean and the first heads."""
    row = [_display(image), _upsample(rgb, cfg.resolution, "bilinear")]
    if attn is not None:
        maps = [attn.mean(0)] + [attn[h] for h in range(min(cfg.heads_shown, attn.shape[0]))]
        row += [
            _upsample(minmax(m.flatten()).reshape(m.shape).numpy(), cfg.resolution, "nearest") for m in maps
        ]
    return row


def evaluate(cfg: PicturesConfig, ctx: EvalContext) -> PicturesResult:
    data = _first_images(cfg, ctx)
    fs = ctx.source.extract(data, FeatureRequest(patch=True))
    assert fs.patch is not None
    images = torch.stack([data[i][0] for i in range(len(data))])
    pictures = pca_rgb(list(fs.patch), cfg.threshold)
    attn = None
    if ctx.backbone is not None:
        attn = cls_attention_maps(ctx.backbone, images.to(ctx.device), ctx.source.patch_size).cpu()
    titles = ["image", "PCA-RGB"]
    if attn is not None:
        titles += ["attention (mean)"] + [f"head {h}" for h in range(min(cfg.heads_shown, attn.shape[1]))]
    rows = [
        _grid_row(images[i], pictures[i][0], None if attn is None else attn[i], cfg) for i in range(len(data))
    ]
    path = save_image_grid(rows, ctx.plot_path(cfg, "pca_attention"), titles)
    return PicturesResult(
        foreground_fraction=tuple(float(p[1].mean()) for p in pictures),
        attention=attn is not None,
        plots=(str(path.relative_to(ctx.out_dir)),),
    )
