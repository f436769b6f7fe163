"""Two gloo processes (``torchrun --nproc-per-node 2``) train the same parameters as one process with the
same global batch, under DDP and under FSDP2 (``fully_shard``), on CPU.

Equal data needs a fixed mask-stratification group (``masking.group_size``, the per-rank batch of the
2-rank run) and no KoLeo term: KoLeo finds nearest neighbours within each rank's batch, as in the
official code, so it legitimately differs between 1 x 4 and 2 x 2 images.

Tolerance: gradients agree to float rounding (the sums run in another order), but AdamW divides by
sqrt(v), so a parameter whose gradient is near zero (``mask_token``, frozen-then-thawed prototypes)
turns rounding noise into a visible fraction of an lr-sized step. After 3 steps of lr <= 2e-3, 1e-4
absolute is 5% of one step.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from franca_core.config import PretrainConfig
from franca_core.train.checkpoint import load_checkpoint
from franca_core.train.engine import pretrain
from franca_core.train.rundir import RunResult

STEPS = 3
COMMON = ("runtime.max_steps=3", "masking.group_size=2", "loss.koleo_weight=0", "data.max_short_side=96")
REPO = Path(__file__).resolve().parents[2]


def torchrun(run_dir: Path, overrides: list[str]) -> None:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    command += ["-m", "franca_core.cli", "pretrain", "--config", "debug", "--run-dir", str(run_dir)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [*command, "--no-progress", *overrides],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-4000:]


@pytest.mark.ddp
@pytest.mark.slow
@pytest.mark.parametrize(
    ("mode", "extra"),
    [("ddp", ()), ("fsdp", ()), ("fsdp", ("runtime.activation_checkpointing=true",))],
    ids=["ddp", "fsdp", "fsdp+activation-checkpointing"],
)
def test_two_ranks_match_one_rank_with_the_same_global_batch(
    tmp_path: Path,
    tiny_config: Callable[..., PretrainConfig],
    tiny_args: Callable[..., list[str]],
    mode: str,
    extra: tuple[str, ...],
) -> None:
    single = pretrain(tiny_config(*COMMON), tmp_path / "single")
    pair_args = tiny_args(*COMMON, "data.batch_size_per_rank=2", f"runtime.distributed={mode}", *extra)
    torchrun(tmp_path / "pair", pair_args)
    pair = RunResult.read(tmp_path / "pair" / "result.json")
    assert (pair.world_size, pair.parallel, pair.steps) == (2, mode, STEPS)
    a = load_checkpoint(tmp_path / "single" / single.last_checkpoint)
    b = load_checkpoint(tmp_path / "pair" / pair.last_checkpoint)
    for part in ("student", "teacher"):
        one, two = getattr(a, part), getattr(b, part)
        assert one.keys() == two.keys()
        for key in one:
            torch.testing.assert_close(two[key], one[key], rtol=1e-3, atol=1e-4, msg=f"{part}.{key}")
    assert len(b.rng) == 2 and b.data.samples_seen == a.data.samples_seen == STEPS * 4
    assert abs(pair.final_losses.total - single.final_losses.total) < 1e-4
