"""Stage task bodies called directly: evaluation on the label oracle, RASA's data preparation."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest
from PIL import Image

from tasks.evaluate import evaluate, headline
from tasks.rasa import rasa_data, unpack_images
from tasks.specs import EvalSpec, RasaSpec


def _shard(path: Path, n: int) -> None:
    with tarfile.open(path, "w") as archive:
        for i in range(n):
            buffer = io.BytesIO()
            Image.new("RGB", (8, 8), (i, 0, 0)).save(buffer, "PNG")
            for name, payload in ((f"{i:05d}.png", buffer.getvalue()), (f"{i:05d}.json", b"{}")):
                info = tarfile.TarInfo(name)
                info.size = len(payload)
                archive.addfile(info, io.BytesIO(payload))


def test_rasa_reads_curated_shards_as_a_folder(tmp_path: Path) -> None:
    shards = tmp_path / "shards"
    shards.mkdir()
    _shard(shards / "00000.tar", 3)
    _shard(shards / "00001.tar", 2)
    spec = RasaSpec(backbone="b.safetensors", data=str(shards), out_dir=str(tmp_path / "rasa"))
    folder = Path(rasa_data(spec))
    assert sorted(p.name for p in folder.glob("*.png"))[:2] == ["00000_00000.png", "00000_00001.png"]
    assert len(list(folder.glob("*.png"))) == 5
    assert unpack_images(shards, folder) == folder  # done once
    assert rasa_data(spec.model_copy(update={"data": "sample"})) == "sample"


def test_headline_keeps_finite_numbers() -> None:
    results = {"evaluators": {"knn": {"metrics": {"top1": 50.0, "bad": None, "curve": [1, 2], "n": 3}}}}
    assert headline(results) == {"knn": {"top1": 50.0, "n": 3.0}}


@pytest.mark.slow
def test_evaluate_task_runs_the_cli(tmp_path: Path) -> None:
    spec = EvalSpec(backbone="oracle", out_dir=str(tmp_path / "eval"), extra_args=["--only", "knn"])
    output = evaluate.fn(spec)
    assert output.results["knn"]["best_top1"] > 90  # the label oracle is (nearly) perfect
    assert output.config["protocol"]["knn"]["kind"] == "knn"
    assert Path(output.artifacts["eval"][0]).name == "results.json"
