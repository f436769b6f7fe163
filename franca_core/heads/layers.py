"""Building blocks shared by the projection heads: the head MLP and the weight-normalised prototypes.

The prototype layer follows DINO (Caron et al., 2021, §3 "projection head") and DINOv2 (Oquab et al.,
2023, `DINOHead`): a bias-free linear map whose rows are re-parametrised as ``w_k = g_k · v_k / ‖v_k‖``
(Salimans & Kingma, 2016), with ``g`` initialised to 1. Franca keeps this layer for every Matryoshka level
(Franca, arXiv 2507.14137, §3.2; reference §3.1).

We implement the re-parametrisation directly instead of using the deprecated
``torch.nn.utils.weight_norm``: the parameters are still called ``weight_g`` [K, 1] and ``weight_v``
[K, bottleneck], so official checkpoints load unchanged. A load hook also accepts the key names written
by ``torch.nn.utils.parametrizations.weight_norm`` and plain (already folded) ``weight`` tensors.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.init import trunc_normal_

# Key suffixes written by torch.nn.utils.parametrizations.weight_norm (g is original0, v is original1).
_PARAMETRIZED_G = "parametrizations.weight.original0"
_PARAMETRIZED_V = "parametrizations.weight.original1"


class WeightNormPrototypes(nn.Module):
    """Bias-free linear layer with weight-normalised rows: the prototypes of a clustering head.

    Args:
        in_dim: Bottleneck width (input size).
        n_prototypes: Number of prototypes K (output size).
        freeze_weight_g: Keep the row norms ``g`` fixed at 1 (DINO v1 ``norm_last_layer=True``). DINOv2
            and Franca leave ``g`` trainable (initialised to 1), which is the default here.
    """

    def __init__(self, in_dim: int, n_prototypes: int, freeze_weight_g: bool = False) -> None:
        super().__init__()
        self.in_dim = in_dim
        self.n_prototypes = n_prototypes
        self.weight_g = nn.Parameter(torch.ones(n_prototypes, 1), requires_grad=not freeze_weight_g)
        self.weight_v = nn.Parameter(torch.empty(n_prototypes, in_dim))
        # torch.nn.Linear's default init (kaiming-uniform, a=sqrt(5)): the official heads apply their
        # trunc-normal init *after* wrapping in weight_norm, so it never reaches weight_v (reference §3.1).
        nn.init.kaiming_uniform_(self.weight_v, a=math.sqrt(5))
        self.register_load_state_dict_pre_hook(_rename_weight_norm_keys)

    def normalized_weight(self, n_rows: int | None = None) -> torch.Tensor:
        """The first ``n_rows`` (default all) prototypes as ``g · v / ‖v‖``: [n_rows, in_dim]."""
        v = self.weight_v if n_rows is None else self.weight_v[:n_rows]  # [n, in_dim]
        g = self.weight_g if n_rows is None else self.weight_g[:n_rows]  # [n, 1]
        return v * (g / v.norm(dim=1, keepdim=True))

    def forward(self, x: torch.Tensor, n_rows: int | None = None) -> torch.Tensor:
        """Logits against the first ``n_rows`` prototypes: [..., in_dim] -> [..., n_rows]."""
        return F.linear(x, self.normalized_weight(n_rows))

    def extra_repr(self) -> str:
        return f"in_dim={self.in_dim}, n_prototypes={self.n_prototypes}"


def _rename_weight_norm_keys(
    module: nn.Module, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any
) -> None:
    """Map parametrization-style keys, or a folded ``weight``, onto ``weight_g`` / ``weight_v``."""
    g_key, v_key = prefix + "weight_g", prefix + "weight_v"
    if prefix + _PARAMETRIZED_G in state_dict and g_key not in state_dict:
        state_dict[g_key] = state_dict.pop(prefix + _PARAMETRIZED_G)
    if prefix + _PARAMETRIZED_V in state_dict and v_key not in state_dict:
        state_dict[v_key] = state_dict.pop(prefix + _PARAMETRIZED_V)
    if prefix + "weight" in state_dict and v_key not in state_dict:
        weight = state_dict.pop(prefix + "weight")  # [K, in_dim], weight norm already folded in
        state_dict[g_key] = weight.norm(dim=1, keepdim=True)  # [K, 1]
        state_dict[v_key] = weight


def build_mlp(
    in_dim: int, hidden_dim: int, out_dim: int, nlayers: int, final_gelu: bool, bias: bool = True
) -> nn.Module:
    """The head MLP of DINOv2 (``_build_mlp``), optionally with Franca's GELU after the bottleneck.

    ``nlayers >= 2`` gives ``Linear, GELU, (Linear, GELU) * (nlayers - 2), Linear[, GELU]`` in an
    ``nn.Sequential`` (linear layers at indices 0, 2, 4, ...: the official key names). ``nlayers == 1``
    gives a bare ``Linear(in_dim, out_dim)`` as in both official codes (no GELU there). BatchNorm
    (``use_bn``) is not supported: no Franca or DINOv2 config enables it.
    """
    if nlayers < 1:
        raise ValueError(f"nlayers must be >= 1, got {nlayers}")
    if nlayers == 1:
        return nn.Linear(in_dim, out_dim, bias=bias)
    layers: list[nn.Module] = [nn.Linear(in_dim, hidden_dim, bias=bias), nn.GELU()]
    for _ in range(nlayers - 2):
        layers += [nn.Linear(hidden_dim, hidden_dim, bias=bias), nn.GELU()]
    layers.append(nn.Linear(hidden_dim, out_dim, bias=bias))
    if final_gelu:
        layers.append(nn.GELU())
    return nn.Sequential(*layers)


def init_linear(module: nn.Module) -> None:
    """DINOv2 head init, for use with ``Module.apply``: trunc-normal(std 0.02) weights, zero biases."""
    if isinstance(module, nn.Linear):
        trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def split_first_linear(mlp: nn.Module) -> tuple[nn.Linear, list[nn.Module]]:
    """Split an MLP from :func:`build_mlp` into its first ``Linear`` and the modules after it."""
    if isinstance(mlp, nn.Linear):
        return mlp, []
    if not isinstance(mlp, nn.Sequential) or not isinstance(mlp[0], nn.Linear):
        raise TypeError("expected an MLP built by build_mlp")
    return mlp[0], list(mlp)[1:]


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of scalar parameters (works on meta-device modules)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
