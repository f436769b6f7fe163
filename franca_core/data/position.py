"""The data position of a run, and the per-step iBOT masks: what makes a batch a pure function of the step.

Neither DINOv2 nor Franca restores the data position on resume (reference §6, 'Checkpoints': the
loader state is saved only "if the data loader has a state_dict", and theirs has none). Here every
checkpoint stores a :class:`DataPosition`, and every random choice of a batch is derived from seeds:

- which images: the plans of ``franca_core.data.stream`` (a seeded global order, or seeded shard
  streams) starting from the stored position;
- their crops: ``derive_seed`` of the data seed and the sample's identity;
- the iBOT masks: :class:`StepMasker`, from ``rng(seed, step, group)``.

So the batch a rank trains on at step ``s`` is the same whether the run was interrupted or not.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from franca_core.data.collate import MultiCropBatch, sample_masks
from franca_core.masking.base import MaskGenerator

PlanKind = Literal["indexed", "stream"]


@dataclass(frozen=True)
class DataPosition:
    """How far a run has read its data, stored in every checkpoint.

    ``samples_seen`` is the global cursor of an indexed plan. Streams are split per (rank, worker), so
    their position only carries over to the same layout (ranks, workers, batch): ``origin_step`` is the
    step at which the current layout started, and ``generation`` counts layout changes (a new
    generation reshuffles instead of replaying the same order).
    """

    kind: PlanKind
    step: int
    samples_seen: int
    world_size: int
    num_workers: int
    batch_size_per_rank: int
    origin_step: int = 0
    generation: int = 0

    @property
    def global_batch(self) -> int:
        return self.world_size * self.batch_size_per_rank

    def advanced_to(self, step: int) -> DataPosition:
        """The position after training up to ``step`` with this layout."""
        seen = self.samples_seen + (step - self.step) * self.global_batch
        return dataclasses.replace(self, step=step, samples_seen=seen)

    def same_layout(self, other: DataPosition) -> bool:
        keys = ("kind", "world_size", "num_workers", "batch_size_per_rank")
        return all(getattr(self, k) == getattr(other, k) for k in keys)

    def continued_as(self, layout: DataPosition) -> DataPosition:
        """This position read with ``layout``'s ranks/workers/batch; a changed stream layout starts anew."""
        if self.same_layout(layout):
            return self
        new_stream = self.kind == "stream"
        return dataclasses.replace(
            layout,
            step=self.step,
            samples_seen=self.samples_seen,
            origin_step=self.step if new_stream else self.origin_step,
            generation=self.generation + 1 if new_stream else self.generation,
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> DataPosition:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})


@dataclass(frozen=True)
class StepMasker:
    """Stratified iBOT masks for the global crops of one step (reference §5.5), seeded per group.

    The images of a step are cut into groups of ``group_size``; group g's masks come from
    ``rng(seed, step, g)`` and are stratified over its ``n_global * group_size`` crops, as the official
    per-GPU collate does over its batch. With a fixed group size the masks of an image do not depend on
    how many ranks share the step, which is what makes a 2-rank run equal a 1-rank one.
    """

    generator: MaskGenerator
    seed: int
    group_size: int
    sample_probability: float = 0.5
    ratio_range: tuple[float, float] = (0.1, 0.65)
    n_global: int = 2

    def masks(self, step: int, first_image: int, n_images: int) -> tuple[torch.Tensor, int]:
        """(bool masks [n_global * n_images, N] crop-major, upperbound) for images [first, first + n)."""
        size = self.group_size
        if first_image % size or n_images % size:
            raise ValueError(f"mask group size {size} must divide the per-rank batch {n_images}")
        parts, upperbound = [], 0
        for group in range(first_image // size, (first_image + n_images) // size):
            rng = np.random.default_rng((self.seed, step, group))
            masks, bound = sample_masks(
                self.n_global * size, self.generator, rng, self.sample_probability, self.ratio_range
            )
            parts.append(masks.view(self.n_global, size, -1))  # rows crop-major: [n_g, size, N]
            upperbound += bound
        return torch.cat(parts, dim=1).flatten(0, 1), upperbound  # [n_g, n, N] -> [n_g * n, N]


def attach_masks(batch: MultiCropBatch, masks: torch.Tensor, upperbound: int) -> MultiCropBatch:
    """``batch`` with its iBOT masks replaced by ``masks`` [n_global * B, N] (weights and indices rebuilt)."""
    if masks.shape[0] != batch.global_crops.shape[0]:
        raise ValueError(f"{masks.shape[0]} masks for {batch.global_crops.shape[0]} global crops")
    counts = masks.sum(dim=-1, keepdim=True).clamp(min=1).float()  # [n_g B, 1]
    indices = masks.flatten().nonzero().flatten()  # [n_masked]
    return dataclasses.replace(
        batch,
        masks=masks,
        mask_indices=indices,
        masks_weight=(1.0 / counts).expand_as(masks)[masks],  # [n_masked], 1 / masked count of its image
        n_masked=int(indices.numel()),
        upperbound=upperbound,
    )
