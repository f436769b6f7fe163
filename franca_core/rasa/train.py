"""The RASA rounds loop (Franca, arXiv 2507.14137, §3.3 and supplement B; reference §7.2).

Round t trains a fresh bias-free ``pos_pred`` = Linear(D, 2) so that sigmoid(pos_pred(x)) predicts the
normalised grid coordinates (a/(g-1), b/(g-1)) of every patch token x, where x are the frozen backbone's
``x_norm_patchtokens`` with the planes of rounds 0..t-1 already removed. Only ``pos_pred`` is trained (AdamW,
per-step cosine decay, MSE). The plane of its two Gram-Schmidt-orthonormalised rows is then removed and the
predictor becomes ``pre_pos_layers[t]`` of the next round (``RASAHead.grown``).

Early stop: when a round's probe no longer lowers the held-out position loss below the constant predictor's
by ``early_stop_min_gain`` (relative), the features carry no more linearly decodable position; that last
plane is dropped (removing it would only discard content) and the loop ends.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from franca_core.data.augment import derive_seed
from franca_core.rasa.config import TrainConfig
from franca_core.rasa.features import PatchBatches
from franca_core.rasa.head import RASAHead, grid_positions

log = logging.getLogger(__name__)
_FIRST_ROUND_FAILED = (
    "RASA round 0 did not beat the constant predictor (MSE %.4f vs %.4f): no linearly decodable position, "
    "or too few steps for the probe (raise epochs_per_round or lr). Its plane is kept only because the "
    "head layout needs a pos_pred."
)


@dataclass(frozen=True)
class RoundRecord:
    """What one round did; losses are MSE in normalised coordinates."""

    index: int
    train_loss: float  # mean loss over the last epoch of the round
    val_loss: float  # this round's probe on the held-out residual features (train views if none)
    chance_loss: float  # the constant (0.5, 0.5) prediction, = sigmoid of a zero probe
    kept: bool  # False for the round that triggered the early stop

    @property
    def relative_gain(self) -> float:
        """How much the probe beats the constant predictor, as a fraction of its loss."""
        return (self.chance_loss - self.val_loss) / self.chance_loss


@dataclass(frozen=True)
class RasaTrainResult:
    head: RASAHead  # the kept rounds: pre_pos_layers 0..n-2 and pos_pred = the last kept round
    rounds: tuple[RoundRecord, ...]
    stopped_early: bool

    @property
    def rounds_run(self) -> int:
        return len(self.rounds)

    @property
    def rounds_kept(self) -> int:
        return sum(r.kept for r in self.rounds)


def chance_mse(grid: tuple[int, int]) -> float:
    """MSE of predicting (0.5, 0.5) for every token: the mean variance of the grid targets."""
    return float(((grid_positions(grid, torch.float64) - 0.5) ** 2).mean())


@torch.no_grad()
def position_mse(weight: Tensor, tokens: Tensor, grid: tuple[int, int], chunk: int = 256) -> float:
    """MSE of sigmoid(tokens @ weightᵀ) [M, N, 2] against the grid targets, for tokens [M, N, D]."""
    targets = grid_positions(grid, torch.float32).to(tokens.device)  # [N, 2]
    w = weight.detach().float().to(tokens.device)  # [2, D]
    total = 0.0
    for start in range(0, tokens.shape[0], chunk):
        pred = torch.sigmoid(tokens[start : start + chunk].float() @ w.T)  # [m, N, 2]
        total += float(((pred - targets) ** 2).sum())
    return total / (tokens.shape[0] * targets.numel())


def cosine_lr(step: int, total: int, lr: float, final_lr: float) -> float:
    """Per-step cosine annealing from ``lr`` to ``final_lr`` over ``total`` steps (CosineAnnealingLR)."""
    return final_lr + 0.5 * (lr - final_lr) * (1.0 + math.cos(math.pi * min(step, total) / max(total, 1)))


def train_round(
    head: RASAHead, batches: PatchBatches, grid: tuple[int, int], cfg: TrainConfig, generator: torch.Generator
) -> float:
    """Train ``head.pos_pred`` on the residual of the frozen planes; the mean loss of the last epoch."""
    device = head.pos_pred.weight.device
    removal = head.folded_matrix(use_pos_pred=False).float() if head.n_pre_layers else None  # [D, D]
    targets = grid_positions(grid, torch.float32).to(device)  # [N, 2]
    opt = torch.optim.AdamW([head.pos_pred.weight], lr=cfg.lr, weight_decay=cfg.weight_decay)
    total = batches.steps_per_epoch(cfg.batch_size) * cfg.epochs_per_round
    step, epoch_loss = 0, float("nan")
    for epoch in range(cfg.epochs_per_round):
        losses = []
        for tokens in batches.epoch(epoch, cfg.batch_size, generator):
            x = tokens.to(device)  # [B, N, D]
            x = x @ removal if removal is not None else x  # earlier planes removed, as in training_step
            loss = nn.functional.mse_loss(head.predict_positions(x), targets.expand(x.shape[0], -1, -1))
            for group in opt.param_groups:
                group["lr"] = cosine_lr(step, total, cfg.lr, cfg.final_lr)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
            step += 1
        epoch_loss = sum(losses) / max(len(losses), 1)
    return epoch_loss


def _next_head(head: RASAHead | None, dim: int, seed: int, round_index: int) -> RASAHead:
    """Round 0: an empty head; later: the previous head grown by one frozen layer. Seeded pos_pred init."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(seed, round_index))
        return RASAHead(dim, 0) if head is None else head.grown()


def train_rasa(
    batches: PatchBatches,
    grid: tuple[int, int],
    dim: int,
    cfg: TrainConfig,
    val_tokens: Tensor | None = None,
    device: torch.device | str = "cpu",
) -> RasaTrainResult:
    """Run up to ``cfg.rounds`` rounds on raw patch tokens; ``val_tokens`` [M, N, D] drive the early stop."""
    generator = torch.Generator().manual_seed(cfg.seed)
    chance = chance_mse(grid)
    head: RASAHead | None = None
    records: list[RoundRecord] = []
    stop = False
    progress = tqdm(range(cfg.rounds), desc="RASA rounds", leave=False)
    for t in progress:
        candidate = _next_head(head, dim, cfg.seed, t).to(device)
        train_loss = train_round(candidate, batches, grid, cfg, generator)
        residual = None if val_tokens is None else _residual(candidate, val_tokens)
        val_loss = train_loss if residual is None else position_mse(candidate.pos_pred.weight, residual, grid)
        stop = cfg.early_stop_min_gain is not None and (chance - val_loss) / chance < cfg.early_stop_min_gain
        keep = not (stop and head is not None)  # round 0 is always kept: the layout needs a pos_pred
        records.append(RoundRecord(t, train_loss, val_loss, chance, keep))
        progress.set_postfix(train=f"{train_loss:.4f}", val=f"{val_loss:.4f}", chance=f"{chance:.4f}")
        head = candidate if keep else head
        if stop:
            if t == 0:
                log.warning(_FIRST_ROUND_FAILED, val_loss, chance)
            break
    assert head is not None
    return RasaTrainResult(head=head.cpu().requires_grad_(False), rounds=tuple(records), stopped_early=stop)


@torch.no_grad()
def _residual(head: RASAHead, tokens: Tensor) -> Tensor:
    """tokens [M, N, D] with the head's frozen planes removed (the features ``pos_pred`` was trained on)."""
    if head.n_pre_layers == 0:
        return tokens
    fold = head.folded_matrix(use_pos_pred=False).float().to(tokens.device)
    return tokens.float() @ fold


__all__ = [
    "RasaTrainResult",
    "RoundRecord",
    "chance_mse",
    "cosine_lr",
    "position_mse",
    "train_rasa",
    "train_round",
]
