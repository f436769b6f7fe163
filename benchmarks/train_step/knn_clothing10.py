"""Learning benchmark: pretrain on clothing10 *without labels*, then k-NN on its val split.

Trains a preset (``debug`` by default) on ``../shared/datasets/clothing10/train`` read as a plain image
folder (labels ignored), then compares the weighted k-NN accuracy (DINOv2 protocol, CLS token,
T = 0.07) of the trained teacher backbone with the same architecture at random init, using the train
split as the labelled neighbour bank and val as queries. Both numbers come from this one run.

    python benchmarks/train_step/knn_clothing10.py --steps 600 --run-dir runs/clothing10
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from franca_core.config import PRESETS, PretrainConfig, load_config
from franca_core.evaluation.datasets import read_image_folder
from franca_core.evaluation.knn import knn_accuracies
from franca_core.evaluation.transforms import ClassificationDataset
from franca_core.models.pretrained import load_backbone
from franca_core.train.build import build_backbone_from_config
from franca_core.train.engine import pretrain

DEFAULT_ROOT = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "clothing10"


@torch.no_grad()
def features(model: nn.Module, dataset: ClassificationDataset, workers: int) -> tuple[Tensor, Tensor]:
    """Normalised CLS tokens and labels of a whole split."""
    feats, labels = [], []
    for images, targets in DataLoader(dataset, batch_size=64, num_workers=workers):
        feats.append(model(images))
        labels.append(targets)
    return torch.cat(feats), torch.cat(labels)


def knn_top1(
    model: nn.Module, bank: ClassificationDataset, queries: ClassificationDataset, workers: int
) -> float:
    model.eval()
    train, train_labels = features(model, bank, workers)
    test, test_labels = features(model, queries, workers)
    return knn_accuracies(train, train_labels, test, test_labels, ks=[20])[0].top1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--config", default="debug")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--run-dir", type=Path, default=Path("runs/clothing10"))
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    overrides = [
        "data.source=folder",
        f"data.path={args.root / 'train'}",
        "data.max_short_side=160",
        f"data.num_workers={args.workers}",
        f"optim.total_iters={args.steps}",
        f"runtime.checkpoint_every={args.steps}",
        *args.overrides,
    ]
    cfg = load_config(PretrainConfig, args.config, PRESETS, overrides)
    resolution = cfg.crops.global_size
    bank = ClassificationDataset(read_image_folder(args.root, "train"), resolution)
    queries = ClassificationDataset(read_image_folder(args.root, "val"), resolution)
    torch.manual_seed(cfg.runtime.seed)
    random_top1 = knn_top1(build_backbone_from_config(cfg, student=False), bank, queries, args.workers)
    start = time.perf_counter()
    result = pretrain(cfg, args.run_dir, progress=True)
    minutes = (time.perf_counter() - start) / 60
    trained = load_backbone(args.run_dir / str(result.teacher_safetensors))
    trained_top1 = knn_top1(trained, bank, queries, args.workers)
    print(
        f"clothing10 k-NN (k=20) top-1, {cfg.name}, {result.steps} steps ({minutes:.1f} min, "
        f"{result.images_per_s:.1f} img/s): random init {random_top1:.1f}%, trained {trained_top1:.1f}%"
    )


if __name__ == "__main__":
    main()
