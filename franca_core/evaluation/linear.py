"""Linear probing with a grid of heads trained jointly on cached features (DINOv2 ``eval/linear.py``).

Protocol (``shared/reference/evaluation-protocols.md`` section 2a): inputs are the CLS tokens of the last
n in {1, 4} blocks after the final norm, optionally with the mean of the last block's patch tokens
appended; 13 learning rates x 2 x 2 = 52 heads trained simultaneously on the same batches (the loss is the
sum of their cross-entropies), SGD momentum 0.9, weight decay 0, lr scaled by batch / 256, cosine decay to
0, heads initialised N(0, 0.01) with zero bias; the best head by top-1 on the selection split (ties go
to the lower cross-entropy there).

Deviations, stated in the result: features are cached once under the eval transform (no
RandomResizedCrop / flip per iteration, because the backbone does not run during training), and by default
the head is selected on a held-out 10 % of train (seed 0) rather than on the split that is reported
(DINOv2 selects on its reported val set; ``selection="eval"`` reproduces that).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from franca_core.evaluation.base import EvalContext
from franca_core.evaluation.config import EvalConfig
from franca_core.evaluation.features import FeatureRequest, FeatureSet
from franca_core.evaluation.metrics import topk_accuracy

DINOV2_LRS = (1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 2e-2, 5e-2, 0.1)


class LinearConfig(EvalConfig):
    """Joint training of linear heads over learning rates and input variants."""

    kind: Literal["linear"] = "linear"
    data: str
    """Name of a classification dataset of the suite."""
    train_split: str = "train"
    """Split the heads are trained on."""
    eval_split: str = "val"
    """Split whose accuracy is reported."""
    resolution: int = 224
    """Crop size of the DINOv2 eval transform."""
    learning_rates: tuple[float, ...] = DINOV2_LRS
    """Base learning rates (scaled by batch / 256)."""
    n_blocks: tuple[int, ...] = (1, 4)
    """Numbers of last blocks whose CLS tokens are concatenated."""
    avgpool: tuple[bool, ...] = (False, True)
    """Whether the mean patch token of the last block is appended."""
    iterations: int = 2000
    """SGD steps (DINOv2: 12,500 at batch 128 x GPUs)."""
    batch_size: int = 128
    """Batch size of the feature batches."""
    selection: Literal["holdout", "eval"] = "holdout"
    """Select the best head on a held-out part of train, or on the reported split (DINOv2's default)."""
    holdout_fraction: float = 0.1
    """Share of train held out for selection when ``selection='holdout'``."""
    seed: int = 0
    """Seed of the holdout split, the head init and the batch order."""


@dataclass(frozen=True)
class HeadScore:
    name: str
    lr: float
    n_blocks: int
    avgpool: bool
    selection_top1: float
    eval_top1: float


@dataclass(frozen=True)
class LinearResult:
    best_head: str
    top1: float  # of the selected head on the eval split
    top5: float
    selection_split: str
    heads: tuple[HeadScore, ...]  # the selected head first
    deviation: str = "features cached under the eval transform: no train-time augmentation"

    def headline(self) -> dict[str, float]:
        return {"top1": self.top1, "top5": self.top5}


def linear_inputs(fs: FeatureSet, n_blocks: int, avgpool: bool) -> Tensor:
    """[N, n*D (+D)] classifier input, as DINOv2's ``create_linear_input``."""
    if fs.blocks_cls is None or fs.avgpool is None:
        if n_blocks == 1 and not avgpool:
            return fs.cls
        raise ValueError("features were extracted without last-block CLS tokens (FeatureRequest.last_blocks)")
    parts = [fs.blocks_cls[:, -n_blocks:].flatten(1)]
    if avgpool:
        parts.append(fs.avgpool)
    return torch.cat(parts, dim=1).float()


@dataclass
class HeadBank:
    """H linear heads over one input variant: weights [H, in, C], biases [H, C]."""

    weight: Tensor
    bias: Tensor

    def logits(self, x: Tensor) -> Tensor:
        return torch.einsum("bi,hic->hbc", x, self.weight) + self.bias[:, None]  # [H, B, C]


def train_heads(
    inputs: Sequence[Tensor],
    labels: Tensor,
    lrs: Sequence[float],
    num_classes: int,
    iterations: int,
    batch_size: int = 128,
    seed: int = 0,
) -> list[HeadBank]:
    """One bank of ``len(lrs)`` heads per input variant, all trained on the same batches.

    SGD with momentum 0.9 and a per-head learning rate is written out: scaling each head's gradient by its
    lr before the momentum update equals one optimiser param group per head.
    """
    gen = torch.Generator().manual_seed(seed)
    banks = [
        HeadBank(
            torch.randn(len(lrs), x.shape[1], num_classes, generator=gen) * 0.01,
            torch.zeros(len(lrs), num_classes),
        )
        for x in inputs
    ]
    lr = torch.tensor(lrs, dtype=torch.float32) * batch_size / 256
    params = [p for b in banks for p in (b.weight, b.bias)]
    momenta = [torch.zeros_like(p) for p in params]
    n = labels.shape[0]
    for step in range(iterations):
        idx = torch.randint(0, n, (min(batch_size, n),), generator=gen)
        for p in params:
            p.requires_grad_(True)
        loss = sum(
            torch.nn.functional.cross_entropy(b.logits(x[idx]).flatten(0, 1), labels[idx].repeat(len(lrs)))
            * len(lrs)  # mean over each head's batch, summed over heads
            for b, x in zip(banks, inputs)
        )
        grads = torch.autograd.grad(loss, params)  # type: ignore[arg-type]
        scale = 0.5 * (1 + math.cos(math.pi * step / iterations))  # cosine to 0
        with torch.no_grad():
            for p, g, m in zip(params, grads, momenta):
                m.mul_(0.9).add_(g * lr.view(-1, *([1] * (g.ndim - 1))))
                p.sub_(scale * m)
    for p in params:
        p.requires_grad_(False)
    return banks


def _split_holdout(n: int, fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    cut = max(1, round(n * fraction))
    return perm[cut:], perm[:cut]


def _score_heads(
    cfg: LinearConfig,
    variants: list[tuple[int, bool]],
    banks: list[HeadBank],
    sel: FeatureSet,
    test: FeatureSet,
) -> tuple[list[HeadScore], Tensor]:
    """Every head's selection and test top-1, and the test logits of the selected head."""
    heads, best_key, best_logits = [], (-1.0, 0.0), torch.empty(0)
    for (n, a), bank in zip(variants, banks):
        sel_logits = bank.logits(linear_inputs(sel, n, a))  # [H, N_sel, C]
        test_logits = bank.logits(linear_inputs(test, n, a))  # [H, N_test, C]
        for h, lr in enumerate(cfg.learning_rates):
            s1 = topk_accuracy(sel_logits[h], sel.targets)
            name = f"blocks{n}{'_avgpool' if a else ''}_lr{lr:g}"
            heads.append(HeadScore(name, lr, n, a, s1, topk_accuracy(test_logits[h], test.targets)))
            # ties in accuracy (frequent on a small selection split) go to the lower selection loss
            key = (s1, -float(torch.nn.functional.cross_entropy(sel_logits[h], sel.targets)))
            if key > best_key:
                best_key, best_logits, best_index = key, test_logits[h], len(heads) - 1
    heads.insert(0, heads.pop(best_index))  # the selected head first
    return heads, best_logits


def compute(cfg: LinearConfig, train: FeatureSet, test: FeatureSet) -> LinearResult:
    """Train the grid on ``train`` features, select a head, report it on ``test``."""
    available = train.blocks_cls.shape[1] if train.blocks_cls is not None else 1
    # a backbone shallower than max(n_blocks) offers fewer blocks: keep each distinct input once
    variants = list(dict.fromkeys((min(n, available), a) for n in cfg.n_blocks for a in cfg.avgpool))
    num_classes = int(torch.cat([train.targets, test.targets]).max().item()) + 1
    if cfg.selection == "holdout":
        fit_idx, sel_idx = _split_holdout(len(train), cfg.holdout_fraction, cfg.seed)
        fit, sel = train.select(fit_idx), train.select(sel_idx)
        selection = f"{cfg.holdout_fraction:.0%} of {cfg.train_split} (seed {cfg.seed})"
    else:
        fit, sel, selection = train, test, cfg.eval_split
    inputs = [linear_inputs(fit, n, a) for n, a in variants]
    banks = train_heads(
        inputs, fit.targets, cfg.learning_rates, num_classes, cfg.iterations, cfg.batch_size, cfg.seed
    )
    heads, logits = _score_heads(cfg, variants, banks, sel, test)
    return LinearResult(
        best_head=heads[0].name,
        top1=topk_accuracy(logits, test.targets),
        top5=topk_accuracy(logits, test.targets, 5),
        selection_split=selection,
        heads=tuple(heads),
    )


def evaluate(cfg: LinearConfig, ctx: EvalContext) -> LinearResult:
    request = FeatureRequest(last_blocks=max(cfg.n_blocks))
    train = ctx.classification_features(cfg.data, cfg.train_split, cfg.resolution, request)
    test = ctx.classification_features(cfg.data, cfg.eval_split, cfg.resolution, request)
    return compute(cfg, train, test)
