"""KoLeo regulariser: spread the batch's embeddings uniformly on the sphere.

Kozachenko-Leonenko differential-entropy estimator, as used by DINOv2 (Oquab et al., 2023, §4
"KoLeo regularizer"; Sablayrolles et al., 2019): ``-1/n sum_i log(d_i)`` with ``d_i`` the distance from
``x_i`` to its nearest neighbour in the batch. Franca (arXiv 2507.14137; reference §4.4) applies it to the
student backbone's global CLS tokens (the full embedding, not a head level), separately for each global
crop, and sums the crops; the caller multiplies by ``koleo_loss_weight`` (0.1).

As in DINOv2's ``KoLeoLoss``: fp32 with autocast off, L2 normalisation with eps 1e-8, the nearest
neighbour by largest dot product with the diagonal excluded, and ``pairwise_distance`` whose eps (1e-8)
is added to the difference vector before the norm, then ``-mean log(d + 1e-8)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def koleo_loss(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """KoLeo loss of one set of vectors [n, D] (n >= 2) -> fp32 scalar."""
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"KoLeo needs [n >= 2, D] vectors, got {tuple(x.shape)}")
    with torch.autocast(device_type=x.device.type, enabled=False):
        x = F.normalize(x.float(), p=2, dim=-1, eps=eps)  # [n, D]
        with torch.no_grad():
            dots = x @ x.t()  # [n, n]
            dots.fill_diagonal_(float("-inf"))
            neighbour = dots.argmax(dim=1)  # [n]
        distances = F.pairwise_distance(x, x[neighbour], p=2, eps=eps)  # [n]
        return -torch.log(distances + eps).mean()


def koleo_loss_per_crop(cls_tokens: torch.Tensor, n_global_crops: int = 2, eps: float = 1e-8) -> torch.Tensor:
    """Sum of :func:`koleo_loss` over the global crops (official usage).

    Args:
        cls_tokens: Student backbone global CLS tokens [n_g * B, D], crop-major.
        n_global_crops: n_g; the rows are split into n_g chunks of B.
    """
    if cls_tokens.shape[0] % n_global_crops:
        raise ValueError(f"{cls_tokens.shape[0]} rows do not split into {n_global_crops} crops")
    return sum(
        (koleo_loss(chunk, eps) for chunk in cls_tokens.chunk(n_global_crops, dim=0)),  # n_g x [B, D]
        start=torch.zeros((), device=cls_tokens.device),
    )
