"""Workflow config files checked against their JSON schemas (``workflow/schemas/``), with short errors.

jsonschema's own messages print the whole failing schema. These name the file and the key path
(``config/igm_da.yaml: experiments.sight0.envs[2]``), what is wrong and the valid choices, one
line per problem, every problem of the file at once. Defaults that the schema declares are filled
in, as Snakemake's ``validate`` does.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from jsonschema import ValidationError
from jsonschema.validators import validator_for

from marlrepro.config import read_yaml_mapping
from marlrepro.errors import ConfigError, unknown_choice
from marlrepro.io_utils import load_yaml

_JSON_TYPES = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "null": "null",
}


def load_checked(path: str | Path, schema: str | Path) -> dict[str, Any]:
    """Read the YAML file ``path`` and check it against ``schema`` (defaults filled in)."""
    return check_schema(read_yaml_mapping(path), schema, str(path))


def check_schema(data: dict[str, Any], schema: str | Path, where: str) -> dict[str, Any]:
    """Check ``data`` against the JSON schema file ``schema``; fill in its defaults and return it.

    Raises :class:`ConfigError`, one line per problem, each starting ``where: <key path>``.
    """
    rules = load_yaml(Path(schema).read_text())
    errors = validator_for(rules)(rules).iter_errors(data)
    lines = sorted({line for error in errors for line in _describe(where, error)})
    if lines:
        raise ConfigError("\n".join(lines))
    _fill_defaults(data, rules)
    return data


def _key_path(parts: Iterable[str | int]) -> str:
    """``['experiments', 'sight0', 'envs', 2]`` -> ``experiments.sight0.envs[2]``."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text


def _show(value: Any, width: int = 60) -> str:
    """``repr(value)``, cut to ``width`` characters."""
    text = repr(value)
    return text if len(text) <= width else f"{text[: width - 3]}..."


def _describe(where: str, error: ValidationError) -> list[str]:
    """The lines for one schema violation (one per unknown key, else one)."""
    path = _key_path(error.absolute_path)
    field = f"{where}: {path}" if path else where
    if error.validator == "additionalProperties" and error.validator_value is False:
        return _unknown_keys(field, path, error.instance, error.schema)
    return [_problem(field, error)]


def _problem(field: str, error: ValidationError) -> str:
    """What is wrong at ``field``, for any violation but unknown keys."""
    value, rule, schema = error.instance, error.validator_value, error.schema
    if "propertyNames" in error.relative_schema_path:
        return f"{field}: key {value!r} does not match {rule!r}"
    if error.validator == "enum":
        return str(unknown_choice(field, value, rule))
    if error.validator == "type":
        expected = " or ".join(_JSON_TYPES[kind] for kind in ([rule] if isinstance(rule, str) else rule))
        return f"{field}: expected {expected}, got {type(value).__name__} {_show(value)}"
    if error.validator == "required":
        missing = [key for key in rule if key not in value]
        return f"{field}: missing key{'s' * (len(missing) > 1)} {', '.join(missing)}"
    if error.validator == "minimum":
        return f"{field}: must be >= {rule}, got {value!r}"
    if error.validator == "pattern":
        described = f" ({schema['description']})" if "description" in schema else ""
        return f"{field}: {value!r} does not match {rule!r}{described}"
    return f"{field}: {error.message}"


def _unknown_keys(field: str, path: str, value: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    """One line per key of ``value`` that the schema does not allow."""
    allowed = list(schema.get("properties", {}))
    patterns = list(schema.get("patternProperties", {}))
    others = f" (or a key matching {', '.join(patterns)})" if patterns else ""
    prefix = f"{field}." if path else f"{field}: "
    return [
        f"{unknown_choice(f'{prefix}{key}', key, allowed, what='key')}{others}"
        for key in value
        if key not in allowed and not any(re.search(pattern, key) for pattern in patterns)
    ]


def _fill_defaults(data: Any, schema: dict[str, Any]) -> None:
    """Set the ``default`` of every absent property, recursively (``data`` already validated)."""
    if not isinstance(data, dict):
        return
    properties = schema.get("properties", {})
    for key, rules in properties.items():
        if key not in data and "default" in rules:
            data[key] = copy.deepcopy(rules["default"])
        if key in data:
            _fill_defaults(data[key], rules)
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        for key, value in data.items():
            if key not in properties:
                _fill_defaults(value, extra)
