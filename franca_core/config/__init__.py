"""Typed stage configs (pydantic, frozen, extra='forbid') and presets as code."""

from franca_core.config.loading import ConfigError, apply_overrides, config_from_json, load_config
from franca_core.config.presets import PRESETS
from franca_core.config.pretrain import DataConfig, Derived, PretrainConfig, RuntimeConfig, derived

__all__ = [
    "PRESETS",
    "ConfigError",
    "DataConfig",
    "Derived",
    "PretrainConfig",
    "RuntimeConfig",
    "apply_overrides",
    "config_from_json",
    "derived",
    "load_config",
]
