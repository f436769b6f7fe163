"""Matryoshka (nested) multi-head clustering projection heads.

Franca (Venkataramanan et al., arXiv 2507.14137, §3.2 "Matryoshka representations for clustering")
attaches one clustering head per nested sub-embedding of sizes ``[D/16, D/8, D/4, D/2, D]`` and gives
level ``l`` ``K_l = K · m_l / D`` prototypes, coarse to fine (Matryoshka representation learning,
Kusupati et al., 2022). The same class serves the DINO (CLS) and the iBOT (patch) objectives; forward
accepts ``[B, D]`` or ``[B, N, D]``. Reference §3.1 (official ``MRLDINOHead``) and §9 items 1-3.

Modes (how level ``l`` reads the backbone embedding ``z``):

- ``"project"`` (default, official v1.0 code): a learned ``Linear(D -> m_l)`` on the full ``z``.
- ``"slice_project"`` (later official commit 7a1acd): ``Linear(m_l -> m_l)`` on ``z[..., :m_l]``.
- ``"slice"`` (paper text): ``z[..., :m_l]`` goes straight into the level's MLP.
- ``"shared"``: one MLP and one prototype matrix for all levels; level ``l`` uses the first ``m_l``
  input columns of the first linear layer (same as zero-padding the slice) and the first ``K_l``
  prototypes.

Per level (except ``"shared"``): an MLP ``m_l -> hidden -> hidden -> bottleneck`` with a GELU after the
bottleneck and no L2 normalisation before the prototypes (official; reference §9.3), then weight-normed
prototypes. State-dict keys match the official ones: ``matryoshka_projections.i.{weight,bias}``,
``mlps.i.{0,2,4}.{weight,bias}``, ``last_layers.i.{weight_g,weight_v}``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import nn

from franca_core.heads.layers import (
    WeightNormPrototypes,
    build_mlp,
    count_parameters,
    init_linear,
    split_first_linear,
)

MatryoshkaMode = Literal["project", "slice_project", "slice", "shared"]
HeadMode = Literal["project", "slice_project", "slice", "shared", "none"]
HeadOutput = tuple[torch.Tensor, ...]
"""Per-level logits, coarse to fine: level ``l`` has shape ``[..., K_l]``."""


def nesting_dims(embed_dim: int, n_levels: int = 5) -> tuple[int, ...]:
    """Nested sub-embedding sizes ``(D / 2^(n-1), ..., D / 2, D)``; official: 5 levels."""
    if n_levels < 1 or embed_dim % 2 ** (n_levels - 1):
        raise ValueError(f"embed_dim {embed_dim} is not divisible into {n_levels} nested levels")
    return tuple(embed_dim // 2**i for i in reversed(range(n_levels)))


def prototype_counts(out_dim: int, nesting: Sequence[int], embed_dim: int) -> tuple[int, ...]:
    """Prototypes per level, ``int(K · m_l / D)`` as in the official head (8192 ... 131072 for ViT-B)."""
    return tuple(int(out_dim * m / embed_dim) for m in nesting)


class MatryoshkaHead(nn.Module):
    """Nested projection head returning one logit tensor per Matryoshka level (coarse to fine).

    Args:
        in_dim: Backbone embedding width D.
        out_dim: Prototypes K at the finest level (``K_l = int(K · m_l / D)``).
        nesting: Nested widths ``m_l``, increasing; default ``nesting_dims(in_dim, 5)``.
        mode: How each level reads the embedding (module docstring).
        hidden_dim: MLP hidden width (official 2048).
        bottleneck_dim: MLP output width (official: 384 DINO head, 256 iBOT head).
        nlayers: Linear layers per MLP (official 3).
        l2_norm_bottleneck: L2-normalise the bottleneck before the prototypes (DINOv2 does; the official
            Franca head does not, reference §9.3).
        final_gelu: GELU after the bottleneck linear (official Franca: yes; DINOv2: no).
        freeze_weight_g: Freeze the prototype norms at 1 (DINO v1). Franca and DINOv2 train them.
        mlp_bias: Biases in the projections and MLPs.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        nesting: Sequence[int] | None = None,
        mode: MatryoshkaMode = "project",
        hidden_dim: int = 2048,
        bottleneck_dim: int = 384,
        nlayers: int = 3,
        l2_norm_bottleneck: bool = False,
        final_gelu: bool = True,
        freeze_weight_g: bool = False,
        mlp_bias: bool = True,
    ) -> None:
        super().__init__()
        self.nesting = tuple(nesting) if nesting is not None else nesting_dims(in_dim)
        _check_nesting(self.nesting, in_dim, mode)
        self.in_dim, self.out_dim, self.mode = in_dim, out_dim, mode
        self.n_prototypes = prototype_counts(out_dim, self.nesting, in_dim)
        self.l2_norm_bottleneck = l2_norm_bottleneck
        if mode == "shared":
            self.mlp = build_mlp(in_dim, hidden_dim, bottleneck_dim, nlayers, final_gelu, mlp_bias)
            self.apply(init_linear)
            self.last_layer = WeightNormPrototypes(bottleneck_dim, self.n_prototypes[-1], freeze_weight_g)
            return
        if mode in ("project", "slice_project"):
            self.matryoshka_projections = nn.ModuleList(
                nn.Linear(in_dim if mode == "project" else m, m, bias=mlp_bias) for m in self.nesting
            )
        self.mlps = nn.ModuleList(
            build_mlp(m, hidden_dim, bottleneck_dim, nlayers, final_gelu, mlp_bias) for m in self.nesting
        )
        self.apply(init_linear)
        self.last_layers = nn.ModuleList(
            WeightNormPrototypes(bottleneck_dim, k, freeze_weight_g) for k in self.n_prototypes
        )

    @property
    def n_levels(self) -> int:
        return len(self.nesting)

    def forward(self, x: torch.Tensor) -> HeadOutput:
        """Per-level logits: ``[..., D] -> tuple of [..., K_l]``, coarse to fine."""
        if x.shape[-1] != self.in_dim:
            raise ValueError(f"expected last dim {self.in_dim}, got {tuple(x.shape)}")
        if self.mode == "shared":
            return tuple(self._shared_level(x, level) for level in range(self.n_levels))
        outputs = []
        for level, m in enumerate(self.nesting):
            if self.mode == "project":
                h = self.matryoshka_projections[level](x)  # [..., D] -> [..., m]
            elif self.mode == "slice_project":
                h = self.matryoshka_projections[level](x[..., :m])  # [..., m] -> [..., m]
            else:
                h = x[..., :m]  # [..., m]
            outputs.append(self._prototypes(self.mlps[level](h), self.last_layers[level]))
        return tuple(outputs)

    def _shared_level(self, x: torch.Tensor, level: int) -> torch.Tensor:
        m, k = self.nesting[level], self.n_prototypes[level]
        first, rest = split_first_linear(self.mlp)
        # Restricting the weight to its first m columns == feeding the zero-padded prefix z[..., :m].
        h = F.linear(x[..., :m], first.weight[:, :m], first.bias)  # [..., m] -> [..., hidden]
        for layer in rest:
            h = layer(h)
        return self._prototypes(h, self.last_layer, k)

    def _prototypes(self, h: torch.Tensor, layer: nn.Module, n_rows: int | None = None) -> torch.Tensor:
        if self.l2_norm_bottleneck:
            h = F.normalize(h, dim=-1, p=2, eps=1e-6 if h.dtype == torch.float16 else 1e-12)
        return layer(h, n_rows)  # [..., bottleneck] -> [..., K_l]


class DINOHead(nn.Module):
    """Plain DINOv2 ``DINOHead`` (no Matryoshka): MLP, L2 norm, weight-normed prototypes.

    The "no Matryoshka" baseline. Key names match DINOv2 (``mlp.{0,2,4}.*``, ``last_layer.weight_{g,v}``).
    Returns a 1-tuple so that callers treat it like a one-level :class:`MatryoshkaHead`.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        hidden_dim: int = 2048,
        bottleneck_dim: int = 256,
        nlayers: int = 3,
        freeze_weight_g: bool = False,
        mlp_bias: bool = True,
    ) -> None:
        super().__init__()
        self.in_dim, self.out_dim = in_dim, out_dim
        self.nesting: tuple[int, ...] = (in_dim,)
        self.n_prototypes: tuple[int, ...] = (out_dim,)
        self.mlp = build_mlp(in_dim, hidden_dim, bottleneck_dim, nlayers, final_gelu=False, bias=mlp_bias)
        self.apply(init_linear)
        self.last_layer = WeightNormPrototypes(bottleneck_dim, out_dim, freeze_weight_g)

    @property
    def n_levels(self) -> int:
        return 1

    def forward(self, x: torch.Tensor) -> HeadOutput:
        """``[..., D] -> ([..., K],)``."""
        h = self.mlp(x)  # [..., bottleneck]
        h = F.normalize(h, dim=-1, p=2, eps=1e-6 if h.dtype == torch.float16 else 1e-12)
        return (self.last_layer(h),)


ProjectionHead = MatryoshkaHead | DINOHead


def build_head(
    mode: HeadMode,
    in_dim: int,
    out_dim: int,
    n_levels: int = 5,
    hidden_dim: int = 2048,
    bottleneck_dim: int = 384,
    nlayers: int = 3,
    freeze_weight_g: bool = False,
    l2_norm_bottleneck: bool = False,
) -> ProjectionHead:
    """A DINO or iBOT head by mode name: a Matryoshka mode, or ``"none"`` for the plain DINOv2 head.

    ``l2_norm_bottleneck`` applies to the Matryoshka modes (the plain DINOv2 head always normalises).
    """
    if mode == "none":
        return DINOHead(in_dim, out_dim, hidden_dim, bottleneck_dim, nlayers, freeze_weight_g)
    if mode not in get_args(MatryoshkaMode):
        raise ValueError(f"unknown head mode {mode!r}; expected one of {get_args(HeadMode)}")
    nesting = nesting_dims(in_dim, n_levels)
    return MatryoshkaHead(
        in_dim,
        out_dim,
        nesting,
        mode,
        hidden_dim,
        bottleneck_dim,
        nlayers,
        l2_norm_bottleneck=l2_norm_bottleneck,
        freeze_weight_g=freeze_weight_g,
    )


def head_parameter_count(
    mode: HeadMode,
    in_dim: int,
    out_dim: int,
    n_levels: int = 5,
    hidden_dim: int = 2048,
    bottleneck_dim: int = 384,
    nlayers: int = 3,
) -> int:
    """Parameters of a head, counted on the meta device (no memory, instant even at K = 131072).

    ViT-B DINO head, ``"project"``, bottleneck 384, K = 131072: 126.9 M (reference §3.1).
    """
    with torch.device("meta"):
        head = build_head(mode, in_dim, out_dim, n_levels, hidden_dim, bottleneck_dim, nlayers)
    return count_parameters(head)


def _check_nesting(nesting: tuple[int, ...], in_dim: int, mode: str) -> None:
    if mode not in get_args(MatryoshkaMode):
        raise ValueError(f"unknown Matryoshka mode {mode!r}; expected one of {get_args(MatryoshkaMode)}")
    if not nesting or any(m <= 0 for m in nesting) or list(nesting) != sorted(set(nesting)):
        raise ValueError(f"nesting must be strictly increasing positive widths, got {nesting}")
    if mode != "project" and nesting[-1] > in_dim:
        raise ValueError(f"mode {mode!r} slices the embedding: nesting {nesting} exceeds in_dim {in_dim}")
