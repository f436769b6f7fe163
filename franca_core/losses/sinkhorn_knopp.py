"""Teacher targets by Sinkhorn-Knopp normalisation (SwAV; DINOv2 §3 "Sinkhorn-Knopp centering").

Franca (arXiv 2507.14137, §3) uses Sinkhorn-Knopp (SK) for both the DINO and the iBOT teacher, applied
independently to every Matryoshka level (reference §4.1). With ``Q = exp(t / T)^T`` of shape [K, b]:

    repeat n times:  Q /= row sums (all-reduced over ranks);  Q /= K
                     Q /= column sums;                        Q /= B_total
    targets = (Q * B_total)^T                                  # each sample row sums to 1

``B_total`` is the number of rows over all ranks. SK pushes the prototype marginals towards uniform so
that the teacher cannot collapse onto a few prototypes.

Differences from the official code (none changes the maths of valid rows):

- Only the first ``n_valid`` rows take part. The official iBOT path also feeds the zero-input padding
  rows of its ``upperbound`` buffer into SK (reference §9.12), which biases the prototype marginals;
  ``official_padding_rows=True`` reproduces that.
- Each prototype's logits are shifted by their maximum over the global batch before ``exp``. That is an
  exact row rescaling of Q, removed by the first row normalisation, and it avoids fp32 overflow for the
  un-normalised Franca bottleneck (reference §9.3). The official initial division of Q by its global sum
  (iBOT path) is skipped for the same reason: the row normalisation cancels it.
- Zero column sums (a sample whose every entry underflows) are clamped, so they give a zero target row
  instead of NaN. The official code would return NaN there.
- The valid-row count is all-reduced, so ranks may hold different numbers of rows.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from franca_core.distributed import all_reduce_max, all_reduce_sum

_TINY = torch.finfo(torch.float32).tiny


@torch.no_grad()
def sinkhorn_knopp_targets(
    teacher_logits: torch.Tensor,
    teacher_temp: float,
    n_iterations: int = 3,
    n_valid: int | None = None,
    official_padding_rows: bool = False,
) -> torch.Tensor:
    """Sinkhorn-Knopp teacher targets for one level.

    Args:
        teacher_logits: Teacher head logits [R, K] on this rank. Rows ``n_valid:`` are padding (iBOT's
            zero-input ``upperbound`` buffer); with ``n_valid=None`` every row is valid.
        teacher_temp: Teacher temperature T (0.04 -> 0.07 schedule in Franca).
        n_iterations: SK iterations (official: 3).
        n_valid: Number of valid leading rows on this rank.
        official_padding_rows: Include the padding rows in the SK marginals like the official iBOT code
            (defect, reference §9.12). Padding rows are dropped from the output either way.

    Returns:
        Targets [n_valid, K] in fp32; each row sums to 1.
    """
    n_valid = teacher_logits.shape[0] if n_valid is None else n_valid
    if not 0 <= n_valid <= teacher_logits.shape[0]:
        raise ValueError(f"n_valid={n_valid} outside [0, {teacher_logits.shape[0]}]")
    rows = teacher_logits if official_padding_rows else teacher_logits[:n_valid]
    logits = rows.float() / teacher_temp  # [b, K]
    n_prototypes = logits.shape[1]
    # Per-prototype max over all ranks: [K]. -inf on a rank without rows is neutral for the max.
    shift = logits.amax(dim=0) if logits.shape[0] else logits.new_full((n_prototypes,), float("-inf"))
    shift = all_reduce_max(shift)
    q = torch.exp(logits - shift).t()  # [K, b]
    # torch.full launches a fill kernel; torch.tensor(x, device=cuda) would copy and wait for the GPU.
    b_total = all_reduce_sum(torch.full((), float(n_valid), device=logits.device))
    for _ in range(n_iterations):
        q /= all_reduce_sum(q.sum(dim=1, keepdim=True)).clamp_min(_TINY)  # prototype marginals, [K, 1]
        q /= n_prototypes
        q /= q.sum(dim=0, keepdim=True).clamp_min(_TINY)  # sample marginals, [1, b]
        q /= b_total
    q *= b_total
    return q.t()[:n_valid]  # [b, K] -> [n_valid, K]


def sinkhorn_knopp_levels(
    teacher_logits: Sequence[torch.Tensor],
    teacher_temp: float,
    n_iterations: int = 3,
    n_valid: int | None = None,
    official_padding_rows: bool = False,
) -> tuple[torch.Tensor, ...]:
    """:func:`sinkhorn_knopp` applied to each Matryoshka level independently (coarse to fine)."""
    return tuple(
        sinkhorn_knopp_targets(logits, teacher_temp, n_iterations, n_valid, official_padding_rows)
        for logits in teacher_logits
    )
