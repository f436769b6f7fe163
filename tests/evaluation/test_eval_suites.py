"""Suite configs: built-ins validate, YAML round-trips, typos and dangling references fail loudly."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from franca_core.evaluation.features import FeatureRequest
from franca_core.evaluation.oracle import LabelOracleFeatures
from franca_core.evaluation.registry import EVALUATORS
from franca_core.evaluation.runner import run_suite
from franca_core.evaluation.suites import BUILTIN_SUITES, SuiteConfig, load_suite, paper_suite, quick_suite


@pytest.mark.parametrize("name", sorted(BUILTIN_SUITES))
def test_builtin_suites_validate_and_roundtrip(name: str, tmp_path: Path) -> None:
    suite = load_suite(name)
    assert {e.kind for e in suite.evaluators} <= set(EVALUATORS)
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(suite.model_dump(mode="json")))
    assert load_suite(str(path)) == suite


def test_quick_suite_covers_every_evaluator() -> None:
    assert {e.kind for e in quick_suite().evaluators} == set(EVALUATORS)


def test_configs_are_strict_and_frozen() -> None:
    doc = quick_suite().model_dump(mode="json")
    doc["evaluators"][0]["temprature"] = 0.1  # typo
    with pytest.raises(ValidationError, match="temprature"):
        SuiteConfig.model_validate(doc)
    doc = quick_suite().model_dump(mode="json")
    doc["evaluators"][0]["data"] = "nope"
    with pytest.raises(ValidationError, match="undefined datasets \\['nope'\\]"):
        SuiteConfig.model_validate(doc)
    doc = quick_suite().model_dump(mode="json")
    doc["evaluators"].append(doc["evaluators"][0])
    with pytest.raises(ValidationError, match="unique"):
        SuiteConfig.model_validate(doc)
    with pytest.raises(ValidationError):
        quick_suite().evaluators[0].temperature = 1.0  # type: ignore[misc, union-attr]


def test_paper_suite_needs_roots(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="datasets without a root: \\['imagenet'\\]"):
        run_suite(paper_suite(), LabelOracleFeatures(), tmp_path, only={"knn"})
    suite = load_suite("paper", {"imagenet": tmp_path / "in1k"})
    assert suite.datasets["imagenet"].root == tmp_path / "in1k"  # type: ignore[union-attr]
    with pytest.raises(KeyError, match="no dataset 'imagenet21k'"):
        load_suite("paper", {"imagenet21k": tmp_path})
    with pytest.raises(FileNotFoundError, match="no built-in suite"):
        load_suite("missing.yaml")


def test_feature_request_is_hashable() -> None:
    assert len({FeatureRequest(), FeatureRequest(patch=True), FeatureRequest()}) == 2
