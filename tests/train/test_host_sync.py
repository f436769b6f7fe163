"""The train step never waits for the device, except once per step for the stop/divergence check.

A host synchronisation (``.item()``, ``nonzero``, a tensor made from Python data on the GPU) drains the
GPU's queue: the GPU then idles while Python dispatches the next kernels. On CPU the test records every
dispatched operator and fails on the ones that synchronise on a GPU; on CUDA it runs the real step
under ``torch.cuda.set_sync_debug_mode("error")``, which raises at any synchronising call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from franca_core.config import PretrainConfig
from franca_core.data.collate import MultiCropBatch
from franca_core.train.data import build_batches
from franca_core.train.loop import stop_or_diverged, train_step
from franca_core.train.parallel import DistEnv
from franca_core.train.setup import Run, build_run

# Operators that make the host wait for the device: a scalar read, data-dependent shapes, Python data.
SYNCING = ("aten._local_scalar_dense", "aten.nonzero", "aten.masked_select", "aten.lift_fresh")
VARIANTS = [
    pytest.param(("backbone.drop_path_rate=0.4",), id="sinkhorn-knopp+subset-drop-path"),
    pytest.param(("loss.centering=softmax",), id="softmax-centering"),
]


class OperatorLog(TorchDispatchMode):
    """Records the name of every operator dispatched inside the ``with`` block."""

    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        self.names.append(str(func.overloadpacket._qualified_op_name).replace("::", "."))
        return func(*args, **(kwargs or {}))


def _run_and_batch(cfg: PretrainConfig, run_dir: Path, device: torch.device) -> tuple[Run, MultiCropBatch]:
    run = build_run(cfg, run_dir, DistEnv(rank=0, local_rank=0, world_size=1, device=device))
    batches: Iterator[MultiCropBatch] = build_batches(cfg, run.start.data, 0, pin=False)
    return run, next(batches).to(device)


@pytest.mark.parametrize("extra", VARIANTS)
def test_cpu_step_dispatches_no_syncing_operator(
    tmp_path: Path, tiny_config: Callable[..., PretrainConfig], extra: tuple[str, ...]
) -> None:
    cfg = tiny_config(*extra)
    run, batch = _run_and_batch(cfg, tmp_path, torch.device("cpu"))
    values = run.schedules.at(3)
    run.optimizer.step = lambda *a, **k: None  # type: ignore[method-assign]  # CPU AdamW reads .item()
    with OperatorLog() as log:
        losses, _ = train_step(run, batch, values)
    found = sorted({name for name in log.names if name.startswith(SYNCING)})
    assert not found, f"host-synchronising operators in the train step: {found}"
    assert len(log.names) > 500  # the log really saw the step
    assert stop_or_diverged(False, losses.total.detach()) == (False, False)
    assert stop_or_diverged(True, torch.tensor(float("nan"))) == (True, True)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("extra", VARIANTS)
def test_cuda_step_never_synchronises(
    tmp_path: Path, tiny_config: Callable[..., PretrainConfig], extra: tuple[str, ...]
) -> None:
    cfg = tiny_config("runtime.device=cuda", "runtime.precision=bf16", *extra)
    run, batch = _run_and_batch(cfg, tmp_path, torch.device("cuda"))
    train_step(run, batch, run.schedules.at(2))  # warm-up: kernel selection, optimizer state
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        losses, _ = train_step(run, batch, run.schedules.at(3))
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert stop_or_diverged(False, losses.total.detach()) == (False, False)
