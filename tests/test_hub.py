"""franca_core.hub: named backbones, local weights only, inferred grid/FFN/registers, RASA attachment."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from franca_core import hub
from franca_core.models import CheckpointError, build_backbone, load_rasa_head
from franca_core.models.layers import FfnType, Mlp, SwiGLUFFN


@pytest.fixture(autouse=True)
def _single_thread() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # avoids OpenMP spin contention on small shared CPUs
    yield
    torch.set_num_threads(previous)


def _synthetic_state(arch: str, ffn: FfnType, img_size: int, registers: int = 0) -> dict[str, Tensor]:
    """Full-size state dict: zeros (cheap) except the small tensors that make outputs non-trivial."""
    with torch.device("meta"):
        shapes = {
            k: v.shape
            for k, v in build_backbone(arch, ffn=ffn, img_size=img_size, num_register_tokens=registers)
            .state_dict()
            .items()
        }  # type: ignore[arg-type]
    gen = torch.Generator().manual_seed(0)
    state = {key: torch.zeros(shape) for key, shape in shapes.items()}
    for key in ("pos_embed", "cls_token", "patch_embed.proj.weight", "norm.weight", "norm.bias"):
        state[key] = 0.1 * torch.randn(shapes[key], generator=gen)
    return state


@pytest.fixture(scope="module")
def franca_b_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An official-layout Franca ViT-B/14 teacher checkpoint at 224 px, with DINO/iBOT/RASA head keys."""
    state = _synthetic_state("vit_base", "swiglu", 224)
    teacher = {}
    for key, value in state.items():
        if key.startswith("blocks."):
            _, index, rest = key.split(".", 2)
            key = f"blocks.{int(index) // 3}.{index}.{rest}"
        teacher[f"backbone.{key}"] = value
    teacher["dino_head.last_layer.weight"] = torch.zeros(4, 4)
    teacher["ibot_head.mlp.0.bias"] = torch.zeros(4)
    teacher["rasa_head.pos_pred.weight"] = torch.zeros(2, 768)
    path = tmp_path_factory.mktemp("hub") / "franca_vitb14_In21K.pth"
    torch.save({"teacher": teacher}, path)
    return path


def _rasa_file(directory: Path, n: int, dim: int = 768) -> Path:
    gen = torch.Generator().manual_seed(n)
    state = {f"pre_pos_layers.{k}.weight": torch.randn(2, dim, generator=gen) for k in range(n)}
    state["pos_pred.weight"] = torch.randn(2, dim, generator=gen)
    path = directory / f"rasa_{n}.pth"
    torch.save(state, path)
    return path


def test_registry_names() -> None:
    expected = {"franca_vitb14", "franca_vitl14", "franca_vitg14"}
    expected |= {f"dinov2_vit{s}14{r}" for s in "sblg" for r in ("", "_reg")}
    assert set(hub.list_models()) == expected
    with pytest.raises(KeyError, match="franca_vitb14"):
        hub.load("franca_vith14")


@pytest.mark.parametrize(
    ("name", "keys", "ffn", "registers", "tokens"),
    [
        ("franca_vitb14", 175, SwiGLUFFN, 0, 1370),
        ("franca_vitl14", 343, SwiGLUFFN, 0, 257),
        ("franca_vitg14", 567, SwiGLUFFN, 0, 257),
        ("dinov2_vits14", 175, Mlp, 0, 1370),
        ("dinov2_vitl14", 343, Mlp, 0, 1370),
        ("dinov2_vitg14", 567, SwiGLUFFN, 0, 1370),
        ("dinov2_vitb14_reg", 176, Mlp, 4, 1370),
    ],
)
def test_random_init_structure(name: str, keys: int, ffn: type, registers: int, tokens: int) -> None:
    with torch.device("meta"):
        model = hub.load(name)
    assert len(model.state_dict()) == keys and model.pos_embed.shape[1] == tokens
    assert isinstance(model.blocks[0].mlp, ffn) and model.num_register_tokens == registers  # type: ignore[union-attr]
    assert (model.interpolate_antialias, model.interpolate_offset) == (
        (True, 0.0) if registers else (False, 0.1)
    )
    assert not model.training


def test_random_init_small_runs() -> None:
    model = hub.load("dinov2_vits14", img_size=56)
    assert model(torch.randn(1, 3, 28, 28)).shape == (1, 384)


def test_only_local_files(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="never downloaded"):
        hub.load("franca_vitb14", weights="https://github.com/valeoai/Franca/releases/download/v1.0.0/x.pth")
    with pytest.raises(FileNotFoundError):
        hub.load("franca_vitb14", weights=tmp_path / "missing.pth")
    with pytest.raises(FileNotFoundError):
        hub.load("franca_vitb14", rasa_weights=str(tmp_path / "missing_rasa.pth"))


def test_franca_b_file_grid_inferred_and_rasa_9(franca_b_file: Path, tmp_path: Path) -> None:
    model = hub.load("franca_vitb14", weights=franca_b_file, rasa_weights=_rasa_file(tmp_path, 9))
    assert model.pos_embed.shape == (1, 257, 768)  # the file's 224 px grid wins over the 518 default
    assert isinstance(model.blocks[0].mlp, SwiGLUFFN) and len(model.state_dict()) == 176  # + rasa_fold
    out = model.forward_features(torch.randn(1, 3, 28, 42))
    assert out.patch_token_rasa is not None and out.patch_token_rasa.shape == (1, 6, 768)
    expected = load_rasa_head(_rasa_file(tmp_path, 9)).double()(out.x_norm_patchtokens.double())
    torch.testing.assert_close(out.patch_token_rasa.double(), expected, rtol=0, atol=1e-4)


def test_franca_b_file_resized_with_rasa_8(franca_b_file: Path, tmp_path: Path) -> None:
    model = hub.load(
        "franca_vitb14", weights=franca_b_file, rasa_weights=_rasa_file(tmp_path, 8), img_size=448
    )
    assert model.pos_embed.shape == (1, 1025, 768)
    stored = torch.load(franca_b_file, weights_only=True)["teacher"]["backbone.pos_embed"]
    grid = stored[0, 1:].reshape(1, 16, 16, 768).permute(0, 3, 1, 2)
    expected = F.interpolate(grid, size=(32, 32), mode="bicubic", antialias=True)
    torch.testing.assert_close(
        model.pos_embed[0, 1:].detach(), expected[0].permute(1, 2, 0).reshape(1024, 768)
    )
    torch.testing.assert_close(model.pos_embed[0, 0].detach(), stored[0, 0])
    assert model.forward_features(torch.randn(1, 3, 28, 28)).patch_token_rasa is not None


def test_wrong_size_file_is_refused(franca_b_file: Path) -> None:
    with pytest.raises(CheckpointError, match=r"embed_dim 768 and depth 12.*needs embed_dim 1024"):
        hub.load("franca_vitl14", weights=franca_b_file)


def test_dinov2_flat_file_with_registers(tmp_path: Path) -> None:
    path = tmp_path / "dinov2_vits14_reg4_pretrain.pth"
    torch.save(_synthetic_state("vit_small", "mlp", 518, registers=4), path)
    model = hub.load("dinov2_vits14_reg", weights=path)
    assert model.num_register_tokens == 4 and model.pos_embed.shape == (1, 1370, 384)
    assert model.interpolate_offset == 0.0 and model.interpolate_antialias
    out = model.forward_features(torch.randn(2, 3, 28, 28))
    assert out.x_norm_regtokens.shape == (2, 4, 384) and out.patch_token_rasa is None
    with pytest.raises(CheckpointError, match="RASA head width 768"):
        hub.load("dinov2_vits14_reg", weights=path, rasa_weights=_rasa_file(tmp_path, 8))
