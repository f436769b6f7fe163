"""Patch-mask generators for iBOT masked-token prediction: Franca's CyclicMask and DINOv2's blocks.

Every generator is built from a (H, W) patch grid and called as `gen(n_masked, rng)` with an explicit
`numpy.random.Generator`; it returns a bool tensor [H, W]. `MASK_GENERATORS` maps a config name to
the class; every class takes the grid size as its first argument.
"""

from franca_core.masking.base import MaskGenerator, as_grid_size
from franca_core.masking.block import BlockMask, CyclicMask, InverseBlockMask, sample_block
from franca_core.masking.dinov2 import DinoV2BlockMask

MASK_GENERATORS: dict[str, type[BlockMask] | type[DinoV2BlockMask]] = {
    "block": BlockMask,
    "inverse_block": InverseBlockMask,
    "cyclic": CyclicMask,
    "dinov2": DinoV2BlockMask,
}

__all__ = [
    "MASK_GENERATORS",
    "BlockMask",
    "CyclicMask",
    "DinoV2BlockMask",
    "InverseBlockMask",
    "MaskGenerator",
    "as_grid_size",
    "sample_block",
]
