"""Franca's single-rectangle masks and CyclicMask (Franca, arXiv 2507.14137, supplement Algorithm 1).

Franca replaces DINOv2's accumulation of random blocks with one rectangle holding exactly n cells:

- `BlockMask`: the rectangle is masked.
- `InverseBlockMask`: the rectangle (H*W - n cells) stays visible and everything else is masked.
- `roll=True` circularly shifts the rectangle by a uniform (row, column) offset, so it wraps around
  the borders. Without the roll, a visible rectangle covers the centre of the grid more often than
  its border, so border patches are masked more often than central ones; with it every position is
  masked with the same probability. `CyclicMask` (inverse + roll) is the Franca training setting.

The sampling rules follow the official code (reference §5.2, §5.3): log-uniform aspect ratio clamped
so the rectangle fits, sides rounded up, uniform offset, then raster-order truncation to n cells.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from franca_core.masking.base import GridMixin, GridSize, as_grid_size, aspect_bounds


def _sample_log_aspect(
    n: int, grid: GridSize, min_aspect: float, max_aspect: float, rng: np.random.Generator
) -> float:
    """Draw aspect = h / w log-uniformly, clamped so an n-cell rectangle of that aspect fits the grid."""
    H, W = grid
    # w = sqrt(n / aspect) <= W  =>  aspect >= n / W^2;  h = sqrt(n * aspect) <= H  =>  aspect <= H^2 / n.
    lo = max(math.log(min_aspect), math.log(n / W**2))
    hi = min(math.log(max_aspect), math.log(H**2 / (n + 1e-5)))
    lo = min(lo, hi)
    return math.exp(rng.uniform(lo, hi))


def _rectangle_sides(n: int, aspect: float, grid: GridSize) -> tuple[int, int]:
    """Sides (h, w) of the rectangle, rounded up and clipped to the grid, with h * w >= n."""
    H, W = grid
    h = min(H, math.ceil(math.sqrt(n * aspect)))
    w = min(W, math.ceil(math.sqrt(n / aspect)))
    if h * w < n:
        # Only reachable with extreme aspect bounds on a non-square grid: widen, then heighten.
        w = min(W, math.ceil(n / h))
        h = min(H, math.ceil(n / w))
    return h, w


def sample_block(
    n: int,
    grid: GridSize,
    min_aspect: float,
    max_aspect: float,
    roll: bool,
    rng: np.random.Generator,
) -> np.ndarray:
    """Bool array [H, W] with exactly n True cells forming one (possibly rolled) rectangle.

    RNG draws, in order: log-aspect, top, left, then (if roll) row shift and column shift.
    """
    H, W = grid
    mask = np.zeros(grid, dtype=bool)
    n = min(n, H * W)
    if n <= 0:
        return mask
    aspect = _sample_log_aspect(n, grid, min_aspect, max_aspect, rng)
    h, w = _rectangle_sides(n, aspect, grid)
    top = int(rng.integers(0, H - h + 1))
    left = int(rng.integers(0, W - w + 1))
    # Keep the first n cells of the h x w rectangle in raster order: full rows, then a partial row.
    full_rows, rest = divmod(n, w)
    mask[top : top + full_rows, left : left + w] = True
    if rest:
        mask[top + full_rows, left : left + rest] = True
    if roll:
        shift = (int(rng.integers(0, H)), int(rng.integers(0, W)))
        mask = np.roll(mask, shift, axis=(0, 1))
    return mask


class BlockMask(GridMixin):
    """One masked rectangle of exactly n cells (Franca `BlockMasking`); `roll=True` makes it cyclic."""

    def __init__(
        self,
        grid_size: int | GridSize,
        min_aspect: float = 0.3,
        max_aspect: float | None = None,
        roll: bool = False,
    ) -> None:
        """grid_size: (H, W) patches; aspect = h / w in [min_aspect, max_aspect (default 1/min)]."""
        self._grid = as_grid_size(grid_size)
        self.min_aspect, self.max_aspect = aspect_bounds(min_aspect, max_aspect)
        self.roll = roll

    def __call__(self, n_masked: int, rng: np.random.Generator) -> torch.Tensor:
        """Bool [H, W] with exactly min(n_masked, H*W) True cells."""
        block = sample_block(n_masked, self._grid, self.min_aspect, self.max_aspect, self.roll, rng)
        return torch.from_numpy(block)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(grid_size={self._grid}, min_aspect={self.min_aspect}, roll={self.roll})"
        )


class InverseBlockMask(BlockMask):
    """Everything masked except one visible rectangle of H*W - n cells (Franca `InverseBlockMasking`)."""

    def __call__(self, n_masked: int, rng: np.random.Generator) -> torch.Tensor:
        """Bool [H, W] with exactly clip(n_masked, 0, H*W) True cells."""
        total = self.num_patches
        if n_masked <= 0:
            return torch.from_numpy(self._empty())
        if n_masked >= total:
            return torch.ones(self._grid, dtype=torch.bool)
        visible = sample_block(total - n_masked, self._grid, self.min_aspect, self.max_aspect, self.roll, rng)
        return torch.from_numpy(~visible)


class CyclicMask(InverseBlockMask):
    """Franca's CyclicMask: `InverseBlockMask` with `roll=True` (supplement Algorithm 1).

    The visible rectangle is shifted by a uniform circular offset, so it wraps around the grid
    borders and every patch position is masked with the same marginal probability.
    """

    def __init__(
        self,
        grid_size: int | GridSize,
        min_aspect: float = 0.3,
        max_aspect: float | None = None,
    ) -> None:
        """grid_size: (H, W) patches; aspect = h / w of the visible rectangle in [min_aspect, max_aspect]."""
        super().__init__(grid_size, min_aspect=min_aspect, max_aspect=max_aspect, roll=True)
