"""DINOv2's block-wise mask generator (Oquab et al., DINOv2, arXiv 2304.07193; BEiT-style blocks).

Random rectangles are accumulated until the target count is reached. Each rectangle has a target
area drawn uniformly between `min_num_patches` and the remaining budget (capped at
`max_num_patches`) and a log-uniform aspect ratio; a placement is accepted when it masks at least
one new cell and no more than the budget. Each block gets up to 10 attempts and the loop stops as
soon as a block cannot be placed, so the result never exceeds n but can fall short of it. There is
no roll and no inversion (reference §5.4). Franca keeps this generator only as a fallback; its
training masks are `CyclicMask`.

Two DINOv2 details are kept: rectangle sides are `round`ed (a target area of 4 can give a 1x3
rectangle) and a rectangle must be strictly smaller than the grid on both sides. With
`strict_min_area=True` a rectangle whose area is below `min_num_patches` counts as a failed attempt,
so every connected masked region has at least `min_num_patches` cells.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from franca_core.masking.base import GridMixin, GridSize, as_grid_size, aspect_bounds

_ATTEMPTS_PER_BLOCK = 10


class DinoV2BlockMask(GridMixin):
    """Accumulates random rectangles until about n cells are masked (never more than n)."""

    def __init__(
        self,
        grid_size: int | GridSize,
        min_num_patches: int = 4,
        max_num_patches: int | None = None,
        min_aspect: float = 0.3,
        max_aspect: float | None = None,
        strict_min_area: bool = False,
    ) -> None:
        """grid_size: (H, W) patches. max_num_patches: area cap of one block (default 0.5 * H * W).

        strict_min_area: reject rectangles smaller than min_num_patches (DINOv2 does not).
        """
        self._grid = as_grid_size(grid_size)
        if min_num_patches < 1:
            raise ValueError(f"min_num_patches must be >= 1, got {min_num_patches}")
        self.min_num_patches = min_num_patches
        self.max_num_patches = int(0.5 * self.num_patches) if max_num_patches is None else max_num_patches
        lo, hi = aspect_bounds(min_aspect, max_aspect)
        self.log_aspect = (math.log(lo), math.log(hi))
        self.strict_min_area = strict_min_area

    def __call__(self, n_masked: int, rng: np.random.Generator) -> torch.Tensor:
        """Bool [H, W] with at most min(n_masked, H*W) True cells."""
        mask = self._empty()
        count = 0
        target = min(n_masked, self.num_patches)
        while count < target:
            budget = min(target - count, self.max_num_patches)
            added = self._place_block(mask, budget, rng)
            if added == 0:
                break
            count += added
        return torch.from_numpy(mask)

    def _place_block(self, mask: np.ndarray, budget: int, rng: np.random.Generator) -> int:
        """Try up to 10 rectangles; mask the first acceptable one in place. Return the new cells."""
        H, W = self._grid
        area_lo, area_hi = sorted((float(self.min_num_patches), float(budget)))
        for _ in range(_ATTEMPTS_PER_BLOCK):
            area = rng.uniform(area_lo, area_hi)
            aspect = math.exp(rng.uniform(*self.log_aspect))
            h = round(math.sqrt(area * aspect))
            w = round(math.sqrt(area / aspect))
            if not (h < H and w < W) or (self.strict_min_area and h * w < self.min_num_patches):
                continue
            top = int(rng.integers(0, H - h + 1))
            left = int(rng.integers(0, W - w + 1))
            window = mask[top : top + h, left : left + w]  # view [h, w]
            added = h * w - int(window.sum())
            if 0 < added <= budget:
                window[...] = True
                return added
        return 0

    def __repr__(self) -> str:
        return (
            f"DinoV2BlockMask(grid_size={self._grid}, min_num_patches={self.min_num_patches}, "
            f"max_num_patches={self.max_num_patches}, strict_min_area={self.strict_min_area})"
        )
