"""Two-process gloo checks: teacher targets computed on rows split over ranks equal one process on all rows.

Covers the all-reduced prototype marginals, the all-reduced valid-row count (uneven splits, iBOT) and the
all-reduced center update (reference §4.1). The worker lives in ``losses_ddp_worker.py``.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from franca_core.losses import SoftmaxCentering, sinkhorn_knopp_targets


@pytest.mark.ddp
def test_split_rows_match_single_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    worker = importlib.import_module("losses_ddp_worker")
    mp.spawn(worker.run, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=worker.WORLD, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(worker.WORLD)]
    full = worker.make_logits()
    rows, n_pad, temp = worker.ROWS, worker.N_PAD, worker.TEMP

    for level, z in enumerate(full):
        gathered = torch.cat([rank["sk"][level] for rank in ranks])
        torch.testing.assert_close(gathered, sinkhorn_knopp_targets(z, temp, 3))

        # Official defect: every rank's padding rows join the marginals; compare on the same row multiset.
        pad = torch.zeros(n_pad, z.shape[1])
        blocks = [torch.cat([z[worker.rank_rows(r)], pad]) for r in range(worker.WORLD)]
        single = sinkhorn_knopp_targets(torch.cat(blocks), temp, 3, official_padding_rows=True)
        valid = torch.cat([single[: rows[0]], single[rows[0] + n_pad : rows[0] + n_pad + rows[1]]])
        gathered_official = torch.cat([rank["sk_official"][level] for rank in ranks])
        torch.testing.assert_close(gathered_official, valid)

    centering = SoftmaxCentering(worker.LEVELS)
    centering.update(full)
    centering.update(full)
    for level in range(len(worker.LEVELS)):
        for rank in ranks:
            torch.testing.assert_close(rank["centers"][level], centering.center(level))
