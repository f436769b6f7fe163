"""Folded export and the official head layout (Franca §3.3; reference §2.4, §7.1, §7.3; issue 6 acceptance).

- The backbone with the folded D×D map returns the same ``patch_token_rasa`` as removing the trained planes
  one by one from ``x_norm_patchtokens`` (float64), also after a save / load round trip.
- Heads written by ``save_head`` have exactly the official keys (8 or 9 ``pre_pos_layers`` + ``pos_pred``) and
  load back, from the ``.pth`` and the ``.safetensors``, to the same transform; an official-layout file loads
  into the same sequential removal.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import Tensor

from franca_core.models.vision_transformer import VisionTransformer
from franca_core.rasa.config import TrainConfig
from franca_core.rasa.export import export_folded_backbone, load_folded_backbone, load_head, save_head
from franca_core.rasa.features import CachedPatches
from franca_core.rasa.head import RASAHead, decompose_pos_2d
from franca_core.rasa.train import train_rasa

QUICK = TrainConfig(rounds=3, epochs_per_round=2, batch_size=8, lr=1e-2, early_stop_min_gain=None)


def one_by_one(x: Tensor, head: RASAHead) -> Tensor:
    """Remove every plane in order (pre_pos_layers 0..n-1, then pos_pred), each as its own step."""
    for weight in head.plane_weights():
        _, x = decompose_pos_2d(x, weight.detach().double())
    return x


@pytest.fixture(scope="module")
def trained(
    positional_backbone: Callable[..., VisionTransformer],
) -> tuple[VisionTransformer, RASAHead, Tensor]:
    """A tiny positional ViT, a head trained on its patch tokens, and a batch of images."""
    model = positional_backbone(dim=32, depth=1, img_size=56, amplitude=3.0)
    images = torch.randn(24, 3, 56, 56, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        tokens = model.forward_features(images).x_norm_patchtokens  # [24, 16, 32]
    head = train_rasa(CachedPatches(tokens), (4, 4), 32, QUICK).head
    return model, head, images[:4]


def test_folded_forward_features_equals_rounds_one_by_one(
    trained: tuple[VisionTransformer, RASAHead, Tensor],
) -> None:
    model, head, images = trained
    model = model.double()
    model.attach_rasa(head)
    # attach_rasa keeps the map as float32 (saved with the backbone); put the exact float64 fold in for the
    # tight check of the forward path itself.
    model.rasa_fold = head.folded_matrix()
    out = model.forward_features(images.double())
    assert out.patch_token_rasa is not None
    expected = one_by_one(out.x_norm_patchtokens, head)
    torch.testing.assert_close(out.patch_token_rasa, expected, rtol=0, atol=1e-12)
    model.attach_rasa(head)  # the stored float32 map: float32 rounding of the fold only
    out32 = model.forward_features(images.double())
    assert out32.patch_token_rasa is not None
    torch.testing.assert_close(out32.patch_token_rasa, expected, rtol=0, atol=1e-6)
    model.attach_rasa(None)
    model.float()


def test_exported_backbone_round_trip(
    tmp_path: Path, trained: tuple[VisionTransformer, RASAHead, Tensor]
) -> None:
    model, head, images = trained
    path = export_folded_backbone(model, head, tmp_path / "backbone_rasa.safetensors")
    loaded = load_folded_backbone(path)
    out = loaded.forward_features(images)
    assert out.patch_token_rasa is not None and out.patch_token_rasa.shape == (4, 16, 32)
    expected = one_by_one(out.x_norm_patchtokens.double(), head)
    torch.testing.assert_close(out.patch_token_rasa.double(), expected, rtol=0, atol=2e-5)
    model.attach_rasa(None)


@pytest.mark.parametrize("rounds", [9, 10])
def test_trained_head_has_official_layout(tmp_path: Path, rounds: int) -> None:
    tokens = torch.randn(8, 16, 24) + torch.linspace(-1, 1, 16)[None, :, None]
    cfg = TrainConfig(rounds=rounds, epochs_per_round=1, batch_size=8, lr=1e-2, early_stop_min_gain=None)
    head = train_rasa(CachedPatches(tokens), (4, 4), 24, cfg).head
    assert head.n_pre_layers == rounds - 1  # 9 rounds: the legacy 8 + pos_pred; 10 rounds: the new 9 + 1
    pth, st = save_head(head, tmp_path / "rasa_head")
    state = torch.load(pth, weights_only=True)
    expected = {f"pre_pos_layers.{k}.weight" for k in range(rounds - 1)} | {"pos_pred.weight"}
    assert set(state) == expected
    assert all(v.shape == (2, 24) and v.dtype == torch.float32 for v in state.values())
    assert set(load_file(st)) == expected
    x = torch.randn(5, 24, dtype=torch.float64)
    for path in (pth, st):
        loaded = load_head(path)
        assert loaded.n_pre_layers == rounds - 1
        torch.testing.assert_close(loaded.double()(x), head.double()(x), rtol=0, atol=1e-12)


@pytest.mark.parametrize("n_pre", [8, 9])
def test_official_file_loads_into_sequential_removal(tmp_path: Path, n_pre: int) -> None:
    gen = torch.Generator().manual_seed(n_pre)
    state = {f"pre_pos_layers.{k}.weight": torch.randn(2, 40, generator=gen) for k in range(n_pre)}
    state["pos_pred.weight"] = torch.randn(2, 40, generator=gen)
    torch.save(state, tmp_path / "franca_vitb14_In21K_rasa.pth")
    head = load_head(tmp_path / "franca_vitb14_In21K_rasa.pth")
    x = torch.randn(3, 7, 40, dtype=torch.float64)
    torch.testing.assert_close(x @ head.folded_matrix(), one_by_one(x, head), rtol=0, atol=1e-12)
    pth, _ = save_head(head, tmp_path / "again")
    again = torch.load(pth, weights_only=True)
    assert set(again) == set(state)
    assert all(torch.equal(again[k], state[k]) for k in state)


def test_our_head_file_loads_through_the_hub(tmp_path: Path) -> None:
    """``hub.load(..., rasa_weights=our .pth)`` gives the patch_token_rasa of our head (ViT-S, 8 planes)."""
    from franca_core.hub import load

    gen = torch.Generator().manual_seed(0)
    head = RASAHead(384, 8)
    with torch.no_grad():
        for weight in head.plane_weights():
            weight.copy_(torch.randn(2, 384, generator=gen))
    pth, _ = save_head(head, tmp_path / "vits_rasa")
    model = load("dinov2_vits14", rasa_weights=pth, img_size=56)
    out = model.forward_features(torch.randn(1, 3, 56, 56, generator=gen))
    assert out.patch_token_rasa is not None
    expected = one_by_one(out.x_norm_patchtokens.double(), head)
    torch.testing.assert_close(out.patch_token_rasa.double(), expected, rtol=0, atol=2e-5)
