"""A whole RASA post-training run on a frozen backbone (Franca, arXiv 2507.14137, §3.3 and supplement B).

``run_rasa`` splits the images into RASA-training and held-out ones, computes the training views' patch
features, trains the rounds (``train.train_rasa``), folds the head into one D×D map, measures the positional
bias before and after (fresh probe on held-out images, cluster-position entropy, k-NN, Hummingbird), and
writes into the output folder::

    rasa_head.pth / rasa_head.safetensors   the head, official layout (8 pre layers + pos_pred for 9 rounds)
    backbone_rasa.safetensors               the backbone with the folded map (patch_token_rasa built in)
    plots/rounds.png, plots/entropy.png     per-round position loss; Fig. 5-style entropy before / after
    report.json                             the numbers (RasaReport.to_json)
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from torch import Tensor

from franca_core.models.vision_transformer import VisionTransformer
from franca_core.rasa import downstream, features
from franca_core.rasa.config import RasaConfig
from franca_core.rasa.diagnostics import ClusterEntropy, ProbeScore, cluster_position_entropy, position_probe
from franca_core.rasa.export import export_folded_backbone, save_head
from franca_core.rasa.plots import plot_entropy, plot_rounds
from franca_core.rasa.train import RasaTrainResult, train_rasa


@dataclass(frozen=True)
class Bias:
    """Positional bias of one feature set: fresh probe on held-out images and cluster-position entropy."""

    probe: ProbeScore
    entropy: ClusterEntropy


@dataclass(frozen=True)
class RasaReport:
    """Everything ``report.json`` holds."""

    config: RasaConfig
    backbone: str
    data: str
    img_size: int
    grid: tuple[int, int]
    dim: int
    train_images: int
    heldout_images: int
    train_views: int  # distinct augmented views per round (cached, or streamed over the epochs)
    training: RasaTrainResult
    before: Bias
    after: Bias
    knn: downstream.KnnScores | None
    hummingbird: downstream.HummingbirdScores | None
    files: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        """Headline keys first (probe_r2_before/after, entropy_before/after, rounds_run...), then details."""
        head = {
            "probe_r2_before": self.before.probe.r2,
            "probe_r2_after": self.after.probe.r2,
            "probe_mse_before": self.before.probe.mse,
            "probe_mse_after": self.after.probe.mse,
            "probe_rmse_patches_before": self.before.probe.rmse_patches,
            "probe_rmse_patches_after": self.after.probe.rmse_patches,
            "entropy_before": self.before.entropy.mean,
            "entropy_after": self.after.entropy.mean,
            "entropy_weighted_before": self.before.entropy.weighted_mean,
            "entropy_weighted_after": self.after.entropy.weighted_mean,
            "rounds_run": self.training.rounds_run,
            "rounds_kept": self.training.rounds_kept,
            "stopped_early": self.training.stopped_early,
        }
        if self.knn is not None:
            head["knn_top1_before"] = self.knn.patch_mean_top1_before
            head["knn_top1_after"] = self.knn.patch_mean_top1_after
        if self.hummingbird is not None:
            head["hummingbird_miou_before"] = self.hummingbird.miou_before
            head["hummingbird_miou_after"] = self.hummingbird.miou_after
        details = {
            "backbone": self.backbone,
            "data": self.data,
            "img_size": self.img_size,
            "grid": list(self.grid),
            "dim": self.dim,
            "train_images": self.train_images,
            "heldout_images": self.heldout_images,
            "train_views": self.train_views,
            "rounds": [{**asdict(r), "relative_gain": r.relative_gain} for r in self.training.rounds],
            "probe_before": asdict(self.before.probe),
            "probe_after": asdict(self.after.probe),
            "cluster_entropies_before": list(self.before.entropy.entropies),
            "cluster_entropies_after": list(self.after.entropy.entropies),
            "knn": None if self.knn is None else asdict(self.knn),
            "hummingbird": None if self.hummingbird is None else asdict(self.hummingbird),
            "files": list(self.files),
            "config": self.config.model_dump(mode="json"),
        }
        return {**head, **details}


def measure_bias(train: Tensor, heldout: Tensor, grid: tuple[int, int], cfg: RasaConfig) -> Bias:
    """Probe fitted on ``train`` [M, N, D], scored on ``heldout``; entropy of the held-out clusters."""
    d = cfg.diagnostics
    probe = position_probe(train, heldout, grid, d.probe_ridge)
    entropy = cluster_position_entropy(heldout, grid, d.clusters, d.cluster_pca_dim, d.seed)
    return Bias(probe=probe, entropy=entropy)


@dataclass(frozen=True)
class _Views:
    """Training batches and the diagnostic tokens of the two image groups."""

    batches: features.PatchBatches
    n_train_views: int
    diag_train: Tensor  # [M, N, D] plain crops of the RASA-training images
    diag_heldout: Tensor  # [M', N, D] plain crops of the held-out images


def _views(
    backbone: VisionTransformer, images: features.ImageSource, size: int, cfg: RasaConfig
) -> tuple[_Views, int, int]:
    """Patch features of the training views and diagnostic crops; also the two image counts."""
    dc = cfg.data
    train_idx, held_idx = features.split_indices(
        len(images), dc.heldout_fraction, dc.seed, dc.diag_max_images
    )
    train_imgs, held_imgs = features.Subset(images, train_idx), features.Subset(images, held_idx)
    measured = features.Subset(images, train_idx[: dc.diag_max_images])  # diagnostic crops of training images
    augment = features.train_transform(cfg.augment, size)
    batches: features.PatchBatches
    if dc.cache_features:
        views = features.ViewsDataset(train_imgs, augment, dc.views_per_image, dc.seed)
        tokens = features.extract_patch_tokens(backbone, views, dc.batch_size, dc.num_workers, "train views")
        batches, n_views = features.CachedPatches(tokens), tokens.shape[0]
    else:
        batches = features.StreamedPatches(backbone, train_imgs, augment, dc.seed, dc.num_workers)
        n_views = len(train_imgs) * cfg.train.epochs_per_round
    diag = features.diagnostic_transform(size)
    diag_tokens = [
        features.extract_patch_tokens(
            backbone,
            features.ViewsDataset(imgs, diag, dc.diag_views_per_image, dc.seed + 1 + k),
            dc.batch_size,
        )
        for k, imgs in enumerate((measured, held_imgs))
    ]
    return _Views(batches, n_views, *diag_tokens), len(train_idx), len(held_idx)


def run_rasa(
    backbone: VisionTransformer,
    images: features.ImageSource,
    cfg: RasaConfig,
    out_dir: Path,
    backbone_name: str = "",
    data_name: str = "",
) -> RasaReport:
    """Train RASA on ``images`` with the frozen ``backbone``, attach the folded map, write the outputs."""
    backbone.eval().requires_grad_(False)
    device = next(backbone.parameters()).device
    size = cfg.augment.img_size or backbone.patch_embed.img_size
    if size % backbone.patch_size:
        raise ValueError(f"crop size {size} is not a multiple of the patch size {backbone.patch_size}")
    grid = (size // backbone.patch_size, size // backbone.patch_size)
    views, n_train, n_held = _views(backbone, images, size, cfg)
    before = measure_bias(views.diag_train, views.diag_heldout, grid, cfg)
    # The diagnostic crops of the training images (never the held-out ones) decide the early stop.
    training = train_rasa(views.batches, grid, backbone.embed_dim, cfg.train, views.diag_train, device)
    fold = training.head.folded_matrix().float()  # [D, D]
    after = measure_bias(views.diag_train @ fold, views.diag_heldout @ fold, grid, cfg)
    d = cfg.diagnostics
    knn = downstream.knn_before_after(backbone, images, fold, size, d) if d.knn else None
    patch = backbone.patch_size
    hbird = downstream.hummingbird_before_after(backbone, fold, size, patch, d) if d.hummingbird else None
    files = _write_outputs(backbone, training, before, after, out_dir)
    report = RasaReport(
        config=cfg,
        backbone=backbone_name,
        data=data_name,
        img_size=size,
        grid=grid,
        dim=backbone.embed_dim,
        train_images=n_train,
        heldout_images=n_held,
        train_views=views.n_train_views,
        training=training,
        before=before,
        after=after,
        knn=knn,
        hummingbird=hbird,
        files=files,
    )
    (out_dir / "report.json").write_text(json.dumps(report.to_json(), indent=2) + "\n")
    return report


def _write_outputs(
    backbone: VisionTransformer, training: RasaTrainResult, before: Bias, after: Bias, out_dir: Path
) -> tuple[str, ...]:
    """Head (.pth + .safetensors), folded backbone and plots; paths relative to ``out_dir``."""
    plots = out_dir / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    written = [
        *save_head(training.head, out_dir / "rasa_head"),
        export_folded_backbone(backbone, training.head, out_dir / "backbone_rasa.safetensors"),
        plot_rounds(training.rounds, plots / "rounds.png"),
        plot_entropy(before.entropy, after.entropy, plots / "entropy.png"),
    ]
    return tuple(str(p.relative_to(out_dir)) for p in written)


__all__ = ["Bias", "RasaReport", "measure_bias", "run_rasa"]
