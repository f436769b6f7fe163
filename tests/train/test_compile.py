"""``runtime.compile`` on CPU (inductor's C++ backend): compiled runs train like eager ones.

``blocks`` compiles every transformer block; ``all`` also the Matryoshka heads and the student's loss
terms, whose inputs change shape every step (the number of masked patches): after the first steps that
must not trigger further compilations. The CUDA counterpart is in ``test_cuda_train.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from torch._dynamo.utils import counters

from franca_core.config import PretrainConfig
from franca_core.train.checkpoint import load_checkpoint
from franca_core.train.engine import pretrain
from franca_core.train.rundir import RunResult

pytestmark = pytest.mark.slow
FP32 = ("runtime.precision=fp32", "runtime.checkpoint_every=3")


def _losses(result: RunResult) -> list[float]:
    losses = result.final_losses
    return [losses.total, losses.dino, losses.ibot, losses.koleo]


def test_compiled_heads_and_losses_train_like_eager(
    tmp_path: Path, tiny_config: Callable[..., PretrainConfig]
) -> None:
    eager = pretrain(tiny_config("runtime.max_steps=3", *FP32), tmp_path / "eager")
    compiled = pretrain(tiny_config("runtime.max_steps=3", "runtime.compile=all", *FP32), tmp_path / "all")
    for a, b in zip(_losses(compiled), _losses(eager), strict=True):
        assert a == pytest.approx(b, rel=1e-4, abs=1e-5)
    a = load_checkpoint(tmp_path / "all" / compiled.last_checkpoint)
    b = load_checkpoint(tmp_path / "eager" / eager.last_checkpoint)
    assert a.student.keys() == b.student.keys() and a.teacher.keys() == b.teacher.keys()

    graphs = counters["stats"]["unique_graphs"]
    # Five more steps (a resume in this process): new mask counts, no new compilation.
    longer = pretrain(tiny_config("runtime.max_steps=8", "runtime.compile=all", *FP32), tmp_path / "all")
    assert longer.steps == 8 and counters["stats"]["unique_graphs"] == graphs


def test_boolean_compile_flags_still_read(tiny_config: Callable[..., PretrainConfig]) -> None:
    assert tiny_config("runtime.compile=true").runtime.compile == "blocks"
    assert tiny_config("runtime.compile=false").runtime.compile == "off"
    assert PretrainConfig.model_validate({"runtime": {"compile": True}}).runtime.compile == "blocks"
