"""Fixtures shared across test packages: one ``debug``-pretrained backbone per test session.

The learning test, the RASA acceptance test and the evaluation "between floor and ceiling" test all
need a backbone that the ``debug`` preset really trained (500 steps on the scikit-image photographs,
about 5 minutes on one CPU thread). It is trained once per session, on first use, so only the slow
tests that ask for it pay for it. ``FRANCA_TEST_DEBUG_RUN=DIR`` reuses a finished ``franca pretrain
--config debug --run-dir DIR`` instead (handy when iterating on those tests).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from franca_core.config import PRESETS, PretrainConfig
from franca_core.models.vision_transformer import VisionTransformer
from franca_core.train.build import build_objective
from franca_core.train.engine import pretrain
from franca_core.train.rundir import RunResult
from franca_core.train.setup import seed_everything


@dataclass(frozen=True)
class DebugPretrained:
    """A finished ``debug`` run and the means to rebuild its exact initial teacher backbone."""

    cfg: PretrainConfig
    run_dir: Path
    result: RunResult

    @property
    def teacher_file(self) -> Path:
        assert self.result.teacher_safetensors is not None
        return self.run_dir / self.result.teacher_safetensors

    def random_init(self) -> VisionTransformer:
        """The run's teacher backbone before training (same seed, same init)."""
        seed_everything(self.cfg.runtime.seed)
        backbone = build_objective(self.cfg).teacher.backbone
        assert isinstance(backbone, VisionTransformer)
        return backbone.eval()


@pytest.fixture(scope="session")
def debug_pretrained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DebugPretrained]:
    cfg = PRESETS["debug"]()
    reuse = os.environ.get("FRANCA_TEST_DEBUG_RUN")
    if reuse:
        yield DebugPretrained(cfg, Path(reuse), RunResult.read(Path(reuse) / "result.json"))
        return
    run_dir = tmp_path_factory.mktemp("debug_pretrained")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # two busy cores: one thread avoids OpenMP spin-waiting
    try:
        result = pretrain(cfg, run_dir)
    finally:
        torch.set_num_threads(threads)
    assert result.steps == cfg.optim.total_iters
    yield DebugPretrained(cfg, run_dir, result)
