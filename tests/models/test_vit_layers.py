"""Leaf layers of the ViT: attention kernels, FFN widths and maths, drop path, LayerScale."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from franca_core.models.layers import (
    Attention,
    Block,
    DropPath,
    LayerScale,
    Mlp,
    SwiGLUFFN,
    parse_ffn,
    swiglu_hidden_dim,
)


def naive_attention(x: torch.Tensor, attn: Attention) -> torch.Tensor:
    """Per-sample, per-head loop with explicit softmax; float64 oracle for Attention.forward."""
    B, _, D = x.shape
    h, hd = attn.num_heads, D // attn.num_heads
    out = torch.zeros_like(x)
    for b in range(B):
        qkv = x[b] @ attn.qkv.weight.T + attn.qkv.bias  # [N, 3D]
        heads = []
        for j in range(h):
            q = qkv[:, j * hd : (j + 1) * hd]
            k = qkv[:, D + j * hd : D + (j + 1) * hd]
            v = qkv[:, 2 * D + j * hd : 2 * D + (j + 1) * hd]
            logits = q @ k.T / math.sqrt(hd)
            weights = torch.exp(logits - logits.max(dim=1, keepdim=True).values)
            heads.append((weights / weights.sum(dim=1, keepdim=True)) @ v)
        out[b] = torch.cat(heads, dim=1) @ attn.proj.weight.T + attn.proj.bias
    return out


@pytest.mark.parametrize("backend", ["sdpa", "eager", "auto"])
def test_attention_backends_match_naive_float64(backend: str) -> None:
    torch.manual_seed(0)
    attn = Attention(32, 4, backend=backend).double().eval()  # type: ignore[arg-type]
    for p in attn.parameters():
        torch.nn.init.normal_(p, std=0.3)
    x = torch.randn(2, 7, 32, dtype=torch.float64)
    torch.testing.assert_close(attn(x), naive_attention(x, attn), rtol=0, atol=1e-12)


def test_attention_weights_are_softmax_rows() -> None:
    torch.manual_seed(1)
    attn = Attention(16, 2).double()
    x = torch.randn(3, 5, 16, dtype=torch.float64)
    weights = attn.attention_weights(x)
    assert weights.shape == (3, 2, 5, 5)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 2, 5, dtype=torch.float64))
    q, k, _ = attn.qkv(x).reshape(3, 5, 3, 2, 8).unbind(2)
    expected = torch.einsum("bnhd,bmhd->bhnm", q, k).div(math.sqrt(8)).softmax(-1)
    torch.testing.assert_close(weights, expected, rtol=0, atol=1e-12)


def test_attention_rejects_bad_config() -> None:
    with pytest.raises(ValueError, match="divisible"):
        Attention(30, 4)
    with pytest.raises(ValueError, match="backend"):
        Attention(32, 4, backend="flash")  # type: ignore[arg-type]


@pytest.mark.parametrize(("dim", "hidden"), [(384, 1024), (768, 2048), (1024, 2736), (1536, 4096), (64, 176)])
def test_swiglu_hidden_width(dim: int, hidden: int) -> None:
    assert swiglu_hidden_dim(dim) == hidden


def test_swiglu_forward_matches_formula() -> None:
    torch.manual_seed(2)
    ffn = SwiGLUFFN(12, 16).double()
    x = torch.randn(4, 12, dtype=torch.float64)
    h = x @ ffn.w12.weight.T + ffn.w12.bias
    x1, x2 = h[:, :16], h[:, 16:]
    expected = (x1 * torch.sigmoid(x1) * x2) @ ffn.w3.weight.T + ffn.w3.bias
    torch.testing.assert_close(ffn(x), expected, rtol=0, atol=1e-12)


def test_parse_ffn_aliases() -> None:
    assert parse_ffn("swiglufused") == "swiglu"
    assert parse_ffn("mlp") == "mlp"
    with pytest.raises(ValueError, match="identity"):
        parse_ffn("identity")


def test_drop_path_per_sample_and_unbiased() -> None:
    torch.manual_seed(3)
    module = DropPath(0.25)
    x = torch.ones(20000, 3, 2, dtype=torch.float64)
    module.eval()
    assert module(x) is x
    module.train()
    y = module(x)
    per_sample = y.flatten(1)
    # Each sample is either dropped entirely or scaled by 1/keep.
    assert set(torch.unique(per_sample).tolist()) <= {0.0, 1 / 0.75}
    assert torch.all(per_sample.min(1).values == per_sample.max(1).values)
    assert abs(y.mean().item() - 1.0) < 0.03
    assert abs((per_sample[:, 0] == 0).float().mean().item() - 0.25) < 0.02


def test_block_has_separate_drop_paths_and_layerscale() -> None:
    block = Block(32, 2, ffn="swiglu", drop_path=0.2, init_values=1e-5)
    assert isinstance(block.drop_path1, DropPath) and isinstance(block.drop_path2, DropPath)
    assert block.drop_path1 is not block.drop_path2
    assert isinstance(block.ls1, LayerScale)
    torch.testing.assert_close(block.ls2.gamma, torch.full((32,), 1e-5))
    plain = Block(32, 2, init_values=None)
    assert not any("ls1" in key or "ls2" in key for key in plain.state_dict())


def test_block_forward_is_pre_norm_residual() -> None:
    torch.manual_seed(4)
    block = Block(16, 2, ffn="mlp", init_values=0.5).double().eval()
    x = torch.randn(2, 5, 16, dtype=torch.float64)
    h = x + 0.5 * block.attn(F.layer_norm(x, (16,), block.norm1.weight, block.norm1.bias, 1e-6))
    assert isinstance(block.mlp, Mlp)
    fc1, fc2 = block.mlp.fc1, block.mlp.fc2
    hn = F.layer_norm(h, (16,), block.norm2.weight, block.norm2.bias, 1e-6)
    expected = h + 0.5 * fc2(F.gelu(fc1(hn)))
    torch.testing.assert_close(block(x), expected, rtol=0, atol=1e-12)
