"""Load a stage config from a preset name or a YAML file, then apply ``key=value`` overrides.

Overrides use dotted paths (``optim.base_lr=1e-3``, ``crops.global_scale=[0.4,1.0]``); values
are parsed as YAML scalars or lists. An unknown key is an error that lists the valid keys at
that level, so a typo never silently runs the default.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

T = TypeVar("T", bound=BaseModel)


class ConfigError(ValueError):
    """A config could not be built: unknown preset, bad file, bad override."""


def parse_overrides(pairs: Sequence[str]) -> dict[str, Any]:
    """Turn ``["a.b=1", "c=[1,2]"]`` into a nested dict ``{"a": {"b": 1}, "c": [1, 2]}``."""
    nested: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"override {pair!r} is not of the form key=value")
        key, raw = pair.split("=", 1)
        node = nested
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = yaml.safe_load(raw)
    return nested


def _check_keys(model: type[BaseModel], values: Mapping[str, Any], where: str) -> None:
    fields = model.model_fields
    for key, value in values.items():
        if key not in fields:
            valid = ", ".join(sorted(fields))
            raise ConfigError(f"unknown config key '{where}{key}'; valid keys here: {valid}")
        annotation = fields[key].annotation
        if isinstance(value, Mapping) and isinstance(annotation, type) and issubclass(annotation, BaseModel):
            _check_keys(annotation, value, f"{where}{key}.")


def _merge(base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def load_config(
    model: type[T], source: str, presets: Mapping[str, Callable[[], T]], overrides: Sequence[str] = ()
) -> T:
    """Build ``model`` from a preset name or YAML path, then apply dotted overrides."""
    if source in presets:
        data = presets[source]().model_dump(mode="json")
    elif Path(source).is_file():
        loaded = yaml.safe_load(Path(source).read_text())
        if not isinstance(loaded, dict):
            raise ConfigError(f"{source}: expected a mapping at the top level")
        _check_keys(model, loaded, "")
        data = loaded
    else:
        raise ConfigError(f"{source!r} is neither a preset ({', '.join(presets)}) nor an existing YAML file")
    return _validated(model, data, overrides)


def _validated(model: type[T], data: dict[str, Any], overrides: Sequence[str]) -> T:
    update = parse_overrides(overrides)
    _check_keys(model, update, "")
    try:
        return model.model_validate(_merge(data, update))
    except ValidationError as err:
        raise ConfigError(f"invalid config: {err}") from err


def apply_overrides(config: T, overrides: Sequence[str] = ()) -> T:
    """``config`` with dotted ``key=value`` overrides applied and the result validated again."""
    return _validated(type(config), config.model_dump(mode="json"), overrides)


def config_from_json(model: type[T], text: str) -> T:
    """A config saved as JSON (a run's ``config.json``), validated."""
    try:
        return model.model_validate_json(text)
    except ValidationError as err:
        raise ConfigError(f"invalid saved config: {err}") from err
