"""prefect.yaml and deployments/*.json: every deployment imports, its parameters fit its flow's schema."""

from __future__ import annotations

import argparse
import importlib
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect import Flow

from flows.cli import add_arguments, build_params
from flows.params import PipelineParams
from flows.pipeline import end_to_end

# the harness's Prefect server emits SQLAlchemy deprecation warnings by the hundred
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
REPO = Path(__file__).resolve().parents[2]
EXPECTED = {
    "end-to-end/default",
    "curate/default",
    "pretrain/default",
    "finetune-highres/default",
    "rasa/default",
    "eval/default",
}


def _flow(entrypoint: str) -> Flow[Any, Any]:
    path, name = entrypoint.split(":")
    module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
    flow = getattr(module, name)
    assert isinstance(flow, Flow)
    return flow


def test_prefect_yaml_deployments_match_their_flows() -> None:
    config = yaml.safe_load((REPO / "prefect.yaml").read_text())
    names = set()
    for deployment in config["deployments"]:
        flow = _flow(deployment["entrypoint"])
        names.add(f"{flow.name}/{deployment['name']}")
        flow.validate_parameters(deployment["parameters"])  # raises on a wrong or unknown key
        assert deployment["work_pool"]["name"] == "franca-local"
    assert names == EXPECTED
    assert "set_working_directory" in json.dumps(config["pull"])


@pytest.mark.parametrize("path", sorted((REPO / "deployments").glob("*.json")), ids=lambda p: p.name)
def test_parameter_files_validate(path: Path) -> None:
    params = end_to_end.validate_parameters(json.loads(path.read_text()))["params"]
    assert isinstance(params, PipelineParams)


def test_demo_command_builds_its_parameters(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    tiny = build_params(parser.parse_args(["--out", str(tmp_path), "--tiny", "--steps", "3", "--finetune"]))
    assert tiny.out_dir == str(tmp_path) and tiny.pretrain.max_steps == 3 and tiny.finetune.enabled
    demo = build_params(parser.parse_args(["--out", str(tmp_path)]))
    assert demo.curate.source == "embedded" and demo.rasa.enabled and not demo.finetune.enabled
