"""Resizing of learned absolute position embeddings (reference §1.1 "Positional-embedding interpolation").

The patch part of ``pos_embed`` ([1, M·M, D], a square M×M grid) is resized bicubically to the input's
patch grid (g_h, g_w); the CLS row is kept. Two ways to choose the output, as in DINOv2/Franca:

* ``offset > 0`` (default 0.1, the historical DINO workaround): ``scale_factor = ((g_h+offset)/M,
  (g_w+offset)/M)``, whose floor gives (g_h, g_w) while the sampling grid uses the offset scale;
* ``offset == 0``: explicit ``size = (g_h, g_w)`` (the DINOv2 ``_reg`` models, with antialias on).

The resize always runs in float32 and the result is cast back to the input dtype.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def square_grid_side(num_patches: int) -> int:
    """M such that M·M == num_patches; raises if the stored grid is not square."""
    side = math.isqrt(num_patches)
    if side * side != num_patches:
        raise ValueError(f"position embedding holds {num_patches} patch rows, which is not a square grid")
    return side


def interpolate_patch_pos_embed(
    patch_pos_embed: Tensor, grid_hw: tuple[int, int], *, offset: float = 0.1, antialias: bool = False
) -> Tensor:
    """Resize patch position embeddings [1, M·M, D] to [1, g_h·g_w, D] (row-major over the grid)."""
    _, n, dim = patch_pos_embed.shape
    side = square_grid_side(n)
    gh, gw = grid_hw
    grid = patch_pos_embed.float().reshape(1, side, side, dim).permute(0, 3, 1, 2)  # [1, D, M, M]
    if offset:
        scale = ((gh + offset) / side, (gw + offset) / side)
        out = F.interpolate(grid, scale_factor=scale, mode="bicubic", antialias=antialias)
    else:
        out = F.interpolate(grid, size=(gh, gw), mode="bicubic", antialias=antialias)
    if tuple(out.shape[-2:]) != (gh, gw):
        raise RuntimeError(f"pos_embed interpolation produced {tuple(out.shape[-2:])}, wanted {(gh, gw)}")
    out = out.permute(0, 2, 3, 1).reshape(1, gh * gw, dim)  # [1, g_h·g_w, D]
    return out.to(patch_pos_embed.dtype)


def resize_pos_embed(
    pos_embed: Tensor, new_grid: int | tuple[int, int], num_prefix_tokens: int = 1, antialias: bool = True
) -> Tensor:
    """Resize a checkpoint's ``pos_embed`` [1, P + M·M, D] to a new grid with an explicit target size.

    Used when loading weights at another resolution (as the official high-resolution script does):
    bicubic, antialias on, no offset. The P prefix rows (CLS) are kept unchanged.
    """
    grid_hw = (new_grid, new_grid) if isinstance(new_grid, int) else new_grid
    prefix, patches = pos_embed[:, :num_prefix_tokens], pos_embed[:, num_prefix_tokens:]
    resized = interpolate_patch_pos_embed(patches, grid_hw, offset=0.0, antialias=antialias)
    return torch.cat([prefix, resized], dim=1)


__all__ = ["interpolate_patch_pos_embed", "resize_pos_embed", "square_grid_side"]
