"""CUDA checks of the engine (skipped without a GPU): bf16 training, FSDP2 on NCCL, compiled blocks.

CI has no GPU; these run on the device machine. A single GPU cannot host two NCCL ranks, so FSDP2 is
exercised with ``torchrun --nproc-per-node 1`` and an explicit ``runtime.distributed=fsdp`` (the
2-rank equality with one process is tested on gloo in ``test_distributed.py``).
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from franca_core.config import PretrainConfig
from franca_core.models.pretrained import load_backbone
from franca_core.train.engine import pretrain
from franca_core.train.rundir import RunResult

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]
REPO = Path(__file__).resolve().parents[2]
STEPS = ("runtime.max_steps=4", "runtime.device=cuda")


def _losses(result: RunResult) -> list[float]:
    losses = result.final_losses
    return [losses.total, losses.dino, losses.ibot]


def test_bf16_training_on_cuda_matches_fp32_closely(
    tmp_path: Path, tiny_config: Callable[..., PretrainConfig]
) -> None:
    bf16 = pretrain(tiny_config(*STEPS, "runtime.precision=bf16"), tmp_path / "bf16")
    fp32 = pretrain(tiny_config(*STEPS, "runtime.precision=fp32"), tmp_path / "fp32")
    assert all(math.isfinite(v) for v in _losses(bf16))
    for a, b in zip(_losses(bf16), _losses(fp32)):
        assert abs(a - b) <= 0.05 * abs(b) + 1e-3, (_losses(bf16), _losses(fp32))
    assert bf16.teacher_safetensors is not None
    backbone = load_backbone(tmp_path / "bf16" / bf16.teacher_safetensors)  # exported weights load on CPU
    out = backbone.forward_features(torch.randn(1, 3, 42, 42)).x_norm_clstoken
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("scope", ["blocks", "all"])
def test_compiled_training_on_cuda_matches_eager(
    tmp_path: Path, tiny_config: Callable[..., PretrainConfig], scope: str
) -> None:
    eager = pretrain(tiny_config(*STEPS, "runtime.precision=fp32"), tmp_path / "eager")
    cfg = tiny_config(*STEPS, "runtime.precision=fp32", f"runtime.compile={scope}")
    compiled = pretrain(cfg, tmp_path / "c")
    for a, b in zip(_losses(compiled), _losses(eager)):
        assert abs(a - b) <= 1e-3 * abs(b) + 1e-4


@pytest.mark.ddp
def test_fsdp2_on_nccl_matches_a_plain_run(
    tmp_path: Path, tiny_config: Callable[..., PretrainConfig], tiny_args: Callable[..., list[str]]
) -> None:
    plain = pretrain(tiny_config(*STEPS, "runtime.precision=fp32"), tmp_path / "plain")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "1"]
    command += ["-m", "franca_core.cli", "pretrain", "--config", "debug", "--run-dir", str(tmp_path / "fsdp")]
    overrides = tiny_args(*STEPS, "runtime.precision=fp32", "runtime.distributed=fsdp")
    done = subprocess.run(
        [*command, "--no-progress", *overrides],
        cwd=REPO,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    sharded = RunResult.read(tmp_path / "fsdp" / "result.json")
    assert sharded.parallel == "fsdp" and sharded.world_size == 1
    for a, b in zip(_losses(sharded), _losses(plain)):
        assert abs(a - b) <= 1e-3 * abs(b) + 1e-4
