"""The papers' own numbers, transcribed into ``config/published/<paper>.yaml``, loaded with checks.

Every file names its ``source`` (which must say "published"), so that a table built from it can
never pass off transcribed numbers as ours or ours as the paper's.
"""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from marlrepro.errors import ConfigError
from marlrepro.io_utils import load_yaml


@dataclass(frozen=True)
class PublishedMatrixMethod:
    """One method's entry in a published matrix-game table: its Q_tot and, where printed, its policy."""

    label: str
    q_tot: np.ndarray
    greedy_joint_action: tuple[str, ...] | None
    greedy_payoff: float | None
    policies: dict[str, tuple[float, ...]]


@dataclass(frozen=True)
class PublishedMatrixGame:
    """A published one-step matrix game: its payoff and each method's learned values."""

    source: str
    cite: str
    actions: tuple[str, ...]
    payoff: np.ndarray
    methods: dict[str, PublishedMatrixMethod]

    @property
    def optimal_payoff(self) -> float:
        """The best payoff of the game."""
        return float(self.payoff.max())


@functools.lru_cache(maxsize=16)
def _parsed(text: str) -> Any:
    """The YAML ``text`` parsed, once per text in a process (the workflow reads each published file
    for many rules while it plans; callers get deep copies)."""
    return load_yaml(text)


def load_published(path: str | Path) -> dict[str, Any]:
    """Read ``path`` and check it is a mapping whose ``source`` says "published"."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    data = copy.deepcopy(_parsed(path.read_text()))
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    source = data.get("source")
    if not isinstance(source, str) or "published" not in source:
        raise ConfigError(f"{path}: 'source' must name the paper and table and say 'published', got {source!r}")
    return dict(data)


def _table(path: str | Path, table: str, kind: str, key: str) -> tuple[dict[str, Any], Mapping[str, Any]]:
    """The published file ``path`` and its table ``table`` (a key under ``tables``), which must be
    of ``kind`` (a table of that kind has the field ``key``)."""
    data = load_published(path)
    tables = data.get("tables", {})
    if table not in tables:
        raise ConfigError(f"{path}: no table {table!r}; tables: {', '.join(sorted(tables))}")
    spec = _mapping(f"{path}: tables.{table}", tables[table])
    if key not in spec:
        of_kind = sorted(name for name, t in tables.items() if isinstance(t, Mapping) and key in t)
        raise ConfigError(f"{path}: tables.{table} is not a {kind} (it has no {key!r}); the {kind}s: "
                          f"{', '.join(of_kind) or 'none'}")
    return data, spec


def matrix_game(path: str | Path, table: str) -> PublishedMatrixGame:
    """Load matrix-game table ``table`` (a key under ``tables``) from the published file ``path``."""
    data, spec = _table(path, table, "matrix game", "payoff")
    where = f"{path}: tables.{table}"
    actions = tuple(_strings(f"{where}.actions", spec.get("actions")))
    payoff = _square(f"{where}.payoff", spec.get("payoff"), len(actions))
    methods = {
        name: _method(f"{where}.methods.{name}", method, actions)
        for name, method in _mapping(f"{where}.methods", spec.get("methods")).items()
    }
    cite = spec.get("cite")
    if not isinstance(cite, str) or not cite:
        raise ConfigError(f"{where}.cite: expected a short citation such as 'ME-IGM Table 1', got {cite!r}")
    return PublishedMatrixGame(
        source=data["source"],
        cite=cite,
        actions=actions,
        payoff=payoff,
        methods=methods,
    )


@dataclass(frozen=True)
class PublishedScoreTable:
    """A published table of one score per (scenario, method), e.g. win rates on SMACv2 maps.

    ``cells`` is a long frame with one row per cell: ``scenario``, ``method``, ``label``, ``mean``
    and ``std`` (NaN where the paper prints none; ``mean`` NaN where the cell is "-" or empty) and
    ``published_only`` (a method marlrepro does not build). ``demos``: the number of expert
    demonstrations (trajectories) the table's imitation learners were given, where the table
    records it (MIFQ's tables by number of demonstrations); None otherwise."""

    source: str
    cite: str
    metric: str
    unit: str
    scenarios: tuple[str, ...]
    labels: dict[str, str]
    cells: pd.DataFrame
    demos: int | None = None


# a unit's range (None: unbounded, e.g. an environment's own reward, negative in MPE)
_UNIT_MAX: dict[str, float | None] = {"percent": 100.0, "fraction": 1.0, "reward": None}


def score_table(path: str | Path, table: str) -> PublishedScoreTable:
    """Load score table ``table`` (a key under ``tables``) from the published file ``path``,
    checking one value per scenario for every method, each within the unit's range."""
    data, spec = _table(path, table, "score table", "scenarios")
    where = f"{path}: tables.{table}"
    scenarios = tuple(_strings(f"{where}.scenarios", spec.get("scenarios")))
    unit = spec.get("unit")
    if unit not in _UNIT_MAX:
        raise ConfigError(f"{where}.unit: expected one of {', '.join(_UNIT_MAX)}, got {unit!r}")
    rows, labels = [], {}
    for name, method in _mapping(f"{where}.methods", spec.get("methods")).items():
        values = method.get("values")
        if not (isinstance(values, Sequence) and len(values) == len(scenarios)):
            raise ConfigError(f"{where}.methods.{name}.values: expected {len(scenarios)} values, one per scenario "
                              f"({', '.join(scenarios)}), got {values!r}")
        labels[name] = method["label"]
        for scenario, value in zip(scenarios, values):
            mean, std = _score(f"{where}.methods.{name}.values[{scenario}]", value, _UNIT_MAX[unit])
            rows.append({"scenario": scenario, "method": name, "label": method["label"], "mean": mean, "std": std,
                         "published_only": bool(method.get("published_only", False))})
    demos = spec.get("demos")
    if demos is not None and not (isinstance(demos, int) and not isinstance(demos, bool) and demos >= 1):
        raise ConfigError(f"{where}.demos: expected the number of expert demonstrations (a positive integer), "
                          f"got {demos!r}")
    return PublishedScoreTable(source=data["source"], cite=spec["cite"], metric=spec["metric"], unit=unit,
                               scenarios=scenarios, labels=labels, cells=pd.DataFrame(rows), demos=demos)


def _score(where: str, value: Any, top: float | None) -> tuple[float, float]:
    """(mean, std) of a printed cell: a number, ``{mean, std}``, or None ("-": both NaN); the mean
    within [0, ``top``] unless ``top`` is None (an unbounded unit)."""
    if value is None:
        return math.nan, math.nan
    mean, std = (value["mean"], value["std"]) if isinstance(value, Mapping) else (value, math.nan)
    if top is not None and not 0 <= mean <= top:
        raise ConfigError(f"{where}: {mean} is outside [0, {top:g}]")
    return float(mean), float(std)


@dataclass(frozen=True)
class PublishedHyperparameters:
    """A paper's table of hyperparameters per group of tasks (MIFQ Table 2).

    ``groups``: group key -> the column's header as printed. ``values``: a long frame with one row
    per (parameter, group): ``parameter`` (our key), ``label`` (as printed), ``group``, ``value``
    and ``shared`` (the paper prints the row's value once, for every group)."""

    source: str
    cite: str
    groups: dict[str, str]
    values: pd.DataFrame


def hyperparameters(path: str | Path) -> PublishedHyperparameters:
    """Load the ``hyperparameters`` table of the published file ``path``, checking each row gives a
    value for every group, or one ``shared`` value printed under one of the groups."""
    data = load_published(path)
    where = f"{path}: hyperparameters"
    spec = _mapping(where, data.get("hyperparameters"))
    cite = spec.get("cite")
    if not isinstance(cite, str) or not cite:
        raise ConfigError(f"{where}.cite: expected a short citation such as 'MIFQ Table 2', got {cite!r}")
    groups = {str(key): str(header) for key, header in _mapping(f"{where}.groups", spec.get("groups")).items()}
    rows = []
    for name, row in _mapping(f"{where}.rows", spec.get("rows")).items():
        row = _mapping(f"{where}.rows.{name}", row)
        if "shared" in row:
            if row.get("printed_under") not in groups:
                raise ConfigError(f"{where}.rows.{name}.printed_under: expected one of {', '.join(groups)}, "
                                  f"got {row.get('printed_under')!r}")
            values, shared = {group: row["shared"] for group in groups}, True
        else:
            values, shared = dict(_mapping(f"{where}.rows.{name}.values", row.get("values"))), False
            if set(values) != set(groups):
                raise ConfigError(f"{where}.rows.{name}.values: expected one value per group "
                                  f"({', '.join(groups)}), got {sorted(values)}")
        for group in groups:
            value = values[group]
            if not _is_number(value):
                raise ConfigError(f"{where}.rows.{name}: expected a number for {group}, got {value!r}")
            rows.append({"parameter": name, "label": row.get("label", name), "group": group, "value": value,
                         "shared": shared})
    return PublishedHyperparameters(source=data["source"], cite=cite, groups=groups, values=pd.DataFrame(rows))


@dataclass(frozen=True)
class PublishedClaims:
    """A figure the paper makes a claim about per method, in words, without numbers."""

    source: str
    cite: str
    claims: dict[str, str]


NO_CLAIM = "no claim in words"


def claim_cell(claims: PublishedClaims | None, *series: str) -> str:
    """A table's ``published`` cell: the paper's words, with their citation, about the first of
    ``series`` (a series' name, then what stands for it, such as its panel) that ``claims`` names;
    :data:`NO_CLAIM` where none does."""
    said = next((claims.claims[name] for name in series if name in claims.claims), None) if claims is not None else None
    return f"{claims.cite}: {said}" if said else NO_CLAIM


def figure_claims(path: str | Path, figure: str) -> PublishedClaims:
    """Load the per-method claims of ``figure`` (a key of ``figures:``, such as ``fig6``) from ``path``."""
    data = load_published(path)
    where = f"{path}: figures.{figure}"
    spec = _mapping(where, _mapping(f"{path}: figures", data.get("figures")).get(figure))
    cite = spec.get("cite")
    if not isinstance(cite, str) or not cite:
        raise ConfigError(f"{where}.cite: expected a short citation such as 'IGM-DA Figure 6(b)', got {cite!r}")
    claims = _mapping(f"{where}.claims", spec.get("claims"))
    for method, claim in claims.items():
        if not isinstance(claim, str) or not claim:
            raise ConfigError(f"{where}.claims.{method}: expected the paper's words as a string, got {claim!r}")
    return PublishedClaims(source=data["source"], cite=cite, claims=dict(claims))


def _method(where: str, spec: Any, actions: tuple[str, ...]) -> PublishedMatrixMethod:
    spec = _mapping(where, spec)
    joint = spec.get("greedy_joint_action")
    if joint is not None:
        joint = tuple(_strings(f"{where}.greedy_joint_action", joint))
        unknown = [a for a in joint if a not in actions]
        if len(joint) != 2 or unknown:
            raise ConfigError(f"{where}.greedy_joint_action: expected two of {list(actions)}, got {list(joint)}")
    policies = {}
    if "policies" in spec:  # optional: only printed for the stochastic-policy methods
        for agent, probs in _mapping(f"{where}.policies", spec["policies"]).items():
            if not (isinstance(probs, Sequence) and len(probs) == len(actions)):
                raise ConfigError(f"{where}.policies.{agent}: expected {len(actions)} probabilities, got {probs!r}")
            policies[agent] = tuple(float(p) for p in probs)
    label = spec.get("label")
    if not isinstance(label, str) or not label:
        raise ConfigError(f"{where}.label: expected the method's name as printed, got {label!r}")
    payoff = spec.get("greedy_payoff")
    return PublishedMatrixMethod(
        label=label,
        q_tot=_square(f"{where}.q_tot", spec.get("q_tot"), len(actions)),
        greedy_joint_action=joint,
        greedy_payoff=None if payoff is None else float(payoff),
        policies=policies,
    )


def _mapping(where: str, value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping) or not value:
        raise ConfigError(f"{where}: expected a non-empty mapping, got {value!r}")
    return value


def _strings(where: str, value: Any) -> list[str]:
    if not (isinstance(value, Sequence) and value and all(isinstance(v, str) for v in value)):
        raise ConfigError(f"{where}: expected a non-empty list of names, got {value!r}")
    return list(value)


def _square(where: str, value: Any, n: int) -> np.ndarray:
    try:
        matrix = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: expected a {n}x{n} matrix of numbers, got {value!r}") from None
    if matrix.shape != (n, n):
        raise ConfigError(f"{where}: expected a {n}x{n} matrix (one row per action), got shape {matrix.shape}")
    return matrix


# ------------------------------------------------------------------ IGM-DA's Table 1 (as published)
@dataclass(frozen=True)
class PublishedMethod:
    """One row of the published Table 1: the method's label as printed, its win rates (%) and Avg.Score."""

    label: str
    win_rate: tuple[float, ...]
    avg: float


@dataclass(frozen=True)
class PublishedTable1:
    """The published Table 1 of IGM-DA: win rates (%) per method on each map, at sight range 0."""

    source: str
    cite: str
    metric: str
    maps: tuple[str, ...]
    methods: dict[str, PublishedMethod]

    def win_rate(self, method: str, map_name: str) -> float:
        """The published win rate of ``method`` on ``map_name``, NaN where the paper has none."""
        if method not in self.methods or map_name not in self.maps:
            return math.nan
        return self.methods[method].win_rate[self.maps.index(map_name)]


def published_table1(path: str | Path) -> PublishedTable1:
    """Load ``table1`` of the published IGM-DA file ``path`` (``config/published/igm_da.yaml``).

    Each method's ``avg`` must be the mean of its ``win_rate`` up to the printed rounding, which
    catches a mistyped cell.
    """
    data = load_published(path)
    where = f"{path}: table1"
    spec = _mapping(where, data.get("table1"))
    maps = tuple(_strings(f"{where}.maps", spec.get("maps")))
    methods = {
        str(name): _published_method(f"{where}.methods.{name}", method, maps)
        for name, method in _mapping(f"{where}.methods", spec.get("methods")).items()
    }
    return PublishedTable1(
        source=data["source"],
        cite=_text(f"{path}: cite", data.get("cite")),
        metric=_text(f"{where}.metric", spec.get("metric")),
        maps=maps,
        methods=methods,
    )


def _published_method(where: str, spec: Any, maps: tuple[str, ...]) -> PublishedMethod:
    spec = _mapping(where, spec)
    rates = spec.get("win_rate")
    if not (isinstance(rates, Sequence) and len(rates) == len(maps) and all(_is_number(r) for r in rates)):
        raise ConfigError(
            f"{where}.win_rate: expected {len(maps)} numbers, one per map {list(maps)}, got {rates!r}"
        )
    avg = spec.get("avg")
    if not _is_number(avg):
        raise ConfigError(f"{where}.avg: expected the printed Avg.Score (a number), got {avg!r}")
    if abs(float(avg) - float(np.mean(rates))) > 0.1:
        raise ConfigError(
            f"{where}.avg: {avg} is not the mean {np.mean(rates):.2f} of win_rate {list(rates)}; a typo?"
        )
    return PublishedMethod(
        label=_text(f"{where}.label", spec.get("label")), win_rate=tuple(map(float, rates)), avg=float(avg)
    )


def _text(where: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: expected a non-empty string, got {value!r}")
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
