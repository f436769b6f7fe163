"""Learning benchmark: pretrain on clothing10 *without labels*, then k-NN on its val and test splits.

Trains a preset (``debug`` by default) on ``../shared/datasets/clothing10/train`` read as a plain image
folder (labels ignored) and measures the weighted k-NN top-1 (DINOv2 protocol, CLS token, k = 20,
T = 0.07; the train split is the labelled neighbour bank) of the teacher backbone at random init (the
run's exact initial teacher) and at every checkpoint, so one run gives the learning curve. The query
splits are ``val`` and, where the dataset has one, ``test``.

Each trained figure comes with its paired comparison against random init on the same queries:
McNemar's z = (b - c) / sqrt(b + c), where b counts queries the trained backbone gets right and the
random one wrong, c the reverse (|z| > 2: a difference that chance gives less than 5% of the time).

    python benchmarks/train_step/knn_clothing10.py --steps 2400 --eval-every 600 \\
        --run-dir runs/clothing10 --out outputs/knn_clothing10 data.batch_size_per_rank=64

Writes ``OUT/results.json`` and ``OUT/knn_curve.png``. Rerunning on the same ``--run-dir`` resumes
the training where it stopped (the engine's resume) and re-evaluates every checkpoint.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
from torch import Tensor
from torch.utils.data import DataLoader
from tqdm import tqdm

from franca_core.config import PRESETS, PretrainConfig, load_config
from franca_core.evaluation.datasets import read_image_folder
from franca_core.evaluation.knn import knn_predict_topk
from franca_core.evaluation.transforms import ClassificationDataset
from franca_core.models.vision_transformer import VisionTransformer
from franca_core.train.checkpoint import list_checkpoints, load_checkpoint
from franca_core.train.engine import pretrain
from franca_core.train.setup import initial_teacher_backbone
from franca_core.train.weights import backbone_state

DEFAULT_ROOT = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "clothing10"
K = 20


@dataclasses.dataclass(frozen=True)
class Split:
    """Preprocessed images of one split (float16, to keep the cache small) and their labels."""

    name: str
    images: Tensor
    labels: Tensor


@dataclasses.dataclass(frozen=True)
class SplitScore:
    """k-NN top-1 on one query split, and the paired comparison with random init."""

    split: str
    queries: int
    top1: float
    standard_error: float
    mcnemar_z: float | None  # None for random init itself


@dataclasses.dataclass(frozen=True)
class CurvePoint:
    step: int
    scores: list[SplitScore]


def load_split(root: Path, name: str, resolution: int, workers: int) -> Split:
    dataset = ClassificationDataset(read_image_folder(root, name), resolution)
    images, labels = [], []
    for x, y in DataLoader(dataset, batch_size=128, num_workers=workers):
        images.append(x.half())
        labels.append(y)
    return Split(name, torch.cat(images), torch.cat(labels))


@torch.no_grad()
def cls_features(model: VisionTransformer, images: Tensor) -> Tensor:
    model.eval()
    return torch.cat([model(chunk.float()) for chunk in images.split(256)])


def correct_per_query(model: VisionTransformer, bank: Split, queries: list[Split]) -> list[Tensor]:
    """For each query split, a bool per query: does the k-NN vote (k = 20) predict its label?"""
    bank_features = cls_features(model, bank.images)
    classes = int(bank.labels.max()) + 1
    return [
        knn_predict_topk(bank_features, bank.labels, cls_features(model, q.images), [K], num_classes=classes)[
            0, :, 0
        ]
        == q.labels
        for q in queries
    ]


def mcnemar_z(before: Tensor, after: Tensor) -> float:
    """(b - c) / sqrt(b + c) over paired per-query outcomes; 0 when no query changed."""
    gained = int((after & ~before).sum())
    lost = int((before & ~after).sum())
    return 0.0 if gained + lost == 0 else (gained - lost) / math.sqrt(gained + lost)


def score(split: str, correct: Tensor, baseline: Tensor | None) -> SplitScore:
    p = float(correct.float().mean())
    return SplitScore(
        split=split,
        queries=correct.numel(),
        top1=100 * p,
        standard_error=100 * math.sqrt(p * (1 - p) / correct.numel()),
        mcnemar_z=None if baseline is None else mcnemar_z(baseline, correct),
    )


def learning_curve(
    model: VisionTransformer, run_dir: Path, bank: Split, queries: list[Split]
) -> list[CurvePoint]:
    """Random init (step 0; ``model`` as given) and every checkpoint of ``run_dir``."""
    baseline = correct_per_query(model, bank, queries)
    points = [CurvePoint(0, [score(q.name, c, None) for q, c in zip(queries, baseline, strict=True)])]
    for step, path in tqdm(list_checkpoints(run_dir), desc="k-NN per checkpoint", unit="ckpt"):
        model.load_state_dict(backbone_state(load_checkpoint(path).teacher))
        correct = correct_per_query(model, bank, queries)
        scores = [score(q.name, c, b) for q, c, b in zip(queries, correct, baseline, strict=True)]
        points.append(CurvePoint(step, scores))
    return points


def plot(points: list[CurvePoint], title: str, out: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, split in enumerate(s.split for s in points[0].scores):
        rows = [p.scores[i] for p in points]
        steps = [p.step for p in points]
        line = ax.errorbar(steps, [r.top1 for r in rows], yerr=[r.standard_error for r in rows], marker="o",
                           capsize=3, label=f"{split} ({rows[0].queries} queries)")  # fmt: skip
        ax.axhline(rows[0].top1, color=line[0].get_color(), linestyle="--", linewidth=0.8)
    ax.set_xlabel("training step (0 = random init, dashed)")
    ax.set_ylabel(f"k-NN top-1 (k={K}), % (error bars: 1 SE)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--config", default="debug")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument(
        "--eval-every", type=int, default=None, help="Checkpoint (and evaluate) every N steps."
    )
    parser.add_argument("--run-dir", type=Path, default=Path("runs/clothing10"))
    parser.add_argument("--out", type=Path, default=Path("outputs/knn_clothing10"))
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("overrides", nargs="*", help="key=value config overrides")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    overrides = [
        "data.source=folder",
        f"data.path={args.root / 'train'}",
        "data.max_short_side=160",
        f"data.num_workers={args.workers}",
        *args.overrides,
        f"optim.total_iters={args.steps}",
        f"runtime.checkpoint_every={args.eval_every or args.steps}",
    ]
    cfg = load_config(PretrainConfig, args.config, PRESETS, overrides)
    res = cfg.crops.global_size
    bank = load_split(args.root, "train", res, args.workers)
    query_names = ["val", *(["test"] if (args.root / "test").is_dir() else [])]
    queries = [load_split(args.root, name, res, args.workers) for name in query_names]
    model = initial_teacher_backbone(cfg)  # the run's exact step-0 teacher
    start = time.perf_counter()
    result = pretrain(cfg, args.run_dir, progress=True)
    minutes = (time.perf_counter() - start) / 60
    points = learning_curve(model, args.run_dir, bank, queries)
    args.out.mkdir(parents=True, exist_ok=True)
    summary = {
        "config": cfg.name,
        "overrides": args.overrides,
        "steps": result.steps,
        "batch_size": cfg.data.batch_size_per_rank,
        "train_minutes_this_call": minutes,
        "points": [dataclasses.asdict(p) for p in points],
    }
    (args.out / "results.json").write_text(json.dumps(summary, indent=2))
    plot(points, f"clothing10, {cfg.name}, batch {cfg.data.batch_size_per_rank}", args.out / "knn_curve.png")
    print(f"clothing10 k-NN (k={K}) top-1, {cfg.name}, {result.steps} steps ({minutes:.1f} min this call)")
    for p in points:
        cells = [
            f"{s.split} {s.top1:5.1f}% +-{s.standard_error:.1f}"
            + ("" if s.mcnemar_z is None else f" (z {s.mcnemar_z:+.1f})")
            for s in p.scores
        ]
        print(f"  step {p.step:>6}: " + "   ".join(cells))
    print(f"wrote {args.out / 'results.json'} and {args.out / 'knn_curve.png'}")


if __name__ == "__main__":
    main()
