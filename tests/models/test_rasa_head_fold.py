"""RASA head (reference §7.1, §7.3): sequential plane removal, folding, official files with 8/9 planes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from franca_core.models import CheckpointError, build_backbone, load_rasa_head
from franca_core.rasa.head import RASAHead, decompose_pos_2d


def _random_head(dim: int, n: int, seed: int = 0) -> RASAHead:
    torch.manual_seed(seed)
    head = RASAHead(dim, n).double()
    for p in head.parameters():
        torch.nn.init.normal_(p)
    return head


def naive_removal(x: np.ndarray, weights: list[np.ndarray]) -> np.ndarray:
    """Token-by-token float64 oracle: Gram-Schmidt the two rows, subtract both projections, in order."""
    out = x.copy()
    for w in weights:
        r = w[0] / np.linalg.norm(w[0])
        c = w[1] / np.linalg.norm(w[1])
        c = c - np.dot(c, r) * r
        c = c / np.linalg.norm(c)
        for t in range(out.shape[0]):
            out[t] = out[t] - np.dot(out[t], r) * r - np.dot(out[t], c) * c
    return out


@pytest.mark.parametrize("n", [8, 9])
def test_sequential_removal_matches_naive_and_fold(n: int) -> None:
    head = _random_head(32, n)
    x = torch.randn(3, 5, 32, dtype=torch.float64)
    out = head(x)
    weights = [w.detach().numpy() for w in head.plane_weights()]
    expected = naive_removal(x.reshape(-1, 32).numpy(), weights).reshape(3, 5, 32)
    np.testing.assert_allclose(out.detach().numpy(), expected, rtol=0, atol=1e-12)
    fold = head.folded_matrix()
    assert fold.dtype == torch.float64 and fold.shape == (32, 32)
    torch.testing.assert_close(x @ fold, out, rtol=0, atol=1e-12)
    torch.testing.assert_close(x @ head.folded_matrix(use_pos_pred=False), head(x, use_pos_pred=False))


def test_removal_kills_last_plane_and_order_matters() -> None:
    head = _random_head(16, 2, seed=1)
    x = torch.randn(10, 16, dtype=torch.float64)
    out = head(x)
    x_pos, _ = decompose_pos_2d(out, head.pos_pred.weight)
    assert x_pos.abs().max() < 1e-12
    reversed_head = RASAHead(16, 2).double()
    with torch.no_grad():
        weights = head.plane_weights()
        for layer, weight in zip(reversed_head.plane_weights(), reversed(weights), strict=True):
            layer.copy_(weight)
    assert not torch.allclose(reversed_head(x), out)


def test_grown_head_appends_pos_pred() -> None:
    head = _random_head(8, 2)
    grown = head.grown()
    assert grown.n_pre_layers == 3
    torch.testing.assert_close(grown.pre_pos_layers[2].weight.double(), head.pos_pred.weight)  # type: ignore[union-attr]
    assert head.predict_positions(torch.zeros(4, 8, dtype=torch.float64)).shape == (4, 2)


@pytest.mark.parametrize(("n", "prefix"), [(8, ""), (9, ""), (8, "module.rasa_head."), (9, "rasa_head.")])
def test_official_rasa_file_loads_with_inferred_count(tmp_path: Path, n: int, prefix: str) -> None:
    state = {f"{prefix}pre_pos_layers.{k}.weight": torch.randn(2, 48) for k in range(n)}
    state[f"{prefix}pos_pred.weight"] = torch.randn(2, 48)
    torch.save(state, tmp_path / "rasa.pth")
    head = load_rasa_head(tmp_path / "rasa.pth")
    assert head.n_pre_layers == n and head.dim == 48
    torch.testing.assert_close(head.pos_pred.weight, state[f"{prefix}pos_pred.weight"])


def test_rasa_head_inside_teacher_checkpoint(tmp_path: Path) -> None:
    teacher = {"backbone.cls_token": torch.zeros(1, 1, 8), "rasa_head.pos_pred.weight": torch.randn(2, 8)}
    teacher |= {f"rasa_head.pre_pos_layers.{k}.weight": torch.randn(2, 8) for k in range(8)}
    torch.save({"teacher": teacher}, tmp_path / "t.pth")
    assert load_rasa_head(tmp_path / "t.pth").n_pre_layers == 8


def test_bad_rasa_files_are_refused() -> None:
    with pytest.raises(CheckpointError, match="pos_pred"):
        load_rasa_head({"pre_pos_layers.0.weight": torch.zeros(2, 4)})
    with pytest.raises(CheckpointError, match="contiguous"):
        load_rasa_head({"pre_pos_layers.1.weight": torch.zeros(2, 4), "pos_pred.weight": torch.zeros(2, 4)})
    with pytest.raises(CheckpointError, match="shape"):
        load_rasa_head({"pre_pos_layers.0.weight": torch.zeros(3, 4), "pos_pred.weight": torch.zeros(2, 4)})
    with pytest.raises(CheckpointError, match="unexpected"):
        load_rasa_head({"pos_pred.weight": torch.zeros(2, 4), "pos_pred.bias": torch.zeros(2)})


def test_backbone_returns_patch_token_rasa() -> None:
    torch.manual_seed(2)
    model = build_backbone("vit_small", embed_dim=64, depth=1, num_heads=1, img_size=28).double().eval()
    head = _random_head(64, 8)
    x = torch.randn(2, 3, 28, 28, dtype=torch.float64)
    assert model.forward_features(x).patch_token_rasa is None
    model.attach_rasa(head)
    assert "rasa_fold" in model.state_dict()
    model.double()  # the fold is stored in float32; a float64 model keeps it exact to float32
    out = model.forward_features(x)
    assert out.patch_token_rasa is not None
    torch.testing.assert_close(out.patch_token_rasa, head(out.x_norm_patchtokens), rtol=0, atol=1e-6)
    model.attach_rasa(None)
    assert model.forward_features(x).patch_token_rasa is None and "rasa_fold" not in model.state_dict()
    with pytest.raises(ValueError, match=r"must be \[64, 64\]"):
        model.attach_rasa(torch.eye(32))
