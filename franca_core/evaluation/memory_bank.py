"""The Hummingbird patch memory bank: soft patch labels, rare-class sampling, retrieval and label mixing.

Facts from open-hummingbird-eval (Balažević et al., NeurIPS 2023; ``hbird/hbird_eval.py``), see
``shared/reference/evaluation-protocols.md`` section 3:
- each mask is cut into the S x S patch grid; a patch's label is the C-vector of pixel-class frequencies;
- keys are L2-normalised patch features, kept in float32 on the CPU (or on the search device);
- a bounded memory keeps ``M // (N_img x epochs)`` patches per image: score each patch by the sum, over the
  classes present in it, of the number of patches of that image containing the class; multiply by U(0, 1)
  noise; give empty patches 1e6; keep the lowest scores (rare classes first);
- retrieval: exact top-k (k = 30) inner products; "cross-attention" weights softmax(cos / beta) with
  beta = 0.02 over the k neighbours, both sides L2-normalised; the query's label is the weighted sum of the
  neighbours' soft labels.

Difference, on purpose: ignore-index pixels add nothing to a patch's label vector (hbird remaps VOC's 255 to
background 0 first; ``ignore_to`` reproduces that).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from franca_core.evaluation.neighbours import ExactIndex, SearchMethod, build_index, l2_normalize


def patch_soft_labels(
    masks: Tensor, patch: int, num_classes: int, ignore_index: int, ignore_to: int | None = None
) -> Tensor:
    """[N, H, W] integer masks -> [N, H/p, W/p, C] pixel-class frequencies per p x p patch (float32)."""
    masks = masks.long()
    if ignore_to is not None:
        masks = torch.where(masks == ignore_index, torch.full_like(masks, ignore_to), masks)
    n, h, w = masks.shape
    s_h, s_w = h // patch, w // patch
    valid = masks != ignore_index
    onehot = torch.nn.functional.one_hot(masks.clamp(0, num_classes - 1) * valid, num_classes).float()
    onehot = onehot * valid[..., None]  # [N, H, W, C]
    blocks = onehot[:, : s_h * patch, : s_w * patch].reshape(n, s_h, patch, s_w, patch, num_classes)
    return blocks.mean(dim=(2, 4))  # [N, S_h, S_w, C]


def rare_class_indices(labels: Tensor, keep: int, generator: torch.Generator) -> Tensor:
    """Indices of ``keep`` patches of one image favouring rare classes. labels: [P, C] soft labels."""
    present = labels > 0  # [P, C]
    patches_per_class = present.sum(dim=0).float()  # [C]: patches of this image containing each class
    score = (present.float() * patches_per_class).sum(dim=1)  # [P]
    score = score * torch.rand(score.shape, generator=generator)
    score[~present.any(dim=1)] = 1e6
    return score.argsort()[:keep]


@dataclass
class MemoryBank:
    """Normalised keys [M, D] and their soft labels [M, C]; the search index is built once per back-end."""

    keys: Tensor
    labels: Tensor
    _indexes: dict[str, ExactIndex] = field(default_factory=dict, repr=False)

    def index(self, method: SearchMethod) -> ExactIndex:
        if method not in self._indexes:
            self._indexes[method] = build_index(self.keys, method)
        return self._indexes[method]

    @classmethod
    def build(
        cls, patch_features: Tensor, soft_labels: Tensor, per_image: int | None = None, seed: int = 0
    ) -> MemoryBank:
        """From [N, S, S, D] features and [N, S, S, C] labels, keeping ``per_image`` patches per image."""
        n, d, c = patch_features.shape[0], patch_features.shape[-1], soft_labels.shape[-1]
        feats = patch_features.reshape(n, -1, d)
        labels = soft_labels.reshape(n, -1, c)
        if per_image is not None and per_image < feats.shape[1]:
            gen = torch.Generator().manual_seed(seed)
            idx = torch.stack([rare_class_indices(labels[i], per_image, gen) for i in range(n)])  # [N, keep]
            feats = torch.gather(feats, 1, idx[..., None].expand(-1, -1, d))
            labels = torch.gather(labels, 1, idx[..., None].expand(-1, -1, c))
        return cls(l2_normalize(feats.reshape(-1, d).float()), labels.reshape(-1, c).float())

    @classmethod
    def concat(cls, banks: list[MemoryBank]) -> MemoryBank:
        return cls(torch.cat([b.keys for b in banks]), torch.cat([b.labels for b in banks]))

    def __len__(self) -> int:
        return int(self.keys.shape[0])

    def predict(
        self, queries: Tensor, k: int = 30, temperature: float = 0.02, method: SearchMethod = "faiss"
    ) -> Tensor:
        """Soft label [Q, C] of each query [Q, D] mixed from its k nearest memory patches."""
        sims, idx = self.index(method).search(queries.float(), min(k, len(self)))  # [Q, k]
        cos = sims / queries.float().norm(dim=1, keepdim=True).clamp(min=1e-12)  # keys are unit norm
        attn = (cos / temperature).softmax(dim=1)  # [Q, k]
        return torch.einsum("qk,qkc->qc", attn, self.labels[idx])
