"""User-facing errors: raised before any compute, naming the field, the problem and the choices."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager


class ConfigError(ValueError):
    """A configuration value, name or file is invalid."""


class CheckpointError(ConfigError):
    """A run directory's checkpoint cannot be read. The command line reports it as it reports a
    :class:`ConfigError` (status 2): the message names the file, the problem and what to do."""


class PolicyFileError(ConfigError):
    """A policy file (:mod:`marlrepro.policy_file`) cannot be written, read or used with an
    environment: the message names the file, the problem and what to do (status 2 on the command
    line, as a :class:`ConfigError`)."""


class DemoFileError(ConfigError):
    """A demonstration file (:mod:`marlrepro.demos`) cannot be written, read or used for a run: the
    message names the file, the problem and what to do (status 2 on the command line, as a
    :class:`ConfigError`)."""


def did_you_mean(value: object, choices: Iterable[object]) -> str:
    """`` (did you mean 'x'?)`` for the choice closest to ``value``; empty when none is close."""
    close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1, cutoff=0.7)
    return f" (did you mean {close[0]!r}?)" if close else ""


def unknown_choice(field: str, value: object, choices: Iterable[object], what: str = "value") -> ConfigError:
    """Build the error for ``value`` not being one of ``choices`` in ``field``.

    ``what`` names the kind of thing (``key``, ``smax scenario``, ...):
    ``learner.lrr: unknown key 'lrr' (did you mean 'lr'?); valid choices are: batch_size, ...``.
    """
    choices = sorted(str(c) for c in choices)
    hint = did_you_mean(value, choices)
    return ConfigError(f"{field}: unknown {what} {value!r}{hint}; valid choices are: {', '.join(choices)}")


@contextmanager
def located(where: str, error: type[ConfigError] | None = None) -> Iterator[None]:
    """Prefix the message of a :class:`ConfigError` raised inside with ``where: ``; the error
    becomes an ``error`` where given, else keeps its class."""
    try:
        yield
    except ConfigError as err:
        raise (error or type(err))(f"{where}: {err}") from None
