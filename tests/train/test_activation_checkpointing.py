"""``runtime.activation_checkpointing``: far fewer saved activations, the same training."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from franca_core.config import PretrainConfig
from franca_core.models import build_backbone
from franca_core.train.checkpoint import load_checkpoint
from franca_core.train.engine import pretrain


def saved_activation_bytes(enabled: bool) -> tuple[int, torch.Tensor]:
    """Bytes autograd keeps for backward during one forward, and the input gradient after backward."""
    torch.manual_seed(0)
    model = build_backbone("vit_small", embed_dim=32, depth=4, num_heads=2, drop_path_rate=0.4).train()
    model.set_activation_checkpointing(enabled)
    x = torch.randn(8, 3, 42, 42, requires_grad=True)
    total = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    torch.manual_seed(1)  # same drop-path draws in both runs
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model.forward_features(x).x_norm_patchtokens.square().sum()
    out.backward()
    assert x.grad is not None
    return total, x.grad


def test_checkpointed_blocks_keep_a_third_of_the_activations_and_same_gradients() -> None:
    plain, grad_plain = saved_activation_bytes(False)
    recomputed, grad_recomputed = saved_activation_bytes(True)
    assert recomputed < 0.4 * plain, (recomputed, plain)
    # Recomputation replays the RNG, so the batch-subset drop path draws the same samples.
    assert torch.equal(grad_plain, grad_recomputed)


def test_training_with_checkpointing_is_bitwise_unchanged(
    tmp_path: Path, tiny_config: Callable[..., PretrainConfig]
) -> None:
    steps = ("runtime.max_steps=3", "backbone.drop_path_rate=0.4", "runtime.checkpoint_every=3")
    plain = pretrain(tiny_config(*steps), tmp_path / "plain")
    recomputed = pretrain(tiny_config(*steps, "runtime.activation_checkpointing=true"), tmp_path / "ac")
    a = load_checkpoint(tmp_path / "plain" / plain.last_checkpoint)
    b = load_checkpoint(tmp_path / "ac" / recomputed.last_checkpoint)
    for key, value in a.student.items():
        assert torch.equal(value, b.student[key]), key
    assert plain.final_losses == recomputed.final_losses
