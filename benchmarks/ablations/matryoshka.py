"""Matryoshka ablation (issue 9): does nesting keep truncated embeddings useful, and is one head enough?

Trains the same backbone with the same budget and seed under several head objectives (config
``heads.mode``), then measures weighted k-NN top-1 (DINOv2 protocol, k = 20, T = 0.07, teacher CLS
token) on the first m = d, d/2, ..., d/64 coordinates of the embedding and, as the baseline that
separates "ordered dimensions" from "low intrinsic dimension", after PCA to m
(``franca_core.evaluation.knn.matryoshka_curve``). Objectives:

- ``none``: plain DINOv2/iBOT heads, no Matryoshka;
- ``project``: a dedicated head per level behind a learned ``Linear(D -> m)`` (official code);
- ``slice``: a dedicated head per level on the prefix ``z[:m]`` (paper text);
- ``shared``: one head shared by all levels, reading the prefixes (fewest parameters);
- ``slice_project`` (not run by default): ``Linear(m -> m)`` on the prefix (later official commit).

Data: ``../shared/datasets/clothing10`` (train split as an unlabelled image folder for training, as
the labelled k-NN bank; val split as queries). Without it (or with ``--data sample``), training uses
the scikit-image photographs and the k-NN task is "which photograph is this crop from"
(``franca_core.evaluation.sample_data``: bank crops from the left 60 % of each photo, queries from
the rest). A random-init backbone of each seed is evaluated too, as a reference.

Run (from the repository root; key=value overrides go to every run: put them before the list flags
``--objectives``/``--seeds``, or after ``--``)::

    .venv/bin/python benchmarks/ablations/matryoshka.py --out outputs/ablation_matryoshka
    python benchmarks/ablations/matryoshka.py --out outputs/ablation_gpu --device cuda --steps 3000 \\
        data.batch_size_per_rank=64 data.num_workers=8
    .venv/bin/python benchmarks/ablations/matryoshka.py --smoke --out /tmp/ablation_smoke
    .venv/bin/python benchmarks/ablations/matryoshka.py --out outputs/ablation_matryoshka --mlflow  # + MLflow

Writes ``OUT/results.json``, ``OUT/results.md`` (tables) and ``OUT/matryoshka.png`` (accuracy against
dimension, one line per objective, error bars = std over seeds, PCA dashed). Each run has its own
directory ``OUT/runs/<objective>_seed<s>/`` (the engine's run directory plus ``ablation.json``): a
rerun skips runs whose ``ablation.json`` matches, and resumes an interrupted training from its last
checkpoint. Changing ``--steps``, ``--device`` or overrides needs a new ``--out``.

Measured on the 2-core CPU machine (shared with other jobs, 1 thread, ``debug`` preset, batch 16):
0.5 to 0.75 s per training step on clothing10 depending on the load (100 steps: 51 to 76 s);
decoding the 3,409 bank/query images once: 15 s; k-NN evaluation: 5 s per run. A study of 4
objectives x 1 seed x 100 steps took 5.0 min; the default (400 steps, 3 seeds, 4 objectives) is thus
12 x (200 to 300 s + 5 s), 41 to 61 min. ``--smoke`` (4 objectives, 1 seed, 3 steps, sample data):
11 s. On one H100 (``--device cuda``, bf16 autocast, ``data.batch_size_per_rank=64
data.num_workers=12``): 300 steps in 39 s (495 img/s, 0.13 s/step, bound by JPEG decoding), k-NN
evaluation 2 s per run; so 3000 steps x 12 runs is about 80 min.

With D = 96 the last level, d/64, is m = 1: a one-coordinate feature L2-normalised after slicing keeps
only its sign, so k-NN there ties every neighbour and reads near chance for every objective.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import numpy as np
import torch
from matryoshka_report import (
    RANDOM_INIT,
    HeadParams,
    LevelAccuracy,
    RunRecord,
    StudyResults,
    markdown,
    plot,
    summarise,
)
from torch import nn
from torchvision import transforms as T

from franca_core.config import PRESETS, PretrainConfig, load_config
from franca_core.evaluation.datasets import ClassificationSplit, read_image_folder
from franca_core.evaluation.features import BackboneFeatures, FeatureRequest
from franca_core.evaluation.knn import matryoshka_curve, matryoshka_dims
from franca_core.evaluation.sample_data import sample_classification
from franca_core.evaluation.transforms import ClassificationDataset
from franca_core.heads import head_parameter_count
from franca_core.models.pretrained import load_backbone
from franca_core.train.build import build_backbone_from_config
from franca_core.train.engine import pretrain
from franca_core.train.setup import initial_teacher_backbone

Objective = Literal["none", "project", "slice", "shared", "slice_project"]
DEFAULT_OBJECTIVES: tuple[Objective, ...] = ("none", "project", "slice", "shared")
DataChoice = Literal["auto", "clothing10", "sample"]
Device = Literal["auto", "cpu", "cuda"]
DEFAULT_ROOT = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "clothing10"
DEFAULT_STEPS, SMOKE_STEPS = 400, 3
DEFAULT_SEEDS, SMOKE_SEEDS = (0, 1, 2), (0,)
LEVELS = 7  # d, d/2, ..., d/64
RECORD_NAME = "ablation.json"
SMOKE_OVERRIDES = ("data.batch_size_per_rank=4", "crops.n_local=2", "data.num_workers=0")


@dataclass(frozen=True)
class StudySettings:
    """What to run; built from the command line by :func:`parse_args`."""

    out: Path
    objectives: tuple[Objective, ...] = DEFAULT_OBJECTIVES
    seeds: tuple[int, ...] = DEFAULT_SEEDS
    steps: int = DEFAULT_STEPS
    device: Device = "auto"
    data: DataChoice = "auto"
    root: Path = DEFAULT_ROOT
    config: str = "debug"
    smoke: bool = False
    knn_k: int = 20
    eval_batch: int = 64
    overrides: tuple[str, ...] = ()


@dataclass(frozen=True)
class StudyData:
    """Training-source overrides and the labelled k-NN splits (decoded, resized, held in memory)."""

    name: str
    train_overrides: tuple[str, ...]
    bank: ClassificationSplit
    queries: ClassificationSplit


def resolve_device(device: Device) -> torch.device:
    """The engine's rule (``runtime.device``): ``auto`` is CUDA when available."""
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    return torch.device("cuda" if use_cuda else "cpu")


def preload(split: ClassificationSplit, resolution: int) -> ClassificationSplit:
    """Decode each image once and keep its centre square at the eval resize (uint8 in memory).

    The eval transform (Resize(res*256/224), CenterCrop(res)) then gives exactly what it gives on the
    original file: the resize is the identity on an image already of that size.
    """
    side = round(resolution * 256 / 224)
    square = T.Compose([T.Resize(side, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(side)])
    images = [np.asarray(square(split.image(i))) for i in range(len(split))]
    return ClassificationSplit(images, split.labels.tolist(), split.classes, f"{split.fingerprint}:sq{side}")


def _every(split: ClassificationSplit, n: int) -> ClassificationSplit:
    return split.subset(range(0, len(split), n))


def open_data(s: StudySettings, resolution: int) -> StudyData:
    """clothing10 when asked for or found (``auto``), else the scikit-image photographs."""
    if s.data == "clothing10" or (s.data == "auto" and (s.root / "train").is_dir()):
        bank, queries = read_image_folder(s.root, "train"), read_image_folder(s.root, "val")
        if s.smoke:
            bank, queries = _every(bank, 30), _every(queries, 10)
        train: tuple[str, ...] = (
            "data.source=folder",
            f"data.path={s.root / 'train'}",
            "data.max_short_side=160",
        )
        name = s.root.name
    else:
        bank_n, query_n = (4, 2) if s.smoke else (40, 20)
        bank = sample_classification("train", bank_n, size=resolution)
        queries = sample_classification("val", query_n, size=resolution)
        train = ("data.source=sample_images",)
        name = "scikit-image photographs"
    return StudyData(name, train, preload(bank, resolution), preload(queries, resolution))


def run_overrides(s: StudySettings, data: StudyData, objective: Objective, seed: int) -> tuple[str, ...]:
    """Study budget, then the user's overrides, then what defines the run (mode and seeds) last."""
    budget = (
        f"optim.total_iters={s.steps}",
        f"optim.warmup_iters={min(50, s.steps // 10)}",
        f"runtime.checkpoint_every={max(1, s.steps // 4)}",
        "runtime.keep_last=1",
        f"runtime.device={s.device}",
    )
    smoke = SMOKE_OVERRIDES if s.smoke else ()
    run = (f"heads.mode={objective}", f"runtime.seed={seed}", f"data.seed={seed}")
    return (*data.train_overrides, *budget, *smoke, *s.overrides, *run)


def head_params(cfg: PretrainConfig) -> HeadParams:
    """DINO and iBOT head parameters of one network, counted on the meta device."""
    h = cfg.heads
    with torch.device("meta"):
        dim = build_backbone_from_config(cfg, student=False).embed_dim

    def count(prototypes: int, bottleneck: int) -> int:
        return head_parameter_count(h.mode, dim, prototypes, h.n_levels, h.hidden_dim, bottleneck, h.nlayers)

    return HeadParams(
        dino=count(h.dino_prototypes, h.dino_bottleneck), ibot=count(h.ibot_prototypes, h.ibot_bottleneck)
    )


def knn_levels(
    model: nn.Module, data: StudyData, s: StudySettings, resolution: int
) -> tuple[LevelAccuracy, ...]:
    """k-NN top-1 (fraction) on the first m CLS coordinates and on PCA to m, m = d ... d/64."""
    device = resolve_device(s.device)
    source = BackboneFeatures(
        model.to(device), identity="", batch_size=s.eval_batch, device=device, progress=False
    )
    bank = source.extract(ClassificationDataset(data.bank, resolution), FeatureRequest())
    queries = source.extract(ClassificationDataset(data.queries, resolution), FeatureRequest())
    dims = matryoshka_dims(bank.cls.shape[1], LEVELS)
    points = matryoshka_curve(bank.cls, bank.targets, queries.cls, queries.targets, dims, k=s.knn_k)
    return tuple(
        LevelAccuracy(dim=p.dim, slice_top1=p.top1_slice / 100, pca_top1=(p.top1_pca or 0.0) / 100)
        for p in points
    )


def _cached(path: Path, overrides: tuple[str, ...]) -> RunRecord | None:
    if not path.is_file():
        return None
    record = RunRecord.model_validate_json(path.read_text(encoding="utf-8"))
    return record if record.overrides == overrides else None


def _save(path: Path, record: RunRecord) -> RunRecord:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(record.model_dump_json(indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return record


def train_and_evaluate(
    s: StudySettings, data: StudyData, objective: Objective, seed: int, resolution: int
) -> RunRecord:
    """Pretrain one (objective, seed) in its run directory (resuming it), then evaluate its teacher."""
    run_dir = s.out / "runs" / f"{objective}_seed{seed}"
    overrides = run_overrides(s, data, objective, seed)
    cached = _cached(run_dir / RECORD_NAME, overrides)
    if cached is not None:
        print(f"  {objective} seed {seed}: done before, skipped ({run_dir / RECORD_NAME})", flush=True)
        return cached
    cfg = load_config(PretrainConfig, s.config, PRESETS, overrides)
    result = pretrain(cfg, run_dir, progress=not s.smoke)
    start = time.perf_counter()
    levels = knn_levels(load_backbone(run_dir / str(result.teacher_safetensors)), data, s, resolution)
    record = RunRecord(
        objective=objective,
        seed=seed,
        steps=result.steps,
        overrides=overrides,
        head_params=head_params(cfg),
        train_seconds=result.wall_time_s,
        images_per_s=result.images_per_s,
        eval_seconds=time.perf_counter() - start,
        final_loss=result.final_losses.total,
        levels=levels,
    )
    return _save(run_dir / RECORD_NAME, record)


def evaluate_init(s: StudySettings, data: StudyData, seed: int, resolution: int) -> RunRecord:
    """The teacher backbone at step 0 of every run of this seed (its init does not depend on the heads:
    the student backbone is built first, the teacher copies it)."""
    run_dir = s.out / "runs" / f"init_seed{seed}"
    overrides = run_overrides(s, data, "none", seed)
    cached = _cached(run_dir / RECORD_NAME, overrides)
    if cached is not None:
        return cached
    cfg = load_config(PretrainConfig, s.config, PRESETS, overrides)
    backbone = initial_teacher_backbone(cfg)
    start = time.perf_counter()
    levels = knn_levels(backbone, data, s, resolution)
    record = RunRecord(
        objective=RANDOM_INIT,
        seed=seed,
        steps=0,
        overrides=overrides,
        head_params=None,
        train_seconds=0.0,
        images_per_s=0.0,
        eval_seconds=time.perf_counter() - start,
        final_loss=None,
        levels=levels,
    )
    return _save(run_dir / RECORD_NAME, record)


def _describe(record: RunRecord, elapsed: float, eta: float) -> str:
    accuracies = " ".join(f"{level.dim}:{100 * level.slice_top1:.1f}" for level in record.levels)
    return (
        f"  {record.objective} seed {record.seed}: {record.steps} steps, train {record.train_seconds:.0f} s "
        f"({record.images_per_s:.1f} img/s), eval {record.eval_seconds:.0f} s; k-NN top-1 % by m: "
        f"{accuracies}  [{elapsed / 60:.1f} min so far, ~{eta / 60:.1f} min left]"
    )


def run_study(s: StudySettings) -> StudyResults:
    """Every (objective, seed) run (seed by seed, so an interrupted study has all objectives early),
    then the outputs; returns what ``results.json`` holds."""
    probe = load_config(PretrainConfig, s.config, PRESETS, s.overrides)
    resolution = probe.crops.global_size
    started = time.perf_counter()
    data = open_data(s, resolution)
    print(
        f"Matryoshka ablation: {data.name} ({len(data.bank)} bank / {len(data.queries)} queries, decoded "
        f"in {time.perf_counter() - started:.0f} s), {s.config}, {s.steps} steps, objectives "
        f"{' '.join(s.objectives)}, seeds {' '.join(map(str, s.seeds))}, device {resolve_device(s.device)}",
        flush=True,
    )
    inits = [evaluate_init(s, data, seed, resolution) for seed in s.seeds]
    jobs = [(objective, seed) for seed in s.seeds for objective in s.objectives]
    runs: list[RunRecord] = []
    loop_start = time.perf_counter()
    for index, (objective, seed) in enumerate(jobs, start=1):
        print(f"[{index}/{len(jobs)}] {objective}, seed {seed}", flush=True)
        runs.append(train_and_evaluate(s, data, objective, seed, resolution))
        elapsed = time.perf_counter() - loop_start
        print(_describe(runs[-1], elapsed, elapsed / index * (len(jobs) - index)), flush=True)
    summaries = [summarise(o, [r for r in runs if r.objective == o]) for o in s.objectives]
    results = StudyResults(
        data=data.name,
        n_bank=len(data.bank),
        n_queries=len(data.queries),
        config=s.config,
        embed_dim=runs[0].levels[0].dim,
        steps=s.steps,
        device=str(resolve_device(s.device)),
        knn_k=s.knn_k,
        overrides=s.overrides,
        runs=(*runs, *inits),
        summaries=(*summaries, summarise(RANDOM_INIT, inits)),
    )
    write_outputs(results, s.out)
    print(f"done in {(time.perf_counter() - started) / 60:.1f} min: {s.out}/results.md", flush=True)
    return results


def write_outputs(results: StudyResults, out: Path) -> None:
    """``results.json``, ``results.md`` and ``matryoshka.png`` under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(results.model_dump_json(indent=2) + "\n", encoding="utf-8")
    (out / "results.md").write_text(markdown(results), encoding="utf-8")
    plot(results, out / "matryoshka.png")


@dataclass(frozen=True)
class Tracking:
    """Where to log the finished study (``enabled=False``: nowhere)."""

    enabled: bool
    uri: str | None
    experiment: str


def parse_args(argv: Sequence[str] | None = None) -> tuple[StudySettings, int | None, Tracking]:
    """Settings, the thread count (None: 1 on CPU, torch's default on CUDA) and MLflow logging."""
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("outputs/ablation_matryoshka"))
    p.add_argument("--objectives", nargs="+", choices=get_args(Objective), default=list(DEFAULT_OBJECTIVES))
    p.add_argument("--seeds", nargs="+", type=int, help=f"default {DEFAULT_SEEDS}; --smoke: {SMOKE_SEEDS}")
    p.add_argument("--steps", type=int, help=f"default {DEFAULT_STEPS}; --smoke: {SMOKE_STEPS}")
    p.add_argument("--device", choices=get_args(Device), default="auto", help="auto: CUDA when available")
    p.add_argument("--data", choices=get_args(DataChoice), default="auto", help="auto: clothing10 if found")
    p.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="clothing10 folder (train/, val/)")
    p.add_argument("--config", default="debug", help="preset name or YAML file of PretrainConfig")
    p.add_argument("--smoke", action="store_true", help="a few steps on a few images: checks it runs")
    p.add_argument("--knn-k", type=int, default=20)
    p.add_argument("--eval-batch", type=int, default=64)
    p.add_argument("--threads", type=int, help="torch threads (default: 1 on CPU)")
    p.add_argument("--mlflow", action="store_true", help="log params, metrics and outputs to MLflow")
    p.add_argument("--mlflow-uri", help="tracking URI (default: $MLFLOW_TRACKING_URI, else OUT/mlflow)")
    p.add_argument("--mlflow-experiment", default="matryoshka-ablation")
    p.add_argument("overrides", nargs="*", help="key=value config overrides applied to every run")
    a = p.parse_args(argv)
    a.mlflow = a.mlflow or a.mlflow_uri is not None
    settings = StudySettings(
        out=a.out,
        objectives=tuple(dict.fromkeys(a.objectives)),
        seeds=tuple(dict.fromkeys(a.seeds or (SMOKE_SEEDS if a.smoke else DEFAULT_SEEDS))),
        steps=a.steps or (SMOKE_STEPS if a.smoke else DEFAULT_STEPS),
        device=a.device,
        data=a.data,
        root=a.root,
        config=a.config,
        smoke=a.smoke,
        knn_k=a.knn_k,
        eval_batch=a.eval_batch,
        overrides=tuple(a.overrides),
    )
    return settings, a.threads, Tracking(a.mlflow, a.mlflow_uri, a.mlflow_experiment)


def main(argv: Sequence[str] | None = None) -> StudyResults:
    settings, threads, tracking = parse_args(argv)
    if settings.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda, but CUDA is not available here")
    if threads is not None or resolve_device(settings.device).type == "cpu":
        torch.set_num_threads(threads or 1)
    results = run_study(settings)
    if tracking.enabled:
        from matryoshka_mlflow import log_study  # MLflow only when asked (the `pipeline` extra)

        run_id = log_study(results, settings.out, tracking.uri, tracking.experiment)
        print(f"logged to MLflow run {run_id} (experiment {tracking.experiment})", flush=True)
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
