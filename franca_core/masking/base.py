"""The common interface of the patch-mask generators used by iBOT-style masked-token prediction.

A mask generator draws a boolean mask over the (H, W) grid of patch tokens of one global crop
(True = the student sees a mask token there, the teacher's prediction is the iBOT target). The
randomness comes only from the explicit `numpy.random.Generator` argument, never from a global RNG,
so a mask is a pure function of (generator state, n_masked).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import torch

GridSize = tuple[int, int]


@runtime_checkable
class MaskGenerator(Protocol):
    """Draws a boolean mask over a fixed (H, W) patch grid."""

    @property
    def grid_size(self) -> GridSize:
        """(H, W): patch rows and columns of the grid."""
        ...

    @property
    def num_patches(self) -> int:
        """H * W."""
        ...

    def __call__(self, n_masked: int, rng: np.random.Generator) -> torch.Tensor:
        """Return a bool tensor [H, W] with (about, see the class) `n_masked` True cells."""
        ...


def as_grid_size(grid_size: int | GridSize) -> GridSize:
    """Accept `16` or `(16, 16)`; check both sides are positive."""
    h, w = (grid_size, grid_size) if isinstance(grid_size, int) else grid_size
    if h <= 0 or w <= 0:
        raise ValueError(f"grid_size must be positive, got {(h, w)}")
    return int(h), int(w)


def aspect_bounds(min_aspect: float, max_aspect: float | None) -> tuple[float, float]:
    """Return (min_aspect, max_aspect) with the DINOv2 default max_aspect = 1 / min_aspect."""
    if min_aspect <= 0:
        raise ValueError(f"min_aspect must be positive, got {min_aspect}")
    hi = 1.0 / min_aspect if max_aspect is None else max_aspect
    if hi < min_aspect:
        raise ValueError(f"max_aspect {hi} is below min_aspect {min_aspect}")
    return min_aspect, hi


class GridMixin:
    """Stores the grid size and exposes the `MaskGenerator` properties."""

    _grid: GridSize

    @property
    def grid_size(self) -> GridSize:
        return self._grid

    @property
    def num_patches(self) -> int:
        return self._grid[0] * self._grid[1]

    def _empty(self) -> np.ndarray:
        return np.zeros(self._grid, dtype=bool)
