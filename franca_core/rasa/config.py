"""Typed configuration of RASA post-training (Franca, arXiv 2507.14137, §3.3, supplement B; reference §7.2).

Defaults are the official recipe (``rasa_franca.yml``: 9 rounds of 5 epochs, batch 128, AdamW lr 2e-4 with a
cosine decay to 0, no weight decay, sigmoid output, RandomResizedCrop 518 with scale 0.25-1, colour jitter,
grey, blur, h/v flips and rotations). ``PRESETS["debug"]`` is the CPU flavour used on the bundled photographs:
features are cached, so it trades the per-epoch re-augmentation for many epochs over a few cached views.

Run locally (CPU, about a minute)::

    franca rasa --backbone runs/debug/teacher.safetensors --data sample --out runs/rasa_debug --preset debug
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import Field

from franca_core.config.base import Frozen


class AugmentConfig(Frozen):
    """Training views (reference §7.2, ``train_rasa`` L187-230). Position targets depend on the token index
    only, so the geometric augmentations decorrelate image content from grid position."""

    img_size: int | None = Field(
        None, ge=1, description="Square crop size in pixels; None: the backbone's own size (official: 518)."
    )
    crop_scale: tuple[float, float] = Field((0.25, 1.0), description="RandomResizedCrop area range.")
    jitter_strength: float = Field(
        0.4,
        ge=0.0,
        description="Colour jitter (0.8 s, 0.8 s, 0.8 s, 0.2 s) with p 0.8, as the official code.",
    )
    grayscale_p: float = Field(0.2, ge=0.0, le=1.0, description="Probability of a grey view.")
    blur_p: float = Field(
        0.5, ge=0.0, le=1.0, description="Probability of a Gaussian blur, sigma in [0.1, 2]."
    )
    hflip_p: float = Field(0.5, ge=0.0, le=1.0, description="Probability of a horizontal flip.")
    vflip_p: float = Field(0.5, ge=0.0, le=1.0, description="Probability of a vertical flip.")
    rotate_p: float = Field(0.5, ge=0.0, le=1.0, description="Probability of a rotation in [-90, 90] deg.")


class TrainConfig(Frozen):
    """The rounds loop: one fresh bias-free Linear(D, 2) + sigmoid per round, MSE to the grid coordinates."""

    rounds: int = Field(9, ge=1, description="Rounds T (official 9: 8 pre_pos_layers + pos_pred).")
    epochs_per_round: int = Field(5, ge=1, description="Epochs over the training views per round.")
    batch_size: int = Field(128, ge=1, description="Views (images) per optimisation step.")
    lr: float = Field(2e-4, gt=0.0, description="AdamW learning rate at the start of every round.")
    final_lr: float = Field(0.0, ge=0.0, description="Learning rate reached by the per-step cosine decay.")
    weight_decay: float = Field(0.0, ge=0.0, description="AdamW weight decay (official 0).")
    early_stop_min_gain: float | None = Field(
        0.01,
        description="Stop when a round's probe lowers the position MSE of the diagnostic views by less "
        "than this fraction of the constant (0.5, 0.5) predictor's MSE, i.e. the position loss no longer "
        "decreases; that round's plane is not kept. None: always run all rounds.",
    )
    seed: int = Field(400, description="Seed of the probe init and the batch order (official CLI default).")


class DataConfig(Frozen):
    """Which images train RASA and which are held out for the diagnostics."""

    views_per_image: int = Field(
        4, ge=1, description="Augmented views per training image whose patch features are computed."
    )
    cache_features: bool = Field(
        True, description="Keep the views' patch features in memory (float32) instead of recomputing them."
    )
    heldout_fraction: float = Field(
        0.3, gt=0.0, lt=1.0, description="Share of the images held out from RASA training for diagnostics."
    )
    diag_max_images: int = Field(
        100, ge=1, description="At most this many held-out images, and as many training images, are measured."
    )
    diag_views_per_image: int = Field(
        4, ge=1, description="Seeded crops (no flips or colour) per image for the before/after diagnostics."
    )
    max_images: int | None = Field(None, ge=2, description="Use at most this many images (first ones).")
    batch_size: int = Field(32, ge=1, description="Images per backbone forward pass.")
    num_workers: int = Field(0, ge=0, description="DataLoader workers for the augmented views.")
    seed: int = Field(0, description="Seed of the split and of the augmented views.")


class DiagnosticsConfig(Frozen):
    """Before/after measurements (evaluation-protocols §8; Franca Fig. 5 entropy, k-NN, Hummingbird)."""

    probe_ridge: float = Field(
        1e-3, ge=0.0, description="Ridge penalty (relative to the mean feature energy) of the fresh probe."
    )
    clusters: int = Field(16, ge=2, description="k-means clusters K for the cluster-position entropy.")
    cluster_pca_dim: int = Field(50, ge=1, description="PCA dimension after z-scoring, before k-means.")
    knn: bool = Field(True, description="k-NN on labelled crops of the images, before and after.")
    knn_crops_per_image: int = Field(12, ge=1, description="Crops per image (class) in each k-NN split.")
    knn_images: int = Field(17, ge=2, description="At most this many images (= classes) for the k-NN task.")
    knn_ks: tuple[int, ...] = Field((10, 20), description="Numbers of neighbours.")
    knn_temperature: float = Field(0.07, gt=0.0, description="Softmax temperature of the k-NN vote.")
    hummingbird: bool = Field(True, description="Hummingbird mIoU on the sample mosaics, before and after.")
    hummingbird_train_mosaics: int = Field(24, ge=1, description="Memory mosaics (scikit-image photos).")
    hummingbird_val_mosaics: int = Field(12, ge=1, description="Query mosaics.")
    seed: int = Field(0, description="Seed of k-means and of the k-NN crops.")


class RasaConfig(Frozen):
    """A whole RASA post-training run."""

    name: str = Field("paper", description="Preset name, recorded in report.json.")
    augment: AugmentConfig = Field(default_factory=AugmentConfig, description="Training views.")
    train: TrainConfig = Field(default_factory=TrainConfig, description="Rounds loop and optimiser.")
    data: DataConfig = Field(default_factory=DataConfig, description="Image split and feature caching.")
    diagnostics: DiagnosticsConfig = Field(default_factory=DiagnosticsConfig, description="Before/after.")


def paper() -> RasaConfig:
    """The official values (reference §7.2): fresh 518 px views every epoch (nothing cached: VOC's 10,582
    images give ~1369 x D floats each), 9 rounds x 5 epochs, batch 128, AdamW lr 2e-4; GPU-sized."""
    return RasaConfig(
        name="paper",
        augment=AugmentConfig(img_size=518),
        data=DataConfig(cache_features=False, diag_views_per_image=1, num_workers=8),
    )


def debug() -> RasaConfig:
    """CPU flavour for a few photographs: cached views, many short epochs, larger lr; same rounds and loss."""
    return RasaConfig(
        name="debug",
        train=TrainConfig(epochs_per_round=60, batch_size=32, lr=2e-3),
        data=DataConfig(views_per_image=16, diag_views_per_image=8),
    )


PRESETS: dict[str, Callable[[], RasaConfig]] = {"paper": paper, "debug": debug}

__all__ = ["PRESETS", "AugmentConfig", "DataConfig", "DiagnosticsConfig", "RasaConfig", "TrainConfig"]
