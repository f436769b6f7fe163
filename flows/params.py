"""Parameters of the end-to-end flow: one block per stage, each a few typed fields.

The stage flows take the task specs (``tasks.specs``) directly; the end-to-end flow takes
``PipelineParams`` and derives every stage's spec from it, wiring each stage's output into the next
(curated data -> pretraining -> high-resolution finetuning -> RASA -> evaluation). ``tiny()`` and
``demo()`` are the CPU settings of the tests and of ``franca demo``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from pydantic import Field

from tasks.specs import CurateSpec, DataRef, EvalSpec, LaunchParams, RasaSpec, Spec, TrackingParams, TrainSpec


class CurateSettings(Spec):
    """Curation settings of a pipeline run."""

    source: str = Field("embedded", description="URL list, image folder, or 'embedded' (sample photographs).")
    samples_per_shard: int = Field(10_000, ge=1, description="Input rows per shard.")
    dask_address: str | None = Field(None, description="Dask scheduler; None: a local cluster.")
    overrides: list[str] = Field(default_factory=list, description="Dotted CurateConfig overrides.")


class TrainSettings(Spec):
    """Settings of a training stage."""

    enabled: bool = Field(True, description="Run this stage (pretraining always runs).")
    preset: str = Field("debug", description="Preset name or YAML config (pretraining only).")
    overrides: list[str] = Field(default_factory=list, description="key=value config overrides.")
    max_steps: int | None = Field(None, ge=1, description="Stop after this many steps (None: the schedule).")
    launch: LaunchParams = Field(default_factory=LaunchParams, description="torchrun / SLURM settings.")


class RasaSettings(Spec):
    """RASA settings."""

    enabled: bool = Field(True, description="Run RASA on the trained backbone.")
    extra_args: list[str] = Field(default_factory=list, description="More `franca rasa` arguments.")


class EvalSettings(Spec):
    """Evaluation settings."""

    suite: str = Field("quick", description="Suite name or YAML file.")
    extra_args: list[str] = Field(default_factory=list, description="More `franca eval` arguments.")


class PipelineParams(Spec):
    """The whole pipeline: curate -> pretrain -> finetune-highres -> RASA -> eval, tracked in MLflow."""

    out_dir: str = Field("outputs/pipeline", description="Every stage writes under this folder.")
    curate: CurateSettings = Field(default_factory=CurateSettings)
    pretrain: TrainSettings = Field(default_factory=TrainSettings)
    finetune: TrainSettings = Field(
        default_factory=lambda: TrainSettings(enabled=False), description="High-resolution finetuning."
    )
    rasa: RasaSettings = Field(default_factory=RasaSettings)
    eval: EvalSettings = Field(default_factory=EvalSettings)
    tracking: TrackingParams = Field(default_factory=TrackingParams)

    def key(self) -> str:
        """Identity of this pipeline run (parameters + absolute output folder): reruns share it."""
        text = self.model_dump_json() + str(Path(self.out_dir).resolve())
        return hashlib.sha256(text.encode()).hexdigest()[:20]

    def path(self, name: str) -> str:
        return str(Path(self.out_dir) / name)

    def curate_spec(self) -> CurateSpec:
        c = self.curate
        return CurateSpec(
            source=c.source,
            out_dir=self.path("curate"),
            samples_per_shard=c.samples_per_shard,
            dask_address=c.dask_address,
            overrides=c.overrides,
        )

    def pretrain_spec(self, data: DataRef) -> TrainSpec:
        p = self.pretrain
        return TrainSpec(
            kind="pretrain",
            run_dir=self.path("pretrain"),
            preset=p.preset,
            overrides=p.overrides,
            max_steps=p.max_steps,
            data=data,
            launch=p.launch,
        )

    def finetune_spec(self, data: DataRef, pretrain_dir: str) -> TrainSpec:
        f = self.finetune
        return TrainSpec(
            kind="finetune-highres",
            run_dir=self.path("finetune"),
            init_from=pretrain_dir,
            overrides=f.overrides,
            max_steps=f.max_steps,
            data=data,
            launch=f.launch,
        )

    def rasa_spec(self, backbone: str, data: DataRef) -> RasaSpec:
        return RasaSpec(
            backbone=backbone,
            data=data.shards_dir,
            out_dir=self.path("rasa"),
            data_sha256=data.manifest_sha256,
            extra_args=self.rasa.extra_args,
        )

    def eval_spec(self, backbone: str, data: DataRef) -> EvalSpec:
        e = self.eval
        return EvalSpec(
            backbone=backbone,
            out_dir=self.path("eval"),
            suite=e.suite,
            data_sha256=data.manifest_sha256,
            extra_args=e.extra_args,
        )


def tiny(out_dir: str, pretrain_steps: int = 4) -> PipelineParams:
    """The smallest meaningful run (tests): a few steps of a shrunken debug model, quick RASA and eval."""
    small = [
        "data.batch_size_per_rank=4",
        "crops.global_size=56",
        "crops.local_size=28",
        "crops.n_local=2",
        "runtime.checkpoint_every=2",
        "runtime.log_every=1",
    ]
    return PipelineParams(
        out_dir=out_dir,
        curate=CurateSettings(overrides=["nsfw.detector=none"]),
        pretrain=TrainSettings(overrides=small, max_steps=pretrain_steps),
        rasa=RasaSettings(extra_args=["--preset", "debug", "--rounds", "1", "--no-knn", "--no-hummingbird"]),
        eval=EvalSettings(extra_args=["--only", "knn", "--batch-size", "8"]),
    )


def demo(out_dir: str, pretrain_steps: int = 60) -> PipelineParams:
    """``franca demo``: the debug preset for minutes of CPU, real NSFW check, RASA and the quick suite."""
    return PipelineParams(
        out_dir=out_dir,
        pretrain=TrainSettings(max_steps=pretrain_steps, overrides=["runtime.checkpoint_every=20"]),
        rasa=RasaSettings(extra_args=["--preset", "debug"]),
    )
