"""CUDA checks of the backbone (skipped without a GPU): kernels agree, bf16 autocast runs."""

from __future__ import annotations

import pytest
import torch

from franca_core.models import build_backbone

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]


def test_cuda_kernels_agree_and_autocast_runs() -> None:
    torch.manual_seed(0)
    model = build_backbone("vit_small", depth=2, img_size=56, ffn="swiglu").cuda().eval()
    x = torch.randn(4, 3, 56, 84, device="cuda")
    outputs = {}
    with torch.no_grad():
        for backend in ("auto", "sdpa", "eager"):
            model.set_attention_backend(backend)  # type: ignore[arg-type]
            outputs[backend] = model.forward_features(x).x_prenorm
        with torch.autocast("cuda", dtype=torch.bfloat16):
            half = model.forward_features(x).x_norm_patchtokens
    torch.testing.assert_close(outputs["auto"], outputs["eager"], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(outputs["sdpa"], outputs["eager"], rtol=1e-4, atol=1e-4)
    assert half.shape == (4, 24, 384) and torch.isfinite(half).all()
