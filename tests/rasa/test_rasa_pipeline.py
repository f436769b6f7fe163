"""A whole RASA run on real photographs (the scikit-image sample images) and the ``franca rasa`` CLI.

The backbone is a tiny random ViT with a planted smooth position embedding (see conftest): a random ViT
alone has almost no decodable position at its output. The report must show the probe error and the
cluster-position entropy before and after, the probe R² must fall, and the k-NN accuracy must not fall by
more than its noise (binomial standard error at this test size).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from franca_core.cli import main
from franca_core.data.sources import sample_images
from franca_core.models.pretrained import save_safetensors
from franca_core.models.vision_transformer import VisionTransformer
from franca_core.rasa.config import RasaConfig, TrainConfig
from franca_core.rasa.export import load_folded_backbone, load_head
from franca_core.rasa.pipeline import RasaReport, run_rasa

HEADLINE = (
    "probe_r2_before",
    "probe_r2_after",
    "entropy_before",
    "entropy_after",
    "rounds_run",
    "rounds_kept",
)


@pytest.fixture(scope="module")
def run(
    tmp_path_factory: pytest.TempPathFactory,
    positional_backbone: Callable[..., VisionTransformer],
    small_rasa_config: RasaConfig,
) -> tuple[RasaReport, Path]:
    out = tmp_path_factory.mktemp("rasa")
    model = positional_backbone(dim=64, depth=1, img_size=112, amplitude=2.0)
    return run_rasa(model, sample_images(), small_rasa_config, out, "positional", "sample"), out


@pytest.mark.slow
def test_report_shows_bias_before_and_after(run: tuple[RasaReport, Path]) -> None:
    report, out = run
    data = json.loads((out / "report.json").read_text())
    assert all(isinstance(data[k], int | float) for k in HEADLINE)
    assert data["probe_r2_before"] > 0.7
    assert data["probe_r2_after"] < data["probe_r2_before"] - 0.3
    assert data["probe_mse_after"] > 2 * data["probe_mse_before"]
    assert 0 < data["entropy_before"] <= 1 and 0 < data["entropy_after"] <= 1
    assert len(data["rounds"]) == data["rounds_run"] and report.training.rounds_kept == data["rounds_kept"]
    assert (out / "plots" / "entropy.png").stat().st_size > 0 and (out / "plots" / "rounds.png").is_file()


@pytest.mark.slow
def test_knn_does_not_fall_beyond_noise(run: tuple[RasaReport, Path]) -> None:
    knn = run[0].knn
    assert knn is not None and knn.n_classes == 17
    assert knn.patch_mean_top1_after >= knn.patch_mean_top1_before - 2 * knn.stderr
    hbird = run[0].hummingbird
    assert hbird is not None and hbird.miou_before > 0 and hbird.miou_after > 0


@pytest.mark.slow
def test_outputs_load_back(run: tuple[RasaReport, Path]) -> None:
    report, out = run
    head = load_head(out / "rasa_head.pth")
    assert head.n_pre_layers == report.training.rounds_kept - 1
    model = load_folded_backbone(out / "backbone_rasa.safetensors")
    x = torch.randn(2, 3, 112, 112)
    feats = model.forward_features(x)
    assert feats.patch_token_rasa is not None
    expected = head.double()(feats.x_norm_patchtokens.double())
    torch.testing.assert_close(feats.patch_token_rasa.double(), expected, rtol=0, atol=2e-5)


@pytest.mark.slow
def test_cli_writes_the_outputs(
    tmp_path: Path, positional_backbone: Callable[..., VisionTransformer], small_rasa_config: RasaConfig
) -> None:
    save_safetensors(
        positional_backbone(dim=32, depth=1, img_size=56, amplitude=2.0), tmp_path / "b.safetensors"
    )
    fast = TrainConfig(rounds=2, epochs_per_round=2, batch_size=8)
    quick = small_rasa_config.model_copy(update={"train": fast})
    (tmp_path / "cfg.json").write_text(quick.model_dump_json())
    args = ["rasa", "--backbone", str(tmp_path / "b.safetensors"), "--out", str(tmp_path / "out")]
    args += [
        "--config",
        str(tmp_path / "cfg.json"),
        "--max-images",
        "6",
        "--img-size",
        "56",
        "--no-hummingbird",
    ]
    assert main(args) == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["img_size"] == 56 and report["grid"] == [4, 4] and report["hummingbird"] is None
    assert report["knn_top1_before"] >= 0 and report["config"]["name"] == "test"
    for name in ("rasa_head.pth", "rasa_head.safetensors", "backbone_rasa.safetensors", "config.json"):
        assert (tmp_path / "out" / name).is_file()
