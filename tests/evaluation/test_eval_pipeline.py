"""End to end on real images: label-oracle ceiling, random-init floor, the CLI on official-layout files.

Real images are the scikit-image photographs (always available) and, when present, ``../shared/datasets``
(clothing-10, CamVid). Suites are scaled down (small images, few steps) to stay within CPU seconds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from franca_core.evaluation.features import BackboneFeatures
from franca_core.evaluation.oracle import LabelOracleFeatures
from franca_core.evaluation.runner import run_suite
from franca_core.evaluation.suites import SuiteConfig, shared_datasets_root, shared_suite

SHARED = shared_datasets_root()
needs_clothing10 = pytest.mark.skipif(
    not (SHARED / "clothing10").is_dir(), reason="../shared/datasets absent"
)
needs_camvid = pytest.mark.skipif(not (SHARED / "camvid").is_dir(), reason="../shared/datasets absent")

CLS_DATA = "photos"
SEG_DATA = "mosaics"


def mini_suite(res: int = 56) -> SuiteConfig:
    """Every evaluator on small scikit-image data at a small resolution."""
    return SuiteConfig.model_validate(
        {
            "name": "mini",
            "datasets": {
                CLS_DATA: {"kind": "sample_classification", "per_class": {"train": 8, "val": 4}, "size": 64},
                "others": {"kind": "sample_classification", "per_class": {"val": 2}, "size": 64,
                           "sources": ["camera", "moon", "coins"], "seed": 1},
                SEG_DATA: {"kind": "sample_mosaics", "count": {"train": 8, "val": 4}, "size": 56},
            },
            "evaluators": [
                {"kind": "knn", "data": CLS_DATA, "resolution": res, "ks": [5, 10], "matryoshka_levels": 3},
                {"kind": "linear", "data": CLS_DATA, "resolution": res, "iterations": 60,
                 "learning_rates": [1e-3, 1e-2, 0.1]},
                {"kind": "logreg", "data": CLS_DATA, "resolution": res, "c_values": [0.01, 1.0, 100.0]},
                {"kind": "ood", "data": CLS_DATA, "resolution": res, "id_classes": [0, 1, 2, 3, 4, 5, 6],
                 "ood_data": ["others"], "knn_k": 3, "probe_c_values": [1.0]},
                {"kind": "hummingbird", "data": SEG_DATA, "resolution": res, "k": 10},
                {"kind": "overcluster", "data": SEG_DATA, "resolution": res, "num_clusters": [6, 12],
                 "seeds": [0, 1], "niter": 10, "nredo": 1, "mask_size": res},
                {"kind": "linear_seg", "data": SEG_DATA, "resolution": res, "epochs": 20, "drop_at": 15,
                 "batch_size": 4, "learning_rates": [0.1], "mask_size": res},
                {"kind": "pictures", "data": SEG_DATA, "resolution": res, "num_images": 2},
            ],
        }
    )  # fmt: skip


def flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts / lists as one {path: leaf} dict, for approximate comparisons."""
    if isinstance(tree, dict):
        return {k: v for key, sub in tree.items() for k, v in flat(sub, f"{prefix}/{key}").items()}
    if isinstance(tree, list):
        return {k: v for i, sub in enumerate(tree) for k, v in flat(sub, f"{prefix}/{i}").items()}
    return {prefix: tree}


def metrics(results_json: Path) -> dict[str, Any]:
    doc = json.loads(results_json.read_text())
    return {k: v["metrics"] for k, v in doc["evaluators"].items()}


def test_label_oracle_reaches_the_ceiling(out_dir: Path) -> None:
    pytest.importorskip("faiss")
    results = run_suite(mini_suite(res=112), LabelOracleFeatures(), out_dir)
    head = {k: r.headline() for k, r in results.items()}
    assert (
        head["knn"]["top1@k5"] == 100.0
        and head["linear"]["top1"] == 100.0
        and head["logreg"]["top1"] == 100.0
    )
    assert head["ood"]["id_top1"] == 100.0 and head["ood"]["heldout_classes_msp_auroc"] > 95.0
    # dense scores lose only pixels where bilinear upsampling blurs a 4-patch grid (56 px / 14)
    assert head["hummingbird"]["mIoU"] > 85.0 and head["linear_seg"]["mIoU"] > 85.0
    assert head["overcluster"]["K6_greedy"] > 85.0
    doc = json.loads((out_dir / "results.json").read_text())
    assert doc["evaluators"]["knn"]["protocol"]["temperature"] == 0.07
    assert doc["evaluators"]["hummingbird"]["dataset"]["kind"] == "sample_mosaics"


def test_random_backbone_runs_every_evaluator(tiny_backbone: torch.nn.Module, out_dir: Path) -> None:
    pytest.importorskip("faiss")
    src = BackboneFeatures(tiny_backbone, "tiny-random", out_dir / "cache", batch_size=16, progress=False)
    results = run_suite(mini_suite(), src, out_dir, backbone=tiny_backbone)
    assert set(results) == {e.key for e in mini_suite().evaluators}
    m = metrics(out_dir / "results.json")
    assert m["pictures"]["attention"] is True
    for plot in m["knn"]["plots"] + m["pictures"]["plots"]:
        assert (out_dir / plot).stat().st_size > 1000
    # Near chance (10 classes) on image-level tasks: with LayerScale 1e-5 a random Franca block barely
    # changes the tokens, so the CLS token hardly depends on the image.
    assert results["knn"].headline()["top1@k5"] < 40.0 and results["logreg"].headline()["top1"] < 40.0
    # Dense tasks keep what a random patch projection keeps (colour), but stay far below the oracle.
    assert results["hummingbird"].headline()["mIoU"] < 70.0


def write_suite(path: Path, suite: SuiteConfig) -> Path:
    path.write_text(yaml.safe_dump(suite.model_dump(mode="json")))
    return path


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["franca", "dinov2"])
def test_cli_on_official_layout_checkpoint(
    tiny_backbone: torch.nn.Module, tmp_path: Path, layout: str
) -> None:
    """The suite gives the same numbers on an official-layout file as on the in-memory model."""
    pytest.importorskip("faiss")
    pretrained = pytest.importorskip("franca_core.models.pretrained")
    from franca_core.cli import main

    ckpt = tmp_path / f"{layout}.pth"
    save = pretrained.save_franca_checkpoint if layout == "franca" else pretrained.save_dinov2_checkpoint
    save(tiny_backbone, ckpt)
    suite = SuiteConfig.model_validate(
        {**mini_suite().model_dump(), "evaluators": mini_suite().model_dump()["evaluators"][:5]}
    )
    suite_file = write_suite(tmp_path / "mini.yaml", suite)
    out_file = tmp_path / "from_file"
    assert (
        main(
            [
                "eval",
                "--backbone",
                str(ckpt),
                "--suite",
                str(suite_file),
                "--out",
                str(out_file),
                "--no-progress",
            ]
        )
        == 0
    )
    src = BackboneFeatures(tiny_backbone, "in-memory", None, progress=False)
    run_suite(suite, src, tmp_path / "in_memory")
    from_file, in_memory = (
        metrics(out_file / "results.json"),
        metrics(tmp_path / "in_memory" / "results.json"),
    )
    for key in ("knn", "logreg", "hummingbird"):
        assert flat(from_file[key]) == pytest.approx(flat(in_memory[key]))
    assert list((out_file / "feature_cache").glob("*.pt"))


def test_cli_lists_and_rejects(capsys: pytest.CaptureFixture[str]) -> None:
    from franca_core.cli import main

    assert main(["eval", "--list"]) == 0
    assert main(["eval", "--suite", "quick"]) == 2  # --backbone and --out missing


def shared_small_suite(max_images: dict[str, int], kinds: set[str]) -> SuiteConfig:
    """The shared suite on fixed subsets, small resolutions, few C values."""
    doc = shared_suite().model_dump(mode="json")
    for name, limit in max_images.items():
        doc["datasets"][name]["max_images"] = limit
    doc["evaluators"] = [e for e in doc["evaluators"] if e["kind"] in kinds]
    for e in doc["evaluators"]:
        e["resolution"] = 112 if e["kind"] in {"knn", "logreg"} else 224
        if e["kind"] == "logreg":
            e["c_values"] = [1.0]
        if e["kind"] == "knn":
            e["matryoshka_levels"] = 0
        if e["kind"] == "linear_seg":  # 40 images give few SGD steps: a larger lr for the unit-norm oracle
            e.update(learning_rates=[1.0], epochs=12, drop_at=10, batch_size=8)
    return SuiteConfig.model_validate(doc)


@needs_clothing10
@needs_camvid
@pytest.mark.slow
def test_oracle_on_shared_datasets(out_dir: Path) -> None:
    """One-hot labels on clothing-10 score 100 %; on CamVid the large classes score > 80 % IoU.

    Dense scores of a patch-level oracle are bounded by the patch grid: CamVid's thin classes (poles,
    signs, pedestrians) are rarely the majority of a 14 x 14-pixel patch at 224 px.
    """
    pytest.importorskip("faiss")
    kinds = {"knn", "logreg", "hummingbird", "linear_seg"}
    results = run_suite(
        shared_small_suite({"clothing10": 60, "camvid": 24}, kinds), LabelOracleFeatures(), out_dir
    )
    assert results["knn"].headline()["top1@k10"] == 100.0 and results["logreg"].headline()["top1"] == 100.0
    large = [0, 1, 3, 5]  # sky, building, road, tree
    for key in ("hummingbird", "linear_seg"):
        iou = results[key].per_class_iou  # type: ignore[attr-defined]
        assert min(iou[c] for c in large) > 80.0, (key, iou)


@needs_clothing10
@pytest.mark.slow
def test_random_backbone_near_chance_on_clothing10(tiny_backbone: torch.nn.Module, out_dir: Path) -> None:
    """A random-init ViT on clothing-10: k-NN near the majority-class rate, per-class accuracy near 10 %."""
    doc = shared_small_suite({"clothing10": 240}, {"knn", "logreg"}).model_dump(mode="json")
    for e in doc["evaluators"]:
        e["eval_split"] = "val"
    src = BackboneFeatures(tiny_backbone, "tiny-random", None, batch_size=32, progress=False)
    results = run_suite(SuiteConfig.model_validate(doc), src, out_dir)
    assert results["knn"].headline()["top1@k20"] < 40.0  # majority class (t-shirt) is 24 % of val
    assert results["logreg"].headline()["per_class_accuracy"] < 25.0  # chance is 10 %
