"""RASA head: Removal of Absolute Spatial Attributes (Franca, arXiv 2507.14137, §3.4; reference §7.1, §7.3).

Official layout (no biases): ``pre_pos_layers.<k>.weight`` [2, D] for k = 0..n-1 (frozen predictors from
earlier RASA iterations) and ``pos_pred.weight`` [2, D] (the predictor being trained).

Each weight W [2, D] spans a 2-D "position plane": r = W0/|W0|, c' = Gram-Schmidt of W1 against r. Removal
is applied sequentially in index order, then ``pos_pred``: x <- x - (x·r) r - (x·c') c'. The planes need not
be mutually orthogonal, so order matters. Every step is linear, so the whole chain folds into one D×D
matrix P (computed in float64) and inference needs a single matmul: x_rasa = x @ P.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

_PRE_KEY = re.compile(r"^pre_pos_layers\.(\d+)\.weight$")


def _unit_axis(n: int, dtype: torch.dtype) -> Tensor:
    """[n] coordinates 0, 1/(n-1), ..., 1; a single position sits at 0.5."""
    return torch.arange(n, dtype=dtype) / (n - 1) if n > 1 else torch.full((1,), 0.5, dtype=dtype)


def grid_positions(grid: tuple[int, int], dtype: torch.dtype = torch.float32) -> Tensor:
    """RASA targets [gh * gw, 2]: token (a, b) in row-major order -> (a / (gh - 1), b / (gw - 1)), rows first.

    Reference §7.2 step 4 (meshgrid "ij" over the token order, as the ViT patchifies).
    """
    rows, cols = torch.meshgrid(_unit_axis(grid[0], dtype), _unit_axis(grid[1], dtype), indexing="ij")
    return torch.stack([rows.reshape(-1), cols.reshape(-1)], dim=-1)  # [gh, gw] x2 -> [gh * gw, 2]


def plane_basis(weight: Tensor) -> tuple[Tensor, Tensor]:
    """Orthonormal basis (r, c') [D] each of the plane spanned by the two rows of ``weight`` [2, D]."""
    r = weight[0] / weight[0].norm()
    c = weight[1] / weight[1].norm()
    c_orth = c - (c @ r) * r
    return r, c_orth / c_orth.norm()


def decompose_pos_2d(x: Tensor, weight: Tensor) -> tuple[Tensor, Tensor]:
    """Split tokens x [..., D] into (x_pos, x - x_pos), x_pos the projection onto the plane of ``weight``."""
    r, c = plane_basis(weight.to(x.dtype))
    x_pos = (x @ r).unsqueeze(-1) * r + (x @ c).unsqueeze(-1) * c  # [..., 1] * [D] -> [..., D]
    return x_pos, x - x_pos


def plane_removal_matrix(weights: Sequence[Tensor], dtype: torch.dtype = torch.float64) -> Tensor:
    """P = F_0 F_1 ... F_{m-1} with F_k = I - r_k r_kᵀ - c'_k c'_kᵀ, so sequential removal is x @ P [D, D]."""
    if not weights:
        raise ValueError("need at least one [2, D] weight to build a removal matrix")
    dim = weights[0].shape[-1]
    eye = torch.eye(dim, dtype=dtype, device=weights[0].device)
    fold = eye.clone()
    for weight in weights:
        r, c = plane_basis(weight.detach().to(dtype))
        fold = fold @ (eye - torch.outer(r, r) - torch.outer(c, c))
    return fold


class RASAHead(nn.Module):
    """``n_pre_layers`` frozen position predictors plus the trainable ``pos_pred``, each Linear(D -> 2)."""

    def __init__(self, dim: int, n_pre_layers: int) -> None:
        super().__init__()
        if n_pre_layers < 0:
            raise ValueError(f"n_pre_layers must be >= 0, got {n_pre_layers}")
        self.dim = dim
        self.pre_pos_layers = nn.ModuleList(nn.Linear(dim, 2, bias=False) for _ in range(n_pre_layers))
        self.pos_pred = nn.Linear(dim, 2, bias=False)

    @property
    def n_pre_layers(self) -> int:
        return len(self.pre_pos_layers)

    def plane_weights(self, use_pos_pred: bool = True) -> list[Tensor]:
        """The [2, D] weights in removal order: pre_pos_layers 0..n-1, then pos_pred if requested."""
        weights = [layer.weight for layer in self.pre_pos_layers if isinstance(layer, nn.Linear)]
        return [*weights, self.pos_pred.weight] if use_pos_pred else weights

    def forward(self, x: Tensor, use_pos_pred: bool = True) -> Tensor:
        """Remove the position planes from tokens x [..., D] one after the other; returns [..., D]."""
        for weight in self.plane_weights(use_pos_pred):
            _, x = decompose_pos_2d(x, weight)
        return x

    def predict_positions(self, x: Tensor) -> Tensor:
        """sigmoid(pos_pred(x)) [..., 2]: the normalised (row, col) prediction trained by RASA."""
        return torch.sigmoid(self.pos_pred(x))

    def folded_matrix(self, use_pos_pred: bool = True) -> Tensor:
        """The float64 [D, D] matrix P with forward(x, use_pos_pred) == x @ P."""
        weights = self.plane_weights(use_pos_pred)
        if not weights:
            return torch.eye(self.dim, dtype=torch.float64, device=self.pos_pred.weight.device)
        return plane_removal_matrix(weights)

    @torch.no_grad()
    def grown(self) -> RASAHead:
        """Next RASA iteration: this ``pos_pred`` appended to the frozen layers, and a fresh ``pos_pred``."""
        new = RASAHead(self.dim, self.n_pre_layers + 1).to(self.pos_pred.weight.device)
        for src, dst in zip(self.plane_weights(use_pos_pred=True), new.pre_pos_layers, strict=True):
            assert isinstance(dst, nn.Linear)
            dst.weight.copy_(src)
        return new

    def official_state_dict(self) -> dict[str, Tensor]:
        """The release layout (reference §2.4): ``pre_pos_layers.<k>.weight`` and ``pos_pred.weight``, float32
        CPU tensors [2, D], no wrapper and no biases; ``torch.save`` it to get an official ``_rasa.pth``."""
        return {k: v.detach().float().cpu().contiguous() for k, v in self.state_dict().items()}

    @classmethod
    def from_state_dict(cls, state_dict: Mapping[str, Tensor]) -> RASAHead:
        """Build a head from an official-layout state dict; the number of pre layers is inferred."""
        if "pos_pred.weight" not in state_dict:
            raise KeyError(f"RASA state dict has no 'pos_pred.weight'; keys: {sorted(state_dict)}")
        dim = state_dict["pos_pred.weight"].shape[-1]
        indices = sorted(int(m.group(1)) for key in state_dict if (m := _PRE_KEY.match(key)))
        if indices != list(range(len(indices))):
            raise KeyError(f"RASA pre_pos_layers indices are not contiguous from 0: {indices}")
        head = cls(dim, len(indices))
        expected = set(head.state_dict())
        unexpected = sorted(set(state_dict) - expected)
        if unexpected:
            raise KeyError(f"unexpected keys in RASA state dict: {unexpected}")
        bad = {k: tuple(v.shape) for k, v in state_dict.items() if tuple(v.shape) != (2, dim)}
        if bad:
            raise ValueError(f"RASA weights must have shape (2, {dim}); got {bad}")
        head.load_state_dict({k: v.float() for k, v in state_dict.items()})
        return head


__all__ = ["RASAHead", "decompose_pos_2d", "grid_positions", "plane_basis", "plane_removal_matrix"]
