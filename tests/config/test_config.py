"""Stage configs: presets validate, overrides are checked, derived values and HRFT stages are right."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from franca_core.config import PRESETS, ConfigError, PretrainConfig, apply_overrides, derived, load_config
from franca_core.config.highres import HIGHRES_STAGES, highres_stage


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_validates_and_round_trips(name: str) -> None:
    cfg = PRESETS[name]()
    assert PretrainConfig.model_validate_json(cfg.model_dump_json()) == cfg


def test_paper_presets_follow_the_reference_table() -> None:
    b = PRESETS["vitb14_in21k"]()
    assert (b.backbone.arch, b.backbone.drop_path_rate, b.optim.base_lr) == ("vit_base", 0.1, 7.01e-4)
    assert (b.optim.total_iters, b.optim.warmup_iters) == (800 * 1250, 128 * 1250)
    laion = PRESETS["vitl14_laion"]()
    assert laion.crops.global_scale == (0.48, 1.0) and laion.optim.base_lr == 1.0e-3
    g = PRESETS["vitg14_laion"]()
    assert g.crops.local_scale == (0.05, 0.45) and g.backbone.arch == "vit_giant2"


def test_lr_is_scaled_by_the_square_root_of_the_global_batch() -> None:
    cfg = PRESETS["vitb14_in21k"]()
    d = derived(cfg, world_size=64)
    assert d.global_batch == 2048
    assert math.isclose(d.lr, 7.01e-4 * math.sqrt(2)) and d.max_steps == cfg.optim.total_iters
    assert cfg.optim.base_lr == 7.01e-4  # never written back


def test_unknown_override_key_names_the_valid_keys() -> None:
    with pytest.raises(ConfigError, match=r"unknown config key 'optim.bse_lr'.*base_lr"):
        load_config(PretrainConfig, "debug", PRESETS, ["optim.bse_lr=1e-3"])


def test_overrides_are_validated() -> None:
    cfg = load_config(
        PretrainConfig, "debug", PRESETS, ["runtime.max_steps=7", "crops.global_scale=[0.4,1.0]"]
    )
    assert cfg.runtime.max_steps == 7 and cfg.crops.global_scale == (0.4, 1.0)
    with pytest.raises(ConfigError, match="invalid config"):
        apply_overrides(cfg, ["data.batch_size_per_rank=0"])


def test_yaml_config_and_bad_source(tmp_path: Path) -> None:
    path = tmp_path / "cfg.yaml"
    path.write_text("name: mine\noptim:\n  base_lr: 0.01\n")
    assert load_config(PretrainConfig, str(path), PRESETS).optim.base_lr == 0.01
    with pytest.raises(ConfigError, match="neither a preset"):
        load_config(PretrainConfig, str(tmp_path / "missing.yaml"), PRESETS)


def test_highres_stages_resize_crops_and_compress_schedules(tmp_path: Path) -> None:
    base = PRESETS["vitb14_in21k"]()
    first = highres_stage(base, 0, init_from=tmp_path)
    second = highres_stage(base, 1, init_from=tmp_path / "hr364")
    assert [(s.global_size, s.local_size) for s in HIGHRES_STAGES] == [(364, 112), (518, 168)]
    assert (first.crops.global_size, first.crops.local_size) == (364, 112)
    assert (second.crops.global_size, second.crops.local_size) == (518, 168)
    for stage in (first, second):
        assert stage.optim.base_lr == 7.05e-5 and stage.data.batch_size_per_rank == 32
        assert stage.optim.total_iters == 10_000 and stage.optim.warmup_iters == 5_000
        assert stage.teacher.temp_warmup_iters == 3_000 and stage.backbone.drop_path_rate == 0.1
    assert second.init_from == tmp_path / "hr364" and first.name == "vitb14_in21k_hr364"
    assert highres_stage(PRESETS["vitl14_in21k"](), 0, tmp_path).optim.base_lr == 1.51e-5
