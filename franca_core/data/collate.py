"""Collate multi-crop samples and iBOT masks into a typed batch (DINOv2 / Franca `collate_data_and_cast`).

Mask ratios are stratified as in DINOv2 and Franca (reference §5.5): of the B_g = n_global * B
global crops, int(B_g * mask_sample_probability) are masked. Their ratio range [lo, hi] is cut into
that many equal bins (linspace of n_masked_samples + 1 edges); image i draws its count
int(N * U(edge_i, edge_{i+1})), so the ratios cover the whole range in every batch. The other crops
get empty masks, and the list is shuffled. `upperbound` = sum_i int(N * edge_{i+1}) bounds the number
of masked tokens for any generator that masks at most n cells; the iBOT head pads to this size.

Randomness comes only from an explicit `numpy.random.Generator`. For exact resumption, give each
batch its own generator derived from (seed, step), e.g. `np.random.default_rng((seed, step))`;
`MultiCropCollator` derives one per epoch, DataLoader worker and call.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import get_worker_info

from franca_core.data.augment import MultiCropSample
from franca_core.masking.base import MaskGenerator

FRANCA_MASK_RATIO_RANGE = (0.1, 0.65)  # DINOv2 uses (0.1, 0.5)


@dataclasses.dataclass(frozen=True)
class MultiCropBatch:
    """One training batch. Crop-major: rows [k*B, (k+1)*B) hold crop k of every sample."""

    global_crops: torch.Tensor  # [n_global * B, 3, H, W]
    local_crops: torch.Tensor  # [n_local * B, 3, h, w]; [0, 3, 0, 0] when n_local = 0
    masks: torch.Tensor  # bool [n_global * B, N]; N = patches per global crop
    mask_indices: torch.Tensor  # long [n_masked]: flat indices of the True entries of masks
    masks_weight: torch.Tensor  # float32 [n_masked]: 1 / (masked count of its image), per token
    n_masked: int  # total masked tokens in the batch
    upperbound: int  # fixed upper bound on n_masked for this batch size and ratio range
    n_global_crops: int
    n_local_crops: int
    batch_size: int

    def to(
        self, device: torch.device | str, dtype: torch.dtype | None = None, non_blocking: bool = False
    ) -> MultiCropBatch:
        """Move every tensor to `device`; cast only the image crops to `dtype` (weights stay fp32)."""

        def move(t: torch.Tensor, cast: bool) -> torch.Tensor:
            return t.to(device=device, dtype=dtype if cast else None, non_blocking=non_blocking)

        return dataclasses.replace(
            self,
            global_crops=move(self.global_crops, True),
            local_crops=move(self.local_crops, True),
            masks=move(self.masks, False),
            mask_indices=move(self.mask_indices, False),
            masks_weight=move(self.masks_weight, False),
        )

    def pin_memory(self) -> MultiCropBatch:
        """Called by DataLoader(pin_memory=True) for custom batch types."""
        return dataclasses.replace(
            self,
            global_crops=self.global_crops.pin_memory(),
            local_crops=self.local_crops.pin_memory(),
            masks=self.masks.pin_memory(),
            mask_indices=self.mask_indices.pin_memory(),
            masks_weight=self.masks_weight.pin_memory(),
        )


def ratio_bin_edges(
    n_images: int, mask_sample_probability: float, ratio_range: tuple[float, float]
) -> np.ndarray:
    """Edges [n_masked_samples + 1] of the stratified ratio bins; n_masked_samples = int(n * p)."""
    n_masked_samples = int(n_images * mask_sample_probability)
    return np.linspace(ratio_range[0], ratio_range[1], n_masked_samples + 1)


def mask_upperbound(num_patches: int, edges: np.ndarray) -> int:
    """sum_i int(N * edge_{i+1}): the largest count each stratified bin can draw."""
    return sum(int(num_patches * hi) for hi in edges[1:])


def sample_masks(
    n_images: int,
    mask_generator: MaskGenerator,
    rng: np.random.Generator,
    mask_sample_probability: float = 0.5,
    ratio_range: tuple[float, float] = FRANCA_MASK_RATIO_RANGE,
) -> tuple[torch.Tensor, int]:
    """Stratified masks for `n_images` global crops: (bool [n_images, N] shuffled, upperbound)."""
    N = mask_generator.num_patches
    edges = ratio_bin_edges(n_images, mask_sample_probability, ratio_range)
    masks = [
        mask_generator(int(N * rng.uniform(lo, hi)), rng).flatten() for lo, hi in itertools.pairwise(edges)
    ]
    masks += [torch.zeros(N, dtype=torch.bool)] * (n_images - len(masks))
    order = rng.permutation(n_images)
    return torch.stack([masks[i] for i in order]), mask_upperbound(N, edges)


def _stack_crop_major(samples: Sequence[MultiCropSample], local: bool) -> torch.Tensor:
    """[n_crops * B, 3, h, w] with rows ordered (crop 0 of every sample, crop 1 of every sample, ...)."""
    crops = [s.local_crops if local else s.global_crops for s in samples]
    if not crops[0]:
        return torch.empty((0, 3, 0, 0))
    return torch.stack([per_sample[k] for k in range(len(crops[0])) for per_sample in crops])


def collate_multicrop(
    samples: Sequence[MultiCropSample],
    mask_generator: MaskGenerator,
    rng: np.random.Generator,
    mask_sample_probability: float = 0.5,
    ratio_range: tuple[float, float] = FRANCA_MASK_RATIO_RANGE,
) -> MultiCropBatch:
    """Stack the crops of `samples` and draw stratified iBOT masks for the global crops."""
    if not samples:
        raise ValueError("cannot collate an empty list of samples")
    n_global, n_local = len(samples[0].global_crops), len(samples[0].local_crops)
    if any(len(s.global_crops) != n_global or len(s.local_crops) != n_local for s in samples):
        raise ValueError("all samples must have the same numbers of global and local crops")
    B = len(samples)
    masks, upperbound = sample_masks(n_global * B, mask_generator, rng, mask_sample_probability, ratio_range)
    counts = masks.sum(dim=-1, keepdim=True).clamp(min=1).float()  # [n_global * B, 1]
    masks_weight = (1.0 / counts).expand_as(masks)[masks]  # [n_masked]
    mask_indices = masks.flatten().nonzero().flatten()  # [n_masked]
    return MultiCropBatch(
        global_crops=_stack_crop_major(samples, local=False),
        local_crops=_stack_crop_major(samples, local=True),
        masks=masks,
        mask_indices=mask_indices,
        masks_weight=masks_weight,
        n_masked=int(mask_indices.numel()),
        upperbound=upperbound,
        n_global_crops=n_global,
        n_local_crops=n_local,
        batch_size=B,
    )


@dataclasses.dataclass
class MultiCropCollator:
    """A DataLoader `collate_fn` drawing each batch's masks from rng((seed, epoch, worker id, call index)).

    Deterministic for a fixed seed, worker count and batch order (the DataLoader hands batches to
    workers round-robin). Each worker collates with its own copy, made when the loader's iterator
    starts: call `set_epoch` before each epoch (non-persistent workers) so epochs get new masks.
    For exact resume mid-epoch, call `collate_multicrop` with an rng derived from the step.
    """

    mask_generator: MaskGenerator
    seed: int = 0
    mask_sample_probability: float = 0.5
    ratio_range: tuple[float, float] = FRANCA_MASK_RATIO_RANGE
    epoch: int = 0
    calls: int = 0  # batches collated so far by this copy in this epoch

    def set_epoch(self, epoch: int) -> None:
        self.epoch, self.calls = epoch, 0

    def __call__(self, samples: Sequence[MultiCropSample]) -> MultiCropBatch:
        info = get_worker_info()
        worker = 0 if info is None else info.id
        rng = np.random.default_rng((self.seed, self.epoch, worker, self.calls))
        self.calls += 1
        return collate_multicrop(
            samples, self.mask_generator, rng, self.mask_sample_probability, self.ratio_range
        )
