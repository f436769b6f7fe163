"""The label oracle: features that encode the ground truth, the ceiling every evaluator should reach.

Image-level features are the one-hot class vector (zero for unlabelled images), zero-padded to ``dim``;
patch features are the one-hot majority class of each patch's labelled pixels (zero for patches with
only ignore pixels). A suite run on the oracle (``franca eval --backbone oracle``) checks the data and
the evaluators end to end: every accuracy should be 100 % and every mIoU near the ceiling of a
patch-level predictor (classes thinner than a patch are lost). Cross-dataset OOD scores are not
meaningful for the oracle: another dataset's labels live in the same one-hot space.
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader

from franca_core.evaluation.features import FeatureRequest, FeatureSet, LabelledDataset
from franca_core.evaluation.memory_bank import patch_soft_labels


class LabelOracleFeatures:
    """A :class:`~franca_core.evaluation.features.FeatureSource` that returns label-derived features."""

    def __init__(self, patch_size: int = 14, dim: int = 64, ignore_index: int | None = None):
        self.patch_size = patch_size
        self.dim = dim
        self.ignore_index = ignore_index

    def _onehot(self, labels: torch.Tensor, width: int) -> torch.Tensor:
        out = torch.zeros(*labels.shape, width)
        valid = labels >= 0
        out[valid] = torch.nn.functional.one_hot(labels[valid], width).float()
        return out

    def extract(self, dataset: LabelledDataset, request: FeatureRequest) -> FeatureSet:
        targets = torch.cat([torch.as_tensor(t) for _, t in DataLoader(dataset, batch_size=64)])  # type: ignore[arg-type]
        if targets.ndim == 1:
            width = max(self.dim, int(targets.max().item()) + 1)
            cls = self._onehot(targets.long(), width)
            n = request.last_blocks
            blocks = cls[:, None].repeat(1, n, 1) if n else None
            return FeatureSet(
                cls=cls, targets=targets.long(), blocks_cls=blocks, avgpool=cls.clone() if n else None
            )
        split = getattr(dataset, "split", None)
        num_classes = int(getattr(split, "num_classes", int(targets.max().item()) + 1))
        ignore = int(getattr(split, "ignore_index", 255 if self.ignore_index is None else self.ignore_index))
        soft = patch_soft_labels(targets, self.patch_size, num_classes, ignore)  # [N, S, S, C]
        majority = torch.where(soft.sum(-1) > 0, soft.argmax(-1), torch.full(soft.shape[:-1], -1))
        width = max(self.dim, num_classes)
        patch = self._onehot(majority, width)
        cls = patch.mean(dim=(1, 2))
        return FeatureSet(cls=cls, targets=targets.to(torch.int16), patch=patch.half())
