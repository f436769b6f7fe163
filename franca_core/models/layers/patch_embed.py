"""Patch embedding of the ViT (Dosovitskiy et al., 2021; reference §1.1 "Patch embed").

``proj`` is Conv2d(C, D, kernel=p, stride=p) with bias; the output is flattened row-major to [B, N, D]
with N = (H/p)·(W/p). There is no norm layer, as in DINOv2/Franca.
"""

from __future__ import annotations

from torch import Tensor, nn


class PatchEmbed(nn.Module):
    """Image [B, C, H, W] -> patch tokens [B, (H/p)·(W/p), D]; H and W must be multiples of p."""

    def __init__(
        self, img_size: int = 224, patch_size: int = 14, in_chans: int = 3, embed_dim: int = 768
    ) -> None:
        super().__init__()
        if img_size % patch_size != 0:
            raise ValueError(f"img_size {img_size} is not a multiple of patch_size {patch_size}")
        self.img_size = img_size
        self.patch_size = patch_size
        self.grid_size = img_size // patch_size
        self.num_patches = self.grid_size**2
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: Tensor) -> Tensor:
        _, _, H, W = x.shape
        p = self.patch_size
        if H % p or W % p:
            raise ValueError(f"input size {H}x{W} is not a multiple of the patch size {p}")
        x = self.proj(x)  # [B, D, H/p, W/p]
        return x.flatten(2).transpose(1, 2)  # [B, N, D], row-major over the patch grid


__all__ = ["PatchEmbed"]
