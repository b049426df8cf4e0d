"""User-facing errors: raised before any compute, naming the field, the problem and the choices."""

from __future__ import annotations

from collections.abc import Iterable


class ConfigError(ValueError):
    """A configuration value, name or file is invalid."""


def unknown_choice(field: str, value: object, choices: Iterable[str]) -> ConfigError:
    """Build the error for ``value`` not being one of ``choices`` in ``field``."""
    valid = ", ".join(sorted(choices))
    return ConfigError(f"{field}: unknown value {value!r}; valid choices are: {valid}")
