"""RASA on a backbone the ``debug`` preset really trained, on real photographs (issue 6's acceptance).

Unlike ``test_rasa_pipeline.py`` (a random ViT with a planted position signal), the positional bias here
is whatever 500 steps of Franca training left in the features. The report must show the probe error and
the cluster-position entropy before and after; RASA must not make position more decodable, and the
k-NN accuracy must not fall by more than its noise (two binomial standard errors).

Measured: the tiny ``debug`` backbone keeps no linearly decodable position in its output patch tokens
after 500 steps (probe R² -0.02 before, -0.03 after; cluster-position entropy 0.898 -> 0.901), so the
first round's position loss does not beat chance and RASA stops after it, leaving the features as they
were. Removing a real bias is shown on planted signals (``test_rasa_planted.py``,
``test_rasa_pipeline.py``); on a ViT-B it needs a real pretrained checkpoint.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from franca_core.data.sources import sample_images
from franca_core.models.pretrained import load_backbone
from franca_core.models.vision_transformer import VisionTransformer
from franca_core.rasa.config import RasaConfig
from franca_core.rasa.pipeline import run_rasa

if TYPE_CHECKING:  # the fixture's type; conftest modules are not imported by name
    from tests.conftest import DebugPretrained


@pytest.mark.slow
def test_rasa_on_a_debug_pretrained_backbone(
    debug_pretrained: DebugPretrained, small_rasa_config: RasaConfig, tmp_path: Path
) -> None:
    backbone = load_backbone(debug_pretrained.teacher_file)
    assert isinstance(backbone, VisionTransformer)
    report = run_rasa(backbone, sample_images(), small_rasa_config, tmp_path, "debug-pretrained", "sample")
    data = json.loads((tmp_path / "report.json").read_text())
    print({k: data[k] for k in list(data)[:12]})
    for key in ("probe_r2_before", "probe_r2_after", "probe_mse_before", "probe_mse_after"):
        assert math.isfinite(data[key])
    for key in ("entropy_before", "entropy_after"):
        assert 0.0 <= data[key] <= 1.0
    assert data["rounds_run"] >= 1
    assert report.after.probe.r2 <= report.before.probe.r2 + 0.02  # position is no easier to read
    knn = report.knn
    assert knn is not None
    assert knn.patch_mean_top1_after >= knn.patch_mean_top1_before - 2 * knn.stderr
    assert (tmp_path / "report.json").exists() and any(f.endswith(".png") for f in report.files)
