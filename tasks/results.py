"""Small typed results the tasks return: paths, hashes and headline numbers, never objects.

Every stage returns a ``StageOutput``: enough for ``record_stage`` to put the stage in MLflow (its
config, step-metric file, checkpoints, artifact files, summary numbers) and for the next stage to
find its inputs. Results are persisted by Prefect next to the outputs, so a rerun of the pipeline
gets them back from the cache instead of recomputing the stage.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Generic, TypeVar

from pydantic import Field

from tasks.specs import DataRef, Spec


class StageOutput(Spec):
    """What any stage produced."""

    stage: str = Field(description="curate, pretrain, finetune-highres, rasa or eval.")
    key: str = Field(description="Hash of the stage's inputs: its identity in MLflow (franca.stage_key).")
    out_dir: str = Field(description="The stage's output or run directory.")
    config: dict[str, Any] = Field(default_factory=dict, description="Full stage config (logged as params).")
    summary: dict[str, float] = Field(
        default_factory=dict, description="Headline numbers (logged as metrics)."
    )
    metrics_file: str | None = Field(None, description="Step metrics (JSONL) to forward, if any.")
    checkpoints: bool = Field(False, description="Whether out_dir/checkpoints holds training checkpoints.")
    artifacts: dict[str, list[str]] = Field(
        default_factory=dict, description="Artifact folder -> files or folders to log there."
    )
    data_sha256: str | None = Field(None, description="Manifest hash of the data the stage read or wrote.")
    backbone: str | None = Field(None, description="Backbone file the stage produced, if any.")
    prefect: dict[str, str] = Field(
        default_factory=dict, description="Prefect ids of the run that produced it."
    )


O = TypeVar("O", bound=StageOutput)


class CurateOutput(StageOutput):
    """Curation: the data handed downstream."""

    data: DataRef


class TrainOutput(StageOutput):
    """A training run: its steps and exported teacher backbone."""

    steps: int = 0
    status: str = "completed"


class RasaOutput(StageOutput):
    """RASA: the folded backbone and the before/after diagnostics."""

    report: dict[str, Any] = Field(default_factory=dict)


class EvalOutput(StageOutput):
    """Evaluation: headline metrics per evaluator."""

    results: dict[str, dict[str, float]] = Field(default_factory=dict)


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def stage_key(stage: str, spec: Spec, *paths: str) -> str:
    """Identity of a stage run: its name, its spec, and the absolute form of its output paths."""
    payload = json.dumps(
        {
            "stage": stage,
            "spec": spec.model_dump(mode="json"),
            "paths": [str(Path(p).resolve()) for p in paths],
        },
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from a file, with the path in the error when it is missing or broken."""
    try:
        value = json.loads(path.read_text())
    except FileNotFoundError as err:
        raise FileNotFoundError(f"expected output {path} was not written") from err
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from err
    if not isinstance(value, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return value


class Recorded(Spec, Generic[O]):
    """A stage's output and the MLflow run that records it."""

    output: O
    mlflow_run_id: str
