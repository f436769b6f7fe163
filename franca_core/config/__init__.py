"""Typed stage configs (pydantic, frozen, extra='forbid') and presets as code."""

from franca_core.config.loading import ConfigError, load_config
from franca_core.config.presets import PRESETS
from franca_core.config.pretrain import DataConfig, Derived, PretrainConfig, RuntimeConfig, derived

__all__ = [
    "PRESETS",
    "ConfigError",
    "DataConfig",
    "Derived",
    "PretrainConfig",
    "RuntimeConfig",
    "derived",
    "load_config",
]
