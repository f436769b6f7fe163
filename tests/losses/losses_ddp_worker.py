"""Worker for tests/losses/test_losses_ddp.py, in a plain module so spawned processes can import it.

pytest runs with ``--import-mode=importlib``, so test modules themselves cannot be imported by name in a
child process; the test puts this directory on ``sys.path`` (spawn passes ``sys.path`` to its children).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.distributed as dist

from franca_core.losses import SoftmaxCentering, sinkhorn_knopp_targets

WORLD = 2
LEVELS = (4, 8)
ROWS = (5, 7)  # valid rows per rank: uneven, as with iBOT masked tokens
N_PAD = 3  # zero-input padding rows appended on every rank
TEMP = 0.07


def make_logits() -> list[torch.Tensor]:
    """The full (unsplit) teacher logits of each level, identical in every process."""
    generator = torch.Generator().manual_seed(0)
    return [torch.randn(sum(ROWS), k, generator=generator) for k in LEVELS]


def rank_rows(rank: int) -> slice:
    start = sum(ROWS[:rank])
    return slice(start, start + ROWS[rank])


def run(rank: int, init_file: str, out_dir: str) -> None:
    """Targets and centers from this rank's rows, saved to ``out_dir/rank<r>.pt``."""
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        local = [z[rank_rows(rank)] for z in make_logits()]  # [ROWS[rank], K_l]
        padded = [torch.cat([z, torch.zeros(N_PAD, z.shape[1])]) for z in local]  # [ROWS[rank] + N_PAD, K_l]
        n_valid = ROWS[rank]
        result = {
            "sk": [sinkhorn_knopp_targets(z, TEMP, 3, n_valid=n_valid) for z in padded],
            "sk_official": [
                sinkhorn_knopp_targets(z, TEMP, 3, n_valid=n_valid, official_padding_rows=True)
                for z in padded
            ],
        }
        centering = SoftmaxCentering(LEVELS)
        centering.update(padded, n_valid=n_valid)
        centering.update(padded, n_valid=n_valid)
        result["centers"] = [centering.center(level) for level in range(len(LEVELS))]
        torch.save(result, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()
