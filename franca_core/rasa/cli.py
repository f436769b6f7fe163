"""``franca rasa``: RASA post-training of a frozen backbone (Franca, arXiv 2507.14137, §3.3).

Examples::

    franca rasa --backbone runs/debug/teacher.safetensors --data sample --out runs/rasa_debug
    franca rasa --backbone franca_vitb14_In21K.pth --data /data/VOC2012/JPEGImages --out runs/rasa_b \\
        --preset paper --device cuda

Writes ``rasa_head.pth`` (official layout) + ``.safetensors``, ``backbone_rasa.safetensors`` (the folded map
built in: ``forward_features`` returns ``patch_token_rasa``), ``plots/`` and ``report.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from franca_core.rasa.config import PRESETS, RasaConfig
from franca_core.rasa.features import SAMPLE, open_images

_AUTO = "auto"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__.splitlines()[0] if __doc__ else None
    parser.add_argument("--backbone", required=True, type=Path, help="backbone file (ours, Franca or DINOv2)")
    parser.add_argument(
        "--data", default=SAMPLE, help="image folder, CSV/text manifest of image paths, or 'sample' (default)"
    )
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument(
        "--preset",
        default=_AUTO,
        choices=[_AUTO, *PRESETS],
        help="config preset; auto: 'paper' on CUDA, 'debug' (small crops, cached views) on CPU",
    )
    parser.add_argument("--config", type=Path, help="JSON file with a full RasaConfig (overrides --preset)")
    parser.add_argument("--img-size", type=int, help="training / diagnostic crop size (default: backbone's)")
    parser.add_argument("--rounds", type=int, help="override train.rounds")
    parser.add_argument("--max-images", type=int, help="use at most this many images")
    parser.add_argument("--no-cache", action="store_true", help="recompute views every epoch (official way)")
    parser.add_argument("--no-knn", action="store_true", help="skip the k-NN before/after")
    parser.add_argument("--no-hummingbird", action="store_true", help="skip Hummingbird before/after")
    parser.add_argument("--device", default=_AUTO, help="auto, cpu, cuda, cuda:1 ...")


def build_config(args: argparse.Namespace, device: torch.device) -> RasaConfig:
    """The preset (or --config file) with the command-line overrides applied."""
    if args.config is not None:
        cfg = RasaConfig.model_validate(json.loads(Path(args.config).read_text()))
    else:
        name = args.preset if args.preset != _AUTO else ("paper" if device.type == "cuda" else "debug")
        cfg = PRESETS[name]()
    updates = {
        "augment": {"img_size": args.img_size} if args.img_size else {},
        "train": {"rounds": args.rounds} if args.rounds else {},
        "data": {
            **({"max_images": args.max_images} if args.max_images else {}),
            **({"cache_features": False} if args.no_cache else {}),
        },
        "diagnostics": {
            **({"knn": False} if args.no_knn else {}),
            **({"hummingbird": False} if args.no_hummingbird else {}),
        },
    }
    merged = cfg.model_dump()
    for section, values in updates.items():
        merged[section].update(values)
    return RasaConfig.model_validate(merged)


def _device(name: str) -> torch.device:
    if name == _AUTO:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def run(args: argparse.Namespace) -> int:
    from franca_core.models.pretrained import load_backbone
    from franca_core.rasa.pipeline import run_rasa

    device = _device(args.device)
    cfg = build_config(args, device)
    backbone = load_backbone(args.backbone).to(device)
    images = open_images(args.data, cfg.data.max_images)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "config.json").write_text(cfg.model_dump_json(indent=2) + "\n")
    report = run_rasa(backbone, images, cfg, args.out, str(args.backbone), str(args.data))
    b, a = report.before, report.after
    t = report.training
    print(f"RASA ({cfg.name}): {t.rounds_kept} planes kept of {t.rounds_run} rounds")
    rmse = f"RMSE {b.probe.rmse_patches:.2f} -> {a.probe.rmse_patches:.2f} patches"
    print(f"  probe R2   {b.probe.r2:7.3f} -> {a.probe.r2:7.3f}   ({rmse})")
    print(f"  entropy    {b.entropy.mean:7.3f} -> {a.entropy.mean:7.3f}")
    if report.knn is not None:
        k = report.knn
        before, after = k.patch_mean_top1_before, k.patch_mean_top1_after
        print(f"  k-NN top-1 {before:6.1f}% -> {after:6.1f}% (+-{k.stderr:.1f})")
    if report.hummingbird is not None:
        h = report.hummingbird
        print(f"  Hummingbird mIoU {h.miou_before:6.1f} -> {h.miou_after:6.1f}")
    print(f"  outputs in {args.out}")
    return 0


__all__ = ["add_arguments", "build_config", "run"]
