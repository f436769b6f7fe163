"""Tests for the Matryoshka projection heads (franca_core/heads; reference §3.1)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from franca_core.heads import (
    DINOHead,
    MatryoshkaHead,
    WeightNormPrototypes,
    build_head,
    count_parameters,
    head_parameter_count,
    nesting_dims,
    prototype_counts,
)

D, K, HIDDEN, BOTTLENECK = 64, 256, 32, 16
MODES = ["project", "slice_project", "slice", "shared"]


def small_head(mode: str, **kwargs: object) -> MatryoshkaHead:
    torch.manual_seed(0)
    return MatryoshkaHead(D, K, mode=mode, hidden_dim=HIDDEN, bottleneck_dim=BOTTLENECK, **kwargs)  # type: ignore[arg-type]


def test_nesting_and_prototype_counts() -> None:
    assert nesting_dims(768) == (48, 96, 192, 384, 768)
    assert nesting_dims(1024, 3) == (256, 512, 1024)
    assert prototype_counts(131072, nesting_dims(768), 768) == (8192, 16384, 32768, 65536, 131072)
    with pytest.raises(ValueError):
        nesting_dims(100, 5)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape", [(3, D), (2, 5, D)])
def test_output_shapes(mode: str, shape: tuple[int, ...]) -> None:
    head = small_head(mode)
    out = head(torch.randn(*shape))
    assert isinstance(out, tuple) and len(out) == 5
    assert head.n_prototypes == tuple(K * m // D for m in head.nesting) == (16, 32, 64, 128, 256)
    for logits, k in zip(out, head.n_prototypes):
        assert logits.shape == (*shape[:-1], k)


def test_custom_nesting_list() -> None:
    head = MatryoshkaHead(D, K, nesting=[16, 64], hidden_dim=HIDDEN, bottleneck_dim=BOTTLENECK)
    assert [o.shape[-1] for o in head(torch.randn(2, D))] == [64, 256]
    with pytest.raises(ValueError):
        MatryoshkaHead(D, K, nesting=[32, 16])
    with pytest.raises(ValueError):
        MatryoshkaHead(D, K, nesting=[32, 128], mode="slice")


def official_keys(
    in_dim: int, out_dim: int, hidden: int, bottleneck: int, square: bool
) -> dict[str, tuple[int, ...]]:
    """Official MRLDINOHead key -> shape table (reference §3.1); ``square``: the 7a1acd projection."""
    shapes: dict[str, tuple[int, ...]] = {}
    for i, m in enumerate(nesting_dims(in_dim)):
        k = int(out_dim * m / in_dim)
        shapes[f"matryoshka_projections.{i}.weight"] = (m, m if square else in_dim)
        shapes[f"matryoshka_projections.{i}.bias"] = (m,)
        for j, (rows, cols) in zip((0, 2, 4), ((hidden, m), (hidden, hidden), (bottleneck, hidden))):
            shapes[f"mlps.{i}.{j}.weight"] = (rows, cols)
            shapes[f"mlps.{i}.{j}.bias"] = (rows,)
        shapes[f"last_layers.{i}.weight_g"] = (k, 1)
        shapes[f"last_layers.{i}.weight_v"] = (k, bottleneck)
    return shapes


@pytest.mark.parametrize("mode", ["project", "slice_project"])
def test_official_key_names_small(mode: str) -> None:
    head = small_head(mode)
    got = {k: tuple(v.shape) for k, v in head.state_dict().items()}
    assert got == official_keys(D, K, HIDDEN, BOTTLENECK, square=mode == "slice_project")


def test_official_key_names_vit_b_real_size_on_meta() -> None:
    with torch.device("meta"):
        head = MatryoshkaHead(768, 131072, bottleneck_dim=384)
    got = {k: tuple(v.shape) for k, v in head.state_dict().items()}
    assert got == official_keys(768, 131072, 2048, 384, square=False)
    assert count_parameters(head) == head_parameter_count("project", 768, 131072) == 126_889_296


def test_official_state_dict_loads_and_matches_manual_forward() -> None:
    torch.manual_seed(1)
    shapes = official_keys(D, K, HIDDEN, BOTTLENECK, square=False)
    state = {k: torch.randn(s, dtype=torch.float64) for k, s in shapes.items()}
    head = small_head("project").double()
    head.load_state_dict(state, strict=True)
    x = torch.randn(4, D, dtype=torch.float64)
    for i, logits in enumerate(head(x)):
        h = x @ state[f"matryoshka_projections.{i}.weight"].t() + state[f"matryoshka_projections.{i}.bias"]
        for j in (0, 2, 4):
            h = nn.functional.gelu(h @ state[f"mlps.{i}.{j}.weight"].t() + state[f"mlps.{i}.{j}.bias"])
        v, g = state[f"last_layers.{i}.weight_v"], state[f"last_layers.{i}.weight_g"]
        torch.testing.assert_close(logits, h @ (g * v / v.norm(dim=1, keepdim=True)).t())


def test_prototypes_match_torch_weight_norm_and_load_its_keys() -> None:
    torch.manual_seed(2)
    reference = nn.utils.parametrizations.weight_norm(nn.Linear(BOTTLENECK, 12, bias=False))
    protos = WeightNormPrototypes(BOTTLENECK, 12)
    protos.load_state_dict(reference.state_dict())  # parametrizations.weight.original{0,1} keys
    x = torch.randn(5, BOTTLENECK)
    torch.testing.assert_close(protos(x), reference(x))
    folded = WeightNormPrototypes(BOTTLENECK, 12)
    folded.load_state_dict({"weight": reference.weight.detach()})  # a checkpoint with weight norm removed
    torch.testing.assert_close(folded(x), reference(x))


def test_shared_mode_has_far_fewer_parameters() -> None:
    project = head_parameter_count("project", 768, 131072)
    shared = head_parameter_count("shared", 768, 131072)
    assert shared < 0.5 * project
    assert count_parameters(small_head("shared")) < count_parameters(small_head("project"))
    assert {k for k in small_head("shared").state_dict()} == {
        *(f"mlp.{j}.{p}" for j in (0, 2, 4) for p in ("weight", "bias")),
        "last_layer.weight_g",
        "last_layer.weight_v",
    }


@pytest.mark.parametrize("mode", ["slice", "shared", "slice_project"])
def test_sliced_levels_depend_only_on_their_prefix(mode: str) -> None:
    head = small_head(mode)
    for level, m in enumerate(head.nesting):
        x = torch.randn(3, D, requires_grad=True)
        head(x)[level].pow(2).sum().backward()
        assert x.grad is not None
        assert torch.all(x.grad[:, m:] == 0)
        assert x.grad[:, :m].abs().max() > 0


def test_project_levels_read_the_full_embedding() -> None:
    x = torch.randn(3, D, requires_grad=True)
    small_head("project")(x)[0].pow(2).sum().backward()
    assert x.grad is not None and x.grad[:, D // 16 :].abs().max() > 0


def test_shared_mode_equals_zero_padded_prefix() -> None:
    head = small_head("shared")
    x = torch.randn(3, D)
    for level, (m, k) in enumerate(zip(head.nesting, head.n_prototypes)):
        padded = torch.cat([x[:, :m], torch.zeros(3, D - m)], dim=1)
        full = head.last_layer(head.mlp(padded))  # all K prototypes of the shared matrix
        torch.testing.assert_close(head(x)[level], full[:, :k])


def test_init_follows_official_head() -> None:
    head = small_head("project")
    for name, p in head.named_parameters():
        if name.endswith("weight_g"):
            assert bool((p == 1).all())
        elif name.endswith("weight_v"):
            assert p.abs().max() <= BOTTLENECK**-0.5  # torch Linear default (kaiming-uniform) bound
        elif name.endswith("bias"):
            assert torch.all(p == 0)
    assert head.get_parameter("mlps.4.2.weight").std().item() == pytest.approx(0.02, rel=0.1)


@pytest.mark.parametrize("freeze", [False, True])
def test_weight_g_trainable_like_dinov2_or_frozen_on_request(freeze: bool) -> None:
    head = small_head("project", freeze_weight_g=freeze)
    opt = torch.optim.SGD([p for p in head.parameters() if p.requires_grad], lr=1.0)
    head(torch.randn(4, D))[-1].pow(2).sum().backward()
    opt.step()
    g = head.get_parameter("last_layers.4.weight_g")
    assert g.requires_grad is not freeze
    assert bool(torch.all(g == 1)) is freeze  # frozen: still 1; official: trained away from 1


@pytest.mark.parametrize("l2_norm", [False, True])
def test_l2_norm_flag_bounds_logits(l2_norm: bool) -> None:
    head = small_head("project", l2_norm_bottleneck=l2_norm)
    with torch.no_grad():
        for level in range(head.n_levels):
            head.get_parameter(f"mlps.{level}.4.weight").mul_(1e4)  # a large bottleneck
    largest = max(o.abs().max().item() for o in head(torch.randn(6, D)))
    assert (largest <= 1 + 1e-5) is l2_norm  # official (False): logits are not bounded by |g| = 1


def test_dinov2_head_baseline() -> None:
    torch.manual_seed(0)
    head = DINOHead(D, K, hidden_dim=HIDDEN, bottleneck_dim=BOTTLENECK)
    out = head(10 * torch.randn(2, 7, D))
    assert isinstance(out, tuple) and len(out) == 1 and out[0].shape == (2, 7, K)
    assert out[0].abs().max() <= 1 + 1e-5  # L2-normalised bottleneck, unit prototypes
    assert set(head.state_dict()) == {
        *(f"mlp.{j}.{p}" for j in (0, 2, 4) for p in ("weight", "bias")),
        "last_layer.weight_g",
        "last_layer.weight_v",
    }
    assert isinstance(head.mlp, nn.Sequential)
    assert isinstance(head.mlp[-1], nn.Linear)  # no GELU after the bottleneck


@pytest.mark.parametrize("mode", [*MODES, "none"])
def test_build_head(mode: str) -> None:
    head = build_head(mode, D, K, n_levels=3, hidden_dim=HIDDEN, bottleneck_dim=BOTTLENECK)  # type: ignore[arg-type]
    out = head(torch.randn(2, D))
    assert len(out) == head.n_levels == (1 if mode == "none" else 3)
    assert tuple(o.shape[-1] for o in out) == head.n_prototypes
    with pytest.raises(ValueError):
        build_head("bogus", D, K)  # type: ignore[arg-type]


def test_nlayers_one_uses_bare_linear_like_official() -> None:
    head = MatryoshkaHead(D, K, nlayers=1, bottleneck_dim=BOTTLENECK)
    assert "mlps.0.weight" in head.state_dict()
    assert head(torch.randn(2, D))[-1].shape == (2, K)
