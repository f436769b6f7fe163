"""ViT backbone: every size at tiny width, real-size key/parameter counts, tokens, outputs, probes."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from franca_core.models import ARCHS, BackboneOutput, VisionTransformer, build_backbone
from franca_core.models.layers import Block, LayerScale, SwiGLUFFN

SIZES = ["vit_small", "vit_base", "vit_large", "vit_giant2"]


def tiny(arch: str = "vit_base", **kwargs: object) -> VisionTransformer:
    """Same structure as ``arch`` (head count, FFN rule) at head_dim 8, depth 2, 28 px."""
    heads = ARCHS[arch].num_heads
    opts: dict[str, object] = {"embed_dim": 8 * heads, "depth": 2, "num_heads": heads, "img_size": 28}
    opts.update(kwargs)
    return build_backbone(arch, **opts)  # type: ignore[arg-type]


def _float64(model: VisionTransformer) -> VisionTransformer:
    model = model.double().eval()
    with torch.no_grad():  # make every parameter matter (mask token, LayerScale, biases)
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model


@pytest.mark.parametrize("arch", SIZES)
@pytest.mark.parametrize(("ffn", "registers"), [("swiglu", 0), ("mlp", 0), ("mlp", 4)])
def test_forward_backward_tiny(arch: str, ffn: str, registers: int) -> None:
    torch.manual_seed(0)
    model = tiny(arch, ffn=ffn, num_register_tokens=registers, drop_path_rate=0.1).train()
    x = torch.randn(2, 3, 28, 42)
    masks = torch.zeros(2, 6, dtype=torch.bool)
    masks[:, ::2] = True
    out = model.forward_features(x, masks)
    D = model.embed_dim
    assert out.x_norm_clstoken.shape == (2, D)
    assert out.x_norm_regtokens.shape == (2, registers, D)
    assert out.x_norm_patchtokens.shape == (2, 6, D)
    assert out.x_prenorm.shape == (2, 1 + registers + 6, D)
    assert out.masks is masks and out.patch_token_rasa is None
    (out.x_norm_clstoken.sum() + out.x_norm_patchtokens.square().sum()).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def _expected_params(dim: int, depth: int, ffn: str, grid: int, registers: int = 0) -> int:
    """Parameter count from the reference key table (§1.2, §10.1)."""
    hidden = ((int(4 * dim * 2 / 3) + 7) // 8) * 8 if ffn == "swiglu" else 4 * dim
    ffn_params = 3 * hidden * dim + 2 * hidden + dim if ffn == "swiglu" else 2 * hidden * dim + hidden + dim
    block = 4 * dim + (3 * dim * dim + 3 * dim) + (dim * dim + dim) + 2 * dim + ffn_params
    top = dim + (1 + grid * grid) * dim + dim + (dim * 3 * 14 * 14 + dim) + 2 * dim + registers * dim
    return top + depth * block


@pytest.mark.parametrize(
    ("arch", "ffn", "keys", "w_shape"),
    [
        ("vit_small", "mlp", 175, (1536, 384)),
        ("vit_base", "swiglu", 175, (4096, 768)),
        ("vit_base", "mlp", 175, (3072, 768)),
        ("vit_large", "swiglu", 343, (5472, 1024)),
        ("vit_large", "mlp", 343, (4096, 1024)),
        ("vit_giant2", "swiglu", 567, (8192, 1536)),
    ],
)
def test_real_size_keys_and_params(arch: str, ffn: str, keys: int, w_shape: tuple[int, int]) -> None:
    with torch.device("meta"):
        model = build_backbone(arch, ffn=ffn, img_size=518)  # type: ignore[arg-type]
    state = model.state_dict()
    assert len(state) == keys
    first = "blocks.0.mlp.w12.weight" if ffn == "swiglu" else "blocks.0.mlp.fc1.weight"
    assert tuple(state[first].shape) == w_shape
    assert tuple(state["pos_embed"].shape) == (1, 1370, ARCHS[arch].embed_dim)
    spec = ARCHS[arch]
    expected = _expected_params(spec.embed_dim, spec.depth, ffn, 37)
    assert sum(p.numel() for p in model.parameters()) == expected


def test_franca_b_is_86m_parameters() -> None:
    with torch.device("meta"):
        model = build_backbone("vit_base", ffn="swiglu", img_size=224)
    assert 85e6 < sum(p.numel() for p in model.parameters()) < 87e6


def test_init_follows_official_rules() -> None:
    torch.manual_seed(0)
    model = build_backbone("vit_small", depth=2, img_size=28, num_register_tokens=2, layerscale_init=1e-5)
    assert torch.count_nonzero(model.mask_token) == 0
    assert model.cls_token.abs().max() < 1e-4 and model.cls_token.abs().max() > 0
    assert model.register_tokens is not None and model.register_tokens.abs().max() < 1e-4
    first = model.blocks[0]
    assert isinstance(first, Block) and isinstance(first.mlp, SwiGLUFFN)
    weight = first.mlp.w12.weight
    assert abs(weight.std().item() - 0.02) < 0.002 and weight.abs().max() <= 2.0
    assert abs(model.pos_embed.std().item() - 0.02) < 0.004
    for module in model.modules():
        if isinstance(module, torch.nn.Linear) and module.bias is not None:
            assert torch.count_nonzero(module.bias) == 0
        if isinstance(module, LayerScale):
            torch.testing.assert_close(module.gamma, torch.full_like(module.gamma, 1e-5))
    norm = model.norm
    assert norm.eps == 1e-6 and model.blocks[0].norm1.eps == 1e-6  # type: ignore[union-attr]


def test_drop_path_rates() -> None:
    uniform = tiny(drop_path_rate=0.4, depth=3)
    assert [b.drop_path1.drop_prob for b in uniform.blocks] == pytest.approx([0.4] * 3)  # type: ignore[union-attr]
    linear = tiny(drop_path_rate=0.4, depth=3, drop_path_uniform=False)
    assert isinstance(linear.blocks[0].drop_path2, torch.nn.Identity)
    assert linear.blocks[2].drop_path2.drop_prob == pytest.approx(0.4)  # type: ignore[union-attr]


def test_sdpa_and_eager_models_agree_float64() -> None:
    torch.manual_seed(1)
    model = _float64(tiny(ffn="swiglu", num_register_tokens=1))
    x = torch.randn(2, 3, 28, 56, dtype=torch.float64)
    model.set_attention_backend("sdpa")
    a = model.forward_features(x)
    model.set_attention_backend("eager")
    b = model.forward_features(x)
    torch.testing.assert_close(a.x_prenorm, b.x_prenorm, rtol=0, atol=1e-12)


def test_masks_replace_patch_embeddings_before_pos_embed() -> None:
    torch.manual_seed(2)
    model = _float64(tiny(num_register_tokens=2))
    x = torch.randn(2, 3, 28, 28, dtype=torch.float64)
    masks = torch.tensor([[True, False, False, True], [False, False, True, False]])
    tokens = model.prepare_tokens_with_masks(x, masks)
    patches = F.conv2d(x, model.patch_embed.proj.weight, model.patch_embed.proj.bias, stride=14)
    patches = patches.flatten(2).transpose(1, 2).clone()  # [B, 4, D]
    patches[masks] = model.mask_token[0]
    pos = model.pos_embed[0]
    assert model.register_tokens is not None
    for b in range(2):
        torch.testing.assert_close(tokens[b, 0], model.cls_token[0, 0] + pos[0])
        torch.testing.assert_close(tokens[b, 1:3], model.register_tokens[0])
        torch.testing.assert_close(tokens[b, 3:], patches[b] + pos[1:])
    unmasked = model.forward_features(x).x_norm_patchtokens
    masked = model.forward_features(x, masks).x_norm_patchtokens
    assert not torch.allclose(unmasked, masked)


# ------------------------------------------------------------------------------ position embeddings
def _cubic(t: float, a: float = -0.75) -> list[float]:
    def k(d: float) -> float:
        d = abs(d)
        if d <= 1:
            return (a + 2) * d**3 - (a + 3) * d**2 + 1
        return a * d**3 - 5 * a * d**2 + 8 * a * d - 4 * a if d < 2 else 0.0

    return [k(1 + t), k(t), k(1 - t), k(2 - t)]


def _resize_axis0(arr: np.ndarray, n_out: int, inv_scale: float) -> np.ndarray:
    """Bicubic (Keys a=-0.75, half-pixel centres, clamped borders) along axis 0, as torch defines it."""
    out = np.zeros((n_out, *arr.shape[1:]))
    for o in range(n_out):
        src = inv_scale * (o + 0.5) - 0.5
        i0 = math.floor(src)
        for j, w in zip(range(i0 - 1, i0 + 3), _cubic(src - i0), strict=True):
            out[o] += w * arr[min(max(j, 0), arr.shape[0] - 1)]
    return out


def naive_pos_embed(pos: torch.Tensor, gh: int, gw: int, offset: float) -> torch.Tensor:
    """Loop-based float64 oracle of the interpolated position embedding [1, 1 + gh·gw, D]."""
    side = math.isqrt(pos.shape[1] - 1)
    grid = pos[0, 1:].double().numpy().reshape(side, side, -1)
    inv_h = side / (gh + offset) if offset else side / gh
    inv_w = side / (gw + offset) if offset else side / gw
    rows = _resize_axis0(grid, gh, inv_h)
    both = _resize_axis0(rows.transpose(1, 0, 2), gw, inv_w).transpose(1, 0, 2)
    patch = torch.from_numpy(both.reshape(1, gh * gw, -1))
    return torch.cat([pos[:, :1].double(), patch], dim=1)


def test_pos_embed_identity_at_native_grid() -> None:
    model = tiny(img_size=56)
    x = torch.zeros(1, 17, model.embed_dim)
    assert model.interpolate_pos_encoding(x, 56, 56) is model.pos_embed


@pytest.mark.parametrize("offset", [0.1, 0.0])
@pytest.mark.parametrize(("h", "w"), [(42, 70), (98, 84), (28, 28)])
def test_pos_embed_interpolation_matches_naive_bicubic(offset: float, h: int, w: int) -> None:
    torch.manual_seed(3)
    model = tiny(img_size=56, interpolate_offset=offset)
    gh, gw = h // 14, w // 14
    x = torch.zeros(1, 1 + gh * gw, model.embed_dim)
    got = model.interpolate_pos_encoding(x, h, w).detach()
    expected = naive_pos_embed(model.pos_embed.detach(), gh, gw, offset)
    torch.testing.assert_close(got.double(), expected, rtol=0, atol=2e-6)


@pytest.mark.parametrize("antialias", [False, True])
def test_pos_embed_interpolation_matches_functional(antialias: bool) -> None:
    model = tiny(img_size=70, interpolate_offset=0.0, interpolate_antialias=antialias).half()
    x = torch.zeros(1, 1 + 2 * 3, model.embed_dim, dtype=torch.float16)
    got = model.interpolate_pos_encoding(x, 28, 42)
    assert got.dtype == torch.float16
    grid = model.pos_embed[0, 1:].float().reshape(1, 5, 5, -1).permute(0, 3, 1, 2)
    ref = F.interpolate(grid, size=(2, 3), mode="bicubic", antialias=antialias)
    torch.testing.assert_close(got[0, 1:].float(), ref[0].permute(1, 2, 0).reshape(6, -1).half().float())


# ------------------------------------------------------------------------------ outputs and probes
def test_backbone_output_is_frozen_and_indexable() -> None:
    model = tiny()
    out = model.forward_features(torch.randn(1, 3, 28, 28))
    assert isinstance(out, BackboneOutput)
    assert out["x_norm_clstoken"] is out.x_norm_clstoken
    assert "x_prenorm" in out and "logits" not in out
    assert list(out) == list(out.keys())
    with pytest.raises(KeyError):
        out["logits"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        out.masks = None  # type: ignore[misc]
    torch.testing.assert_close(
        model(torch.zeros(1, 3, 28, 28)), model.forward_features(torch.zeros(1, 3, 28, 28))["x_norm_clstoken"]
    )


def test_list_input_gives_one_output_per_crop() -> None:
    torch.manual_seed(4)
    model = tiny().eval()
    crops = [torch.randn(2, 3, 28, 28), torch.randn(3, 3, 14, 14)]
    masks = [torch.tensor([[True, False, False, False]] * 2), None]
    outs = model.forward_features(crops, masks)
    assert [o.x_norm_patchtokens.shape[:2] for o in outs] == [(2, 4), (3, 1)]
    for out, crop, mask in zip(outs, crops, masks, strict=True):
        torch.testing.assert_close(out.x_prenorm, model.forward_features(crop, mask).x_prenorm)
    with pytest.raises(TypeError):
        model.forward_features(crops, [None])


def test_intermediate_layers_last_equals_forward_features() -> None:
    torch.manual_seed(5)
    model = _float64(tiny(num_register_tokens=2, depth=3))
    x = torch.randn(2, 3, 28, 42, dtype=torch.float64)
    out = model.forward_features(x)
    (last,) = model.get_intermediate_layers(x, n=1)
    torch.testing.assert_close(last, out.x_norm_patchtokens, rtol=0, atol=0)
    pairs = model.get_intermediate_layers(x, n=[0, 2], reshape=True, return_class_token=True)
    assert len(pairs) == 2
    assert pairs[0][0].shape == (2, model.embed_dim, 2, 3)
    torch.testing.assert_close(pairs[1][1], out.x_norm_clstoken, rtol=0, atol=0)
    torch.testing.assert_close(pairs[1][0].flatten(2).transpose(1, 2), out.x_norm_patchtokens)
    raw = model.get_intermediate_layers(x, n=1, norm=False)[0]
    torch.testing.assert_close(raw, out.x_prenorm[:, 3:], rtol=0, atol=0)
    assert len(model.get_intermediate_layers(x, n=3)) == 3
    with pytest.raises(ValueError, match="out of range"):
        model.get_intermediate_layers(x, n=[3])


def test_last_self_attention_matches_block_attention() -> None:
    torch.manual_seed(6)
    model = _float64(tiny(num_register_tokens=1))
    x = torch.randn(2, 3, 28, 28, dtype=torch.float64)
    weights = model.get_last_self_attention(x)
    heads = model.num_heads
    assert weights.shape == (2, heads, 6, 6)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, heads, 6, dtype=torch.float64))
    # The weights reproduce the last block's attention output: proj(concat_h(weights_h @ v_h)).
    tokens = model.prepare_tokens_with_masks(x)
    tokens = model.blocks[0](tokens)
    last = model.blocks[1]
    assert isinstance(last, Block)
    y = last.norm1(tokens)
    v = last.attn.qkv(y).reshape(2, 6, 3, heads, -1)[:, :, 2].transpose(1, 2)  # [B, h, T, hd]
    mixed = (weights @ v).transpose(1, 2).reshape(2, 6, -1)  # [B, T, D]
    torch.testing.assert_close(last.attn.proj(mixed), last.attn(y), rtol=0, atol=1e-12)
