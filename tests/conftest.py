"""Fixtures shared across test packages: one ``debug``-pretrained backbone per test session.

The learning test, the RASA acceptance test and the evaluation "between floor and ceiling" test all
need a backbone that the ``debug`` preset really trained (500 steps on the scikit-image photographs,
about 5 minutes on one CPU thread). It is trained once per session, on first use, so only the slow
tests that ask for it pay for it. ``FRANCA_TEST_DEBUG_RUN=DIR`` reuses a finished ``franca pretrain
--config debug --run-dir DIR`` instead (handy when iterating on those tests).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from franca_core.config import PRESETS, PretrainConfig, apply_overrides
from franca_core.models.vision_transformer import VisionTransformer
from franca_core.train.engine import pretrain
from franca_core.train.rundir import RunResult
from franca_core.train.setup import initial_teacher_backbone

# Overrides of the debug preset giving a 2-block, 32-wide ViT on 42 px crops: milliseconds per step.
TINY = (
    "backbone.embed_dim=32",
    "backbone.depth=2",
    "backbone.num_heads=2",
    "heads.n_levels=2",
    "heads.hidden_dim=32",
    "heads.dino_bottleneck=16",
    "heads.ibot_bottleneck=16",
    "heads.dino_prototypes=64",
    "heads.ibot_prototypes=64",
    "crops.global_size=42",
    "crops.local_size=28",
    "crops.n_local=2",
    "data.batch_size_per_rank=4",
    "data.num_workers=0",
    "data.max_short_side=64",
    "optim.total_iters=20",
    "optim.warmup_iters=2",
    "optim.freeze_last_layer_iters=2",
    "teacher.temp_warmup_iters=5",
    "runtime.checkpoint_every=2",
    "runtime.log_every=1",
)


def tiny_overrides(*extra: str) -> list[str]:
    """The tiny-config overrides, then ``extra``, as ``key=value`` strings."""
    return [*TINY, *extra]


@pytest.fixture(scope="session")
def tiny_config() -> Callable[..., PretrainConfig]:
    """``tiny_config(*extra)``: the debug preset with the tiny overrides and ``extra`` applied."""

    def make(*extra: str) -> PretrainConfig:
        return apply_overrides(PRESETS["debug"](), tiny_overrides(*extra))

    return make


@pytest.fixture(scope="session")
def tiny_args() -> Callable[..., list[str]]:
    """:func:`tiny_overrides`: the tiny-config overrides as command-line ``key=value`` pairs."""
    return tiny_overrides


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
        return initial_teacher_backbone(self.cfg).eval()


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
