"""Figures of a RASA run (matplotlib, Agg backend): the per-round position loss and the cluster-position
entropy before / after (Franca, arXiv 2507.14137, Fig. 5; reconstruction of evaluation-protocols §8)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: set before pyplot is imported

import matplotlib.pyplot as plt

from franca_core.rasa.diagnostics import ClusterEntropy
from franca_core.rasa.train import RoundRecord

_SHOWN_CLUSTERS = 4


def plot_rounds(rounds: Sequence[RoundRecord], path: Path) -> Path:
    """Train and held-out position MSE of each round's fresh probe against the constant predictor."""
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    index = [r.index for r in rounds]
    ax.plot(index, [r.train_loss for r in rounds], "o-", label="probe, train views (last epoch)")
    ax.plot(index, [r.val_loss for r in rounds], "s-", label="probe, diagnostic views")
    dropped = [r for r in rounds if not r.kept]
    if dropped:
        ax.plot(
            [r.index for r in dropped], [r.val_loss for r in dropped], "rx", ms=10, label="dropped (stop)"
        )
    if rounds:
        ax.axhline(rounds[0].chance_loss, color="grey", ls="--", label="constant (0.5, 0.5)")
    ax.set_xlabel("RASA round")
    ax.set_ylabel("position MSE")
    ax.set_title("Position predictability per round")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _lowest(entropy: ClusterEntropy, n: int) -> list[int]:
    used = [c for c in range(entropy.clusters) if entropy.sizes[c] > 0]
    return sorted(used, key=lambda c: entropy.entropies[c])[:n]


def plot_entropy(before: ClusterEntropy, after: ClusterEntropy, path: Path) -> Path:
    """Row 1: entropy histogram and majority-cluster maps; rows 2-3: the most position-bound clusters."""
    cols = max(3, _SHOWN_CLUSTERS)
    fig, axes = plt.subplots(3, cols, figsize=(2.6 * cols, 7.5), squeeze=False)
    ax = axes[0, 0]
    bins = [i / 20 for i in range(21)]
    ax.hist(before.entropies, bins=bins, alpha=0.6, label=f"before (mean {before.mean:.3f})")
    ax.hist(after.entropies, bins=bins, alpha=0.6, label=f"after (mean {after.mean:.3f})")
    ax.set_xlabel("normalised position entropy")
    ax.set_ylabel("clusters")
    ax.legend(fontsize=7)
    for col, (name, ent) in enumerate((("before", before), ("after", after)), start=1):
        axes[0, col].imshow(ent.majority_map.numpy(), cmap="tab20", interpolation="nearest")
        axes[0, col].set_title(f"majority cluster, {name}", fontsize=9)
    for col in range(3, cols):
        axes[0, col].axis("off")
    for row, (name, ent) in enumerate((("before", before), ("after", after)), start=1):
        shown = _lowest(ent, cols)
        for col in range(cols):
            cell = axes[row, col]
            if col < len(shown):
                c = shown[col]
                cell.imshow(ent.histograms[c].numpy(), cmap="viridis", interpolation="nearest")
                cell.set_title(f"{name}: H={ent.entropies[c]:.2f}, n={ent.sizes[c]}", fontsize=8)
            cell.set_xticks([])
            cell.set_yticks([])
    for cell in axes[0, 1:3]:
        cell.set_xticks([])
        cell.set_yticks([])
    fig.suptitle("Cluster-position entropy (k-means on patch features; lowest-entropy clusters below)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


__all__ = ["plot_entropy", "plot_rounds"]
