"""Shared fixtures for backbone tests: state dicts written from the reference key tables (§1.2, §10.1).

The synthetic state dicts are built from the documented key names and shapes, not from our model, so
loading them checks that the model matches the official layouts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import torch
from torch import Tensor

Shapes = dict[str, tuple[int, ...]]


def _ffn_hidden(dim: int, ffn: str) -> int:
    known = {384: 1024, 768: 2048, 1024: 2736, 1536: 4096}  # reference §1.1 table (SwiGLU widths)
    if ffn == "mlp":
        return 4 * dim
    return known.get(dim, ((int(4 * dim * 2 / 3) + 7) // 8) * 8)


def reference_shapes(
    dim: int, depth: int, ffn: str, grid: int, registers: int = 0, patch: int = 14
) -> Shapes:
    """Flat (DINOv2 hub) key -> shape, from the reference tables."""
    hidden = _ffn_hidden(dim, ffn)
    shapes: Shapes = {
        "cls_token": (1, 1, dim),
        "pos_embed": (1, 1 + grid * grid, dim),
        "mask_token": (1, dim),
        "patch_embed.proj.weight": (dim, 3, patch, patch),
        "patch_embed.proj.bias": (dim,),
        "norm.weight": (dim,),
        "norm.bias": (dim,),
    }
    if registers:
        shapes["register_tokens"] = (1, registers, dim)
    ffn_shapes = (
        {"mlp.fc1.weight": (hidden, dim), "mlp.fc1.bias": (hidden,), "mlp.fc2.weight": (dim, hidden)}
        if ffn == "mlp"
        else {
            "mlp.w12.weight": (2 * hidden, dim),
            "mlp.w12.bias": (2 * hidden,),
            "mlp.w3.weight": (dim, hidden),
        }
    )
    out_bias = "mlp.fc2.bias" if ffn == "mlp" else "mlp.w3.bias"
    block: Shapes = {
        "norm1.weight": (dim,),
        "norm1.bias": (dim,),
        "attn.qkv.weight": (3 * dim, dim),
        "attn.qkv.bias": (3 * dim,),
        "attn.proj.weight": (dim, dim),
        "attn.proj.bias": (dim,),
        "ls1.gamma": (dim,),
        "norm2.weight": (dim,),
        "norm2.bias": (dim,),
        **ffn_shapes,
        out_bias: (dim,),
        "ls2.gamma": (dim,),
    }
    for i in range(depth):
        shapes.update({f"blocks.{i}.{key}": shape for key, shape in block.items()})
    return shapes


def fill(shapes: Shapes, random: bool = True, seed: int = 0) -> dict[str, Tensor]:
    gen = torch.Generator().manual_seed(seed)
    if not random:
        return {key: torch.zeros(shape) for key, shape in shapes.items()}
    out = {key: 0.05 * torch.randn(shape, generator=gen) for key, shape in shapes.items()}
    for key in out:
        if key.endswith(("norm1.weight", "norm2.weight", "norm.weight")):
            out[key] += 1.0
    return out


def franca_layout(
    flat: dict[str, Tensor], depth: int, prefix: str = "backbone."
) -> dict[str, dict[str, Tensor]]:
    """Official Franca teacher checkpoint: chunked blocks (4 chunks), prefixes, DINO/iBOT head keys."""
    chunk = max(1, depth // 4)
    teacher: dict[str, Tensor] = {}
    for key, value in flat.items():
        if key.startswith("blocks."):
            _, index, rest = key.split(".", 2)
            key = f"blocks.{int(index) // chunk}.{index}.{rest}"
        teacher[prefix + key] = value
    teacher["dino_head.mlp.0.weight"] = torch.zeros(8, 4)
    teacher["ibot_head.last_layer.weight_g"] = torch.zeros(16, 1)
    return {"teacher": teacher}


@pytest.fixture
def ref_shapes() -> Callable[..., Shapes]:
    return reference_shapes


@pytest.fixture
def ref_state_dict() -> Callable[..., dict[str, Tensor]]:
    def build(*args: object, random: bool = True, seed: int = 0, **kwargs: object) -> dict[str, Tensor]:
        return fill(reference_shapes(*args, **kwargs), random=random, seed=seed)  # type: ignore[arg-type]

    return build


@pytest.fixture
def to_franca_layout() -> Callable[..., dict[str, dict[str, Tensor]]]:
    return franca_layout


@pytest.fixture(autouse=True)
def _single_thread() -> Iterator[None]:
    """Tiny tensors: one intra-op thread avoids OpenMP spin contention on small shared CPUs (100x here)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
