"""Loading a backbone by hub name, NAME=FILE or bare file; identities that key the feature cache."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from franca_core.evaluation.backbone import (
    load_backbone,
    output_field,
    parameters_identity,
    parse_backbone_spec,
)


def test_parse_backbone_spec(tmp_path: Path) -> None:
    ckpt = tmp_path / "w.pth"
    ckpt.write_bytes(b"")
    assert parse_backbone_spec("dinov2_vits14", None) == ("dinov2_vits14", None)
    assert parse_backbone_spec(f"franca_vitb14={ckpt}", None) == ("franca_vitb14", ckpt)
    assert parse_backbone_spec(str(ckpt), None) == (None, ckpt)
    assert parse_backbone_spec(str(ckpt), "franca_vitl14") == ("franca_vitl14", ckpt)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        parse_backbone_spec(str(tmp_path / "missing.pth"), None)


def test_bare_official_file_loads_to_identical_features(
    tiny_backbone: torch.nn.Module, tmp_path: Path
) -> None:
    pretrained = pytest.importorskip("franca_core.models.pretrained")
    ckpt = tmp_path / "teacher.pth"
    pretrained.save_franca_checkpoint(tiny_backbone, ckpt)
    loaded = load_backbone(str(ckpt))
    x = torch.randn(2, 3, 56, 56)
    with torch.no_grad():
        a, b = tiny_backbone.forward_features(x), loaded.model.forward_features(x)  # type: ignore[operator]
    torch.testing.assert_close(output_field(a, "x_norm_patchtokens"), output_field(b, "x_norm_patchtokens"))
    assert loaded.identity != load_backbone(str(ckpt), img_size=56).identity
    with pytest.raises(ValueError, match="bare checkpoint files"):
        load_backbone(f"dinov2_vits14={ckpt}", num_heads=2)


def test_random_init_identity_follows_the_values(tiny_backbone: torch.nn.Module) -> None:
    other = pytest.importorskip("franca_core.models.factory").build_backbone(
        "vit_small", embed_dim=128, depth=2, num_heads=2, img_size=112
    )
    assert parameters_identity(tiny_backbone) == parameters_identity(tiny_backbone)
    assert parameters_identity(tiny_backbone) != parameters_identity(other)
