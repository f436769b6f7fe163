"""PNG plots for evaluation results (matplotlib, Agg back-end, no display needed)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np


def plot_curves(
    x: Sequence[float],
    curves: Mapping[str, Sequence[float]],
    path: Path,
    xlabel: str,
    ylabel: str,
    logx: bool = False,
    title: str | None = None,
) -> Path:
    """One line per named curve over the shared x values, saved as PNG."""
    fig, ax = plt.subplots(figsize=(5.5, 3.8), dpi=120)
    for name, y in curves.items():
        ax.plot(list(x), list(y), marker="o", label=name)
    if logx:
        ax.set_xscale("log", base=2)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def save_image_grid(
    rows: Sequence[Sequence[np.ndarray]], path: Path, titles: Sequence[str] | None = None
) -> Path:
    """A grid of HxWx3 (float in [0, 1] or uint8) or HxW images, one list per row, saved as PNG."""
    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(2.2 * n_cols, 2.2 * n_rows), dpi=110, squeeze=False)
    for r, row in enumerate(rows):
        for c in range(n_cols):
            ax = axes[r][c]
            ax.axis("off")
            if c < len(row):
                img = row[c]
                ax.imshow(img, cmap="viridis" if img.ndim == 2 else None, interpolation="nearest")
            if titles and r == 0 and c < len(titles):
                ax.set_title(titles[c], fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
