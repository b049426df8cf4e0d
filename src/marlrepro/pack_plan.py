"""``marlrepro train --pack KEY=V1,V2,...``: the runs of one pack, each checked before any compute.

A pack is several runs that share every setting but one config key, trained in one process. The
workflow packs the seeds of one (paper, experiment, env, algo) cell
(:class:`marlrepro.experiments.Pack`):

    marlrepro train --config config/algos/qmix.yaml --set env.name=smax:8m ... \\
        --set tracking.run_name=igm_da/sight0/smax-8m/qmix/seed{run.seed} \\
        --pack run.seed=0,1,2 --out 'results/runs/igm_da/sight0/smax-8m/qmix/seed{run.seed}'

``--pack`` names ONE config key and its values, comma separated, each read as YAML like a ``--set``
value (so a value cannot hold a comma). Member ``i`` is the run that ``marlrepro train`` would make
of the same ``--config`` files and ``--set`` overrides followed by ``--set KEY=Vi``, where the
placeholder ``{KEY}`` (the key itself in braces, e.g. ``{run.seed}``) in ``--out`` and in every
``--set`` value is replaced by ``Vi`` as written. With more than one value ``--out`` must hold the
placeholder, so that every member writes its own run directory.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from marlrepro.config import TrainConfig, check_settings, load_config, parse_override
from marlrepro.errors import ConfigError, located

# A leftover ``{dotted.name}`` in a member's directory: a placeholder of another key (a typo).
_PLACEHOLDER = re.compile(r"\{[A-Za-z_][\w.]*\}")


@dataclass(frozen=True)
class PackMember:
    """One run of a pack: its resolved config and its run directory."""

    config: TrainConfig
    run_dir: Path


def parse_pack(text: str) -> tuple[str, list[str]]:
    """``KEY=V1,V2,...`` -> ``(KEY, [V1, V2, ...])``, the values as written; the key and the type of
    every value checked against :class:`~marlrepro.config.TrainConfig`."""
    key, sep, raw = text.partition("=")
    key, values = key.strip(), [value.strip() for value in raw.split(",")]
    if not sep or not key or not raw.strip():
        raise ConfigError(f"--pack {text!r}: expected KEY=V1,V2,... with one config key, e.g. run.seed=0,1,2")
    if "" in values:
        raise ConfigError(f"--pack {text!r}: empty value at position {values.index('') + 1}; "
                          f"values are separated by single commas, e.g. run.seed=0,1,2")
    parsed = []
    for value in values:
        setting = parse_override(f"{key}={value}")
        check_settings("--pack ", setting)
        if setting in parsed:
            raise ConfigError(f"--pack {key}: value {value!r} is given twice; every run of a pack needs its own value")
        parsed.append(setting)
    return key, values


def expand_pack(
    config_files: Sequence[str | Path], overrides: Sequence[str], out_template: str, pack_arg: str
) -> list[PackMember]:
    """The members of ``marlrepro train --config <config_files> --set <overrides> --pack <pack_arg>
    --out <out_template>``, in the order of the ``--pack`` values, each config loaded and checked
    as ``marlrepro train`` checks one (:func:`~marlrepro.config.load_config`). Raises
    :class:`ConfigError` for a bad key or value, an ``--out`` without the placeholder, or two
    members sharing a run directory."""
    key, values = parse_pack(pack_arg)
    placeholder = "{" + key + "}"
    if len(values) > 1 and placeholder not in out_template:
        raise ConfigError(
            f"--out {out_template!r}: must contain the placeholder {placeholder} when --pack gives "
            f"{len(values)} values, so that every run writes its own directory, e.g. --out 'runs/seed{placeholder}'"
        )
    members: list[PackMember] = []
    for value in values:
        run_dir = out_template.replace(placeholder, value)
        stray = _PLACEHOLDER.search(run_dir)
        if stray:
            raise ConfigError(f"--out {out_template!r}: unknown placeholder {stray[0]}; the only placeholder "
                              f"is {placeholder}, the key of --pack")
        member_overrides = [*(_fill(text, placeholder, value) for text in overrides), f"{key}={value}"]
        with located(f"--pack {key}={value}"):
            config = load_config(config_files, member_overrides)
        members.append(PackMember(config, Path(run_dir)))
    seen: dict[Path, str] = {}
    for value, member in zip(values, members, strict=True):
        other = seen.setdefault(member.run_dir.resolve(), value)
        if other != value:
            raise ConfigError(f"--out {out_template!r}: the runs {key}={other} and {key}={value} would both "
                              f"write to {member.run_dir}; every run of a pack needs its own directory")
    return members


def _fill(override: str, placeholder: str, value: str) -> str:
    """``--set`` text ``key=value`` with ``placeholder`` in its value replaced by ``value``."""
    key, sep, text = override.partition("=")
    return key + sep + text.replace(placeholder, value)
