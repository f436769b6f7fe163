"""Checkpoint adapters: official Franca / DINOv2 layouts, exports, safetensors, clear errors (§10)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from torch import Tensor

from franca_core.models import CheckpointError, VisionTransformer, build_backbone
from franca_core.models.pretrained import (
    backbone_from_state_dict,
    chunk_block_keys,
    infer_architecture,
    load_backbone,
    resize_pos_embed,
    save_dinov2_checkpoint,
    save_franca_checkpoint,
    save_safetensors,
    split_state_dict,
    to_franca_checkpoint,
    unwrap_state_dict,
)

RefSD = Callable[..., dict[str, Tensor]]


def _features(model: VisionTransformer, seed: int = 0, size: tuple[int, int] = (28, 42)) -> Tensor:
    x = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return model.eval().forward_features(x).x_prenorm


def _flat_model(state: dict[str, Tensor], num_heads: int | None = None) -> VisionTransformer:
    return backbone_from_state_dict(state, num_heads=num_heads)


@pytest.mark.parametrize("prefix", ["backbone.", "module.backbone.", ""])
def test_franca_layout_loads_tiny(
    ref_state_dict: RefSD, to_franca_layout: Callable, tmp_path: Path, prefix: str
) -> None:
    flat = ref_state_dict(128, 4, "swiglu", 2)
    path = tmp_path / "franca.pth"
    torch.save(to_franca_layout(flat, 4, prefix=prefix), path)
    model = load_backbone(path)
    assert (model.embed_dim, model.depth, model.num_heads, model.patch_size) == (128, 4, 2, 14)
    assert model.pos_embed.shape == (1, 5, 128) and model.num_register_tokens == 0
    torch.testing.assert_close(model.blocks[3].mlp.w3.weight, flat["blocks.3.mlp.w3.weight"])  # type: ignore[union-attr]
    torch.testing.assert_close(_features(model), _features(_flat_model(flat)), rtol=0, atol=0)


@pytest.mark.parametrize(("ffn", "registers"), [("mlp", 0), ("mlp", 4), ("swiglu", 0)])
def test_dinov2_flat_layout_loads_tiny(
    ref_state_dict: RefSD, tmp_path: Path, ffn: str, registers: int
) -> None:
    flat = ref_state_dict(128, 2, ffn, 3, registers=registers)
    path = tmp_path / "dinov2.pth"
    torch.save(flat, path)
    model = load_backbone(path)
    assert model.num_register_tokens == registers and model.pos_embed.shape[1] == 10
    assert ("blocks.0.mlp.fc1.weight" in model.state_dict()) == (ffn == "mlp")
    assert _features(model).shape == (2, 1 + registers + 6, 128)


@pytest.mark.parametrize(("ffn", "layout"), [("swiglu", "franca"), ("mlp", "dinov2")])
def test_real_b14_layouts_load(
    ref_state_dict: RefSD, to_franca_layout: Callable, ffn: str, layout: str
) -> None:
    flat = ref_state_dict(768, 12, ffn, 37, random=False)
    assert len(flat) == 175
    raw = to_franca_layout(flat, 12) if layout == "franca" else flat
    if layout == "franca":
        teacher = raw["teacher"]
        assert {k.split(".")[2] for k in teacher if re.match(r"backbone\.blocks\.\d+\.", k)} == {
            "0",
            "1",
            "2",
            "3",
        }
        assert "backbone.blocks.1.5.mlp.w12.weight" in teacher
    backbone, rasa = split_state_dict(unwrap_state_dict(raw))
    assert len(backbone) == 175 and rasa == {}
    arch = infer_architecture(backbone)
    assert (arch.embed_dim, arch.depth, arch.num_heads, arch.img_size, arch.ffn) == (768, 12, 12, 518, ffn)
    model = backbone_from_state_dict(backbone)
    assert len(model.state_dict()) == 175 and model.pos_embed.shape == (1, 1370, 768)


def test_chunk_indices_match_reference() -> None:
    for depth, chunk in [(12, 3), (24, 6), (40, 10)]:
        keys = chunk_block_keys({f"blocks.{i}.norm1.weight": torch.zeros(1) for i in range(depth)}, depth)
        assert sorted(keys, key=lambda k: int(k.split(".")[2])) == [
            f"blocks.{i // chunk}.{i}.norm1.weight" for i in range(depth)
        ]


def _trained_tiny(**kwargs: object) -> VisionTransformer:
    torch.manual_seed(7)
    model = build_backbone("vit_base", embed_dim=128, depth=4, num_heads=2, img_size=42, **kwargs)  # type: ignore[arg-type]
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()


@pytest.mark.parametrize("ffn", ["swiglu", "mlp"])
def test_export_franca_and_dinov2_round_trip(tmp_path: Path, ffn: str) -> None:
    model = _trained_tiny(ffn=ffn)
    exported = to_franca_checkpoint(model)
    assert set(exported) == {"teacher"} and len(exported["teacher"]) == len(model.state_dict())
    assert all(k.startswith("backbone.") for k in exported["teacher"])
    assert "backbone.blocks.2.2.attn.qkv.weight" in exported["teacher"]
    save_franca_checkpoint(model, tmp_path / "f.pth")
    save_dinov2_checkpoint(model, tmp_path / "d.pth")
    reference = _features(model)
    for name in ("f.pth", "d.pth"):
        loaded = load_backbone(tmp_path / name)
        torch.testing.assert_close(_features(loaded), reference, rtol=0, atol=0)


def test_safetensors_round_trip_with_config_and_rasa(tmp_path: Path) -> None:
    model = build_backbone(
        "vit_small", embed_dim=64, depth=2, num_heads=4, img_size=28, num_register_tokens=2
    )
    model.attach_rasa(torch.linalg.qr(torch.randn(64, 64))[0])
    path = tmp_path / "m.safetensors"
    save_safetensors(model, path)
    with safe_open(str(path), framework="pt") as handle:
        meta = handle.metadata()
    assert meta["arch"] == "custom" and meta["ffn"] == "swiglu" and meta["num_register_tokens"] == "2"
    assert json.loads(meta["config"])["num_heads"] == 4 and meta["img_size"] == "28"
    loaded = load_backbone(path)
    assert loaded.num_heads == 4 and loaded.rasa_fold is not None
    x = torch.randn(2, 3, 28, 28)
    a, b = model.eval().forward_features(x), loaded.forward_features(x)
    torch.testing.assert_close(a.x_prenorm, b.x_prenorm, rtol=0, atol=0)
    assert a.patch_token_rasa is not None and b.patch_token_rasa is not None
    torch.testing.assert_close(a.patch_token_rasa, b.patch_token_rasa, rtol=0, atol=0)


def test_explicit_num_heads_for_non_standard_head_dim(tmp_path: Path) -> None:
    model = _trained_tiny()
    model_4h = build_backbone("vit_base", embed_dim=128, depth=4, num_heads=4, img_size=42)
    model_4h.load_state_dict(model.state_dict())
    save_dinov2_checkpoint(model_4h, tmp_path / "d.pth")
    loaded = load_backbone(tmp_path / "d.pth", num_heads=4)
    torch.testing.assert_close(_features(loaded), _features(model_4h), rtol=0, atol=0)


def test_img_size_resizes_pos_embed(tmp_path: Path) -> None:
    model = _trained_tiny()
    save_franca_checkpoint(model, tmp_path / "f.pth")
    loaded = load_backbone(tmp_path / "f.pth", img_size=84)
    assert loaded.pos_embed.shape == (1, 37, 128)
    expected = resize_pos_embed(model.pos_embed.detach(), 6)
    torch.testing.assert_close(loaded.pos_embed.detach(), expected)
    save_safetensors(model, tmp_path / "m.safetensors")
    assert load_backbone(tmp_path / "m.safetensors", img_size=84).pos_embed.shape == (1, 37, 128)


def _load_error(state: dict[str, Tensor]) -> str:
    with pytest.raises(CheckpointError) as info:
        _flat_model(state)
    return str(info.value)


def test_wrong_checkpoints_name_the_problem(ref_state_dict: RefSD) -> None:
    good = ref_state_dict(128, 2, "swiglu", 2)
    missing = {k: v for k, v in good.items() if k != "blocks.1.norm2.bias"}
    assert "missing keys (1): blocks.1.norm2.bias" in _load_error(missing)
    garbage = {**good, "garbage.weight": torch.zeros(3)}
    assert "unexpected keys (1): garbage.weight" in _load_error(garbage)
    wrong = {**good, "blocks.0.attn.proj.weight": torch.zeros(128, 127)}
    assert "blocks.0.attn.proj.weight: expected [128, 128], got [128, 127]" in _load_error(wrong)
    gap = {k: v for k, v in good.items() if not k.startswith("blocks.0.")}
    assert "block indices" in _load_error(gap)
    assert "missing keys" in _load_error({k: v for k, v in good.items() if k != "cls_token"})


def test_bad_paths_are_refused(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="never downloaded"):
        load_backbone("https://example.org/franca_vitb14_In21K.pth")
    with pytest.raises(FileNotFoundError, match="not found"):
        load_backbone(tmp_path / "absent.pth")
    torch.save([torch.zeros(1)], tmp_path / "list.pth")
    with pytest.raises(CheckpointError, match="not a state dict"):
        load_backbone(tmp_path / "list.pth")
