"""Two-process gloo checks: teacher targets computed on rows split over ranks equal one process on all rows.

Covers the all-reduced prototype marginals, the all-reduced valid-row count (uneven splits, iBOT) and the
all-reduced center update (reference §4.1).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

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


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        local = [z[rank_rows(rank)] for z in make_logits()]  # [ROWS[rank], K_l]
        padded = [torch.cat([z, torch.zeros(N_PAD, z.shape[1])]) for z in local]
        result = {
            "sk": [sinkhorn_knopp_targets(z, TEMP, 3, n_valid=ROWS[rank]) for z in padded],
            "sk_official": [
                sinkhorn_knopp_targets(z, TEMP, 3, n_valid=ROWS[rank], official_padding_rows=True)
                for z in padded
            ],
        }
        centering = SoftmaxCentering(LEVELS)
        centering.update(padded, n_valid=ROWS[rank])
        centering.update(padded, n_valid=ROWS[rank])
        result["centers"] = [centering.center(level) for level in range(len(LEVELS))]
        torch.save(result, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.ddp
def test_split_rows_match_single_process(tmp_path: Path) -> None:
    mp.spawn(_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=WORLD, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]
    full = make_logits()

    for level, z in enumerate(full):
        gathered = torch.cat([ranks[r]["sk"][level] for r in range(WORLD)])
        torch.testing.assert_close(gathered, sinkhorn_knopp_targets(z, TEMP, 3))

        # Official defect: every rank's padding rows join the marginals; compare on the same row multiset.
        pad = torch.zeros(N_PAD, z.shape[1])
        blocks = [torch.cat([z[rank_rows(r)], pad]) for r in range(WORLD)]
        single = sinkhorn_knopp_targets(torch.cat(blocks), TEMP, 3, official_padding_rows=True)
        valid = torch.cat([single[: ROWS[0]], single[ROWS[0] + N_PAD : ROWS[0] + N_PAD + ROWS[1]]])
        gathered_official = torch.cat([ranks[r]["sk_official"][level] for r in range(WORLD)])
        torch.testing.assert_close(gathered_official, valid)

    centering = SoftmaxCentering(LEVELS)
    centering.update(full)
    centering.update(full)
    for level in range(len(LEVELS)):
        for r in range(WORLD):
            torch.testing.assert_close(ranks[r]["centers"][level], centering.center(level))
