"""Typed inputs of the pipeline tasks: one spec per stage, plus tracking and launch settings.

These pydantic models are what a Prefect flow takes as parameters, so they become the deployment
schema shown in the UI and validated by ``prefect deployment run --params``. Paths are strings so
the JSON schema stays simple; every spec is frozen and rejects unknown keys, so a typo in a
parameter file fails before any work starts.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Spec(BaseModel):
    """Base of every parameter model: frozen, no unknown keys."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class TrackingParams(Spec):
    """Where MLflow records the runs."""

    tracking_uri: str | None = Field(
        None,
        description="MLflow tracking URI. None: $MLFLOW_TRACKING_URI, else SQLite + a local artifact folder "
        "under store_dir.",
    )
    store_dir: str | None = Field(
        None, description="Folder of the embedded store (mlflow.db + artifacts/); None: <out_dir>/mlflow."
    )
    experiment: str = Field("franca", description="MLflow experiment name.")
    max_artifact_mb: float | None = Field(
        None,
        ge=0,
        description="Checkpoints larger than this are recorded by sha256 and path instead of uploaded; "
        "None uploads all.",
    )
    registered_model: str = Field("franca-backbone", description="Model-registry name of the final backbone.")


class SlurmParams(Spec):
    """sbatch settings used when ``launcher='slurm'``."""

    partition: str | None = Field(None, description="Partition (-p); None: the cluster default.")
    account: str | None = Field(None, description="Account (-A); None: the user default.")
    time_limit: str = Field("20:00:00", description="Wall-clock limit (-t), e.g. '20:00:00'.")
    gpus_per_node: int = Field(0, ge=0, description="GPUs per node (--gpus-per-node); 0 requests none.")
    cpus_per_task: int | None = Field(None, ge=1, description="CPUs per node task (-c).")
    extra_sbatch: list[str] = Field(
        default_factory=list, description="More '#SBATCH' options, e.g. ['--qos=high', '--mem=0']."
    )
    setup: list[str] = Field(
        default_factory=list, description="Shell lines run before srun, e.g. ['module load cuda/12.4']."
    )
    poll_s: float = Field(10.0, gt=0, description="Seconds between job-state polls.")
    rdzv_port: int = Field(29500, ge=1, le=65535, description="c10d rendezvous port on the first node.")


class LaunchParams(Spec):
    """How a training run is started: torchrun here, or srun torchrun on N SLURM nodes."""

    launcher: Literal["local", "slurm"] = Field("local", description="local: torchrun on this host.")
    nnodes: int = Field(1, ge=1, description="Nodes (SLURM only; local is always one node).")
    nproc_per_node: int = Field(1, ge=1, description="Processes per node (one per GPU).")
    slurm: SlurmParams = Field(default_factory=SlurmParams, description="sbatch settings.")


class DataRef(Spec):
    """A curated data set handed from curation to the stages that read it."""

    shards_dir: str = Field(description="Folder of the kept webdataset shards.")
    manifest: str = Field(description="manifest.parquet of the curation run.")
    manifest_sha256: str = Field(
        description="Content hash of the manifest: the data's identity in lineage tags."
    )
    n_kept: int = Field(0, ge=0, description="Images kept.")


class CurateSpec(Spec):
    """One curation run (``franca curate``)."""

    source: str = Field(
        "embedded",
        description="URL list (.parquet/.csv/.jsonl), an image folder, or 'embedded': the scikit-image "
        "photographs served to img2dataset over a loopback HTTP server.",
    )
    out_dir: str = Field(description="Output folder; rerunning on it resumes.")
    samples_per_shard: int = Field(10_000, ge=1, description="Input rows per shard (the unit of fan-out).")
    dask_address: str | None = Field(None, description="Dask scheduler address; None: a local cluster.")
    dask_workers: int = Field(1, ge=1, description="Workers of the local cluster (threads, in process).")
    overrides: list[str] = Field(
        default_factory=list,
        description="Dotted CurateConfig overrides, e.g. ['integrity.min_side=32', 'nsfw.detector=none'].",
    )


class TrainSpec(Spec):
    """One training run (``franca pretrain`` or ``franca finetune-highres``) in its own run directory."""

    kind: Literal["pretrain", "finetune-highres"] = Field("pretrain", description="Which training CLI.")
    run_dir: str = Field(description="Run directory; rerunning on it resumes from the last good checkpoint.")
    preset: str = Field("debug", description="Preset name or YAML config file.")
    overrides: list[str] = Field(default_factory=list, description="key=value config overrides.")
    max_steps: int | None = Field(None, ge=1, description="Stop after this many steps (None: the schedule).")
    data: DataRef | None = Field(
        None, description="Curated data to train on; None: the preset's data source."
    )
    init_from: str | None = Field(
        None, description="finetune-highres: pretraining run directory or checkpoint to start from."
    )
    highres_stage: int | None = Field(
        None, ge=1, le=2, description="finetune-highres: run only this stage (1: 364 px, 2: 518 px)."
    )
    launch: LaunchParams = Field(default_factory=LaunchParams, description="torchrun / SLURM settings.")


class RasaSpec(Spec):
    """RASA post-training on a backbone (``franca rasa``)."""

    backbone: str = Field(description="Backbone file (a training run's exported teacher).")
    data: str = Field(description="Image data: a shards folder, manifest or image folder.")
    out_dir: str = Field(description="Output folder (head, folded backbone, plots, report.json).")
    data_sha256: str | None = Field(None, description="Manifest hash of the data, for lineage.")
    extra_args: list[str] = Field(default_factory=list, description="More `franca rasa` arguments.")


class EvalSpec(Spec):
    """An evaluation suite on a backbone (``franca eval``)."""

    backbone: str = Field(description="Backbone: a file, NAME=FILE or a hub name.")
    out_dir: str = Field(description="Output folder (results.json, plots/).")
    suite: str = Field("quick", description="Built-in suite name or a suite YAML file.")
    data_sha256: str | None = Field(None, description="Manifest hash of the training data, for lineage.")
    extra_args: list[str] = Field(default_factory=list, description="More `franca eval` arguments.")
