"""``pretrain(cfg, run_dir)``: one stage from start (or from its last good checkpoint) to ``result.json``.

This is what ``franca pretrain`` and ``franca finetune-highres`` call in every torchrun process::

    from franca_core.config import PRESETS, PretrainConfig, load_config
    cfg = load_config(PretrainConfig, "debug", PRESETS, ["runtime.max_steps=20"])
    result = pretrain(cfg, Path("runs/debug"))          # RunResult, also in runs/debug/result.json

Calling it again on the same directory resumes; on a finished run it only rewrites the export and
``result.json``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path

from franca_core import distributed
from franca_core.config.pretrain import PretrainConfig
from franca_core.tracking import FanOutSink, JsonlSink, MetricSink, NullSink
from franca_core.train.checkpoint import latest_good_checkpoint, meta_path
from franca_core.train.data import build_batches, check_data
from franca_core.train.loop import LoopOutcome, run_loop
from franca_core.train.parallel import DistEnv, full_model_state, init_distributed, shutdown
from franca_core.train.rundir import FinalLosses, RunDir, RunResult
from franca_core.train.setup import Run, build_run
from franca_core.train.weights import export_teacher

log = logging.getLogger(__name__)


def pretrain(
    cfg: PretrainConfig, run_dir: Path, *, sink: MetricSink | None = None, progress: bool = False
) -> RunResult:
    """Train one stage in this process (one torchrun rank); returns its ``result.json`` contents."""
    env = init_distributed(cfg.runtime.device)
    try:
        return _pretrain(cfg, RunDir(Path(run_dir)), env, sink or NullSink(), progress)
    finally:
        shutdown()


def _open_sink(run: Run, rd: RunDir, extra: MetricSink) -> MetricSink:
    if not run.env.is_main:
        return NullSink()
    sink = FanOutSink([JsonlSink(rd.metrics_path, resume_step=run.start.step), extra])
    params = {f"derived.{k}": v for k, v in asdict(run.derived).items()}
    params.update(config=run.cfg.name, parallel=run.mode, resumed_from_step=run.start.step)
    sink.log_params(params)
    return sink


def _pretrain(
    cfg: PretrainConfig, rd: RunDir, env: DistEnv, extra_sink: MetricSink, progress: bool
) -> RunResult:
    rd.check_config(cfg)
    check_data(cfg)
    run = build_run(cfg, rd.root, env)
    d = run.derived
    if env.is_main:
        rd.write_config(cfg, d)
        log.info(
            "%s: %d rank(s), %s, global batch %d, lr %.3g (base %.3g, %s), steps %d -> %d",
            cfg.name, d.world_size, run.mode, d.global_batch, d.lr, cfg.optim.base_lr,
            cfg.optim.scaling_rule, run.start.step, d.max_steps,
        )  # fmt: skip
    sink = _open_sink(run, rd, extra_sink)
    try:
        batches = build_batches(cfg, run.start.data, env.rank, pin=env.device.type == "cuda")
        outcome = run_loop(run, batches, rd.root, sink, progress)
        return _finish(run, rd, outcome)
    finally:
        sink.close()


def _last_losses(outcome: LoopOutcome, rd: RunDir) -> tuple[FinalLosses, str]:
    """Final losses and checkpoint name: from this launch, else from the newest checkpoint's meta."""
    if outcome.last_metrics is not None and outcome.last_checkpoint is not None:
        m = outcome.last_metrics
        return FinalLosses(m.loss, m.dino, m.ibot, m.koleo), outcome.last_checkpoint.file
    checkpoint = latest_good_checkpoint(rd.root)
    if checkpoint is None:
        return FinalLosses(float("nan"), float("nan"), float("nan"), float("nan")), ""
    losses = json.loads(meta_path(checkpoint).read_text()).get("losses", {})
    values = [float(losses.get(k, float("nan"))) for k in ("total", "dino", "ibot", "koleo")]
    return FinalLosses(*values), checkpoint.name


def _finish(run: Run, rd: RunDir, outcome: LoopOutcome) -> RunResult:
    """Export the teacher backbone and write ``result.json`` (rank 0); every rank returns the result."""
    teacher = full_model_state(run.objective.teacher)  # collective under FSDP2
    if run.env.is_main:
        exported = export_teacher(run.cfg, teacher, rd.export_dir)
        losses, checkpoint = _last_losses(outcome, rd)
        steps_now = outcome.step - run.start.step
        seconds_now = max(outcome.wall_time_s - run.start.wall_time_s, 1e-9)
        result = RunResult(
            status="stopped" if outcome.stopped else "completed",
            config_name=run.cfg.name,
            steps=outcome.step,
            wall_time_s=outcome.wall_time_s,
            images_per_s=steps_now * run.derived.global_batch / seconds_now,
            world_size=run.env.world_size,
            parallel=run.mode,
            final_losses=losses,
            last_checkpoint=str(Path("checkpoints") / checkpoint) if checkpoint else "",
            teacher_safetensors=str(exported.safetensors.relative_to(rd.root)),
            teacher_franca_pth=str(exported.franca_pth.relative_to(rd.root)),
        )
        rd.write_result(result)
    distributed.barrier()
    return RunResult.read(rd.result_path)
