"""Typed validation of backend options (``sight_range=0``, ``shared_reward=true``, ...)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from marlrepro.errors import ConfigError


def check_options(
    env_name: str, options: Mapping[str, Any], allowed: Mapping[str, tuple[type, Any]]
) -> dict[str, Any]:
    """Return ``options`` completed with defaults, after checking names and types.

    ``allowed`` maps each option name to ``(type, default)``; a default of None makes the option
    optional (None stays None). An int is accepted where a float is expected; a bool is never
    accepted as a number.
    """
    resolved: dict[str, Any] = {}
    for key in options:
        if key not in allowed:
            valid = ", ".join(sorted(allowed)) or "(this environment takes no options)"
            raise ConfigError(f"env.options.{key}: unknown option for {env_name}; valid options: {valid}")
    for key, (kind, default) in allowed.items():
        value = options.get(key, default)
        if value is None and default is None:
            resolved[key] = None
            continue
        ok = isinstance(value, kind) and not (kind is not bool and isinstance(value, bool))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if not ok:
            raise ConfigError(
                f"env.options.{key}: expected {kind.__name__} for {env_name}, "
                f"got {type(value).__name__} {value!r}"
            )
        resolved[key] = value
    return resolved
