"""The claim ledger: each paper's claims, judged from our own tables.

A paper's claims sit in ``config/published/<paper>.yaml`` under ``claims:`` (keyed by claim id):
the paper's sentence and where it stands, how we read it where it is vague, the targets it
depends on, the scales whose tables can judge it, and its criteria, data from the small typed
vocabulary below (checked by ``workflow/schemas/published.schema.yaml``, then by
:func:`parse_claims` against :data:`TABLE_FORMATS`). No criterion holds code.

A **cell** names one number of a target's tidy csv (``results/tables/<table>.csv``): the table,
the row (key column -> value; every key of the table's format, so one row at most matches) and the
column. Row values match as numbers where both are numbers (``sight_range: 0`` matches ``0.0``),
else as text. An **operand** is a cell, or ``minus: [a, b]``, the cell ``a`` minus the cell ``b``.
A missing row, or an empty (NaN) cell — a method or map not run — leaves the criterion not judged.

Criterion kinds (``op`` is one of ``>``, ``>=``, ``<``, ``<=``):

* ``compare`` (left, op, right, margin = 0): holds iff ``left - right op margin``; e.g. "qmix-DA's
  Avg.Score is at least 15 points above qmix's" is ``left >= right`` with margin 15.
* ``threshold`` (value, op, than): holds iff ``value op than``.
* ``count`` (for_each {key: values, ...}, criterion, at_least): the inner criterion once per item,
  each of its cells' rows given ``key: value``; with several keys an item is one combination of
  their values (MIFQ's tasks × numbers of demonstrations). Items whose cells are missing are *not run*. With
  ``at_least: k``: holds iff at least k items hold; does not hold iff fewer than k could still hold
  (holding + not run < k); else not judged. With ``at_least: all``: holds iff every item that ran
  holds (at least one ran); does not hold iff one that ran does not hold; not judged if none ran.
* ``seeds`` (per_seed, is | is_not, at_least): ``per_seed`` is a cell listing one value per seed,
  separated by commas outside parentheses (the matrix-game table's ``per_seed``: ``(B, B) 0, (A, A)
  8``); a seed's value *is* ``x`` iff it equals ``x`` or starts with ``x`` and a space. Holds iff
  the fraction of seeds whose value is (``is``) or is not (``is_not``) ``x`` is at least
  ``at_least``.

A claim's **verdict** (:func:`judge`): *not judged* when one of its tables was not built (no rule
makes it at this scale) or has no rows (its panels not planned at this scale), when a table's scale
is smoke (never judged, whatever the claim says) or not one of the claim's ``scales``; else from its criteria, all of which must hold: *does not hold*
if one does not hold, *holds* if all hold, else *not judged* with the criteria's reasons. Every
verdict cites the numbers it used.
"""

from __future__ import annotations

import itertools
import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from marlrepro.errors import ConfigError, unknown_choice
from marlrepro.report.cesma_plan import COLUMNS as CESMA_COLUMNS
from marlrepro.report.cesma_plan import KEYS as CESMA_KEYS
from marlrepro.report.table_columns import AVG, EXPERT, PANEL_COLUMNS, PANEL_KEYS, TABLE1_COLUMNS, WIN
from marlrepro.report.tables import write_table

HOLDS, FAILS, NOT_JUDGED = "holds", "does not hold", "not judged"
SMOKE = "smoke"
NOT_BUILT = "target not built"
NO_ROWS = "has no rows: this scale plans no run of it"  # a built table of panels not planned
OPS: dict[str, Callable[[float, float], bool]] = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}


# ------------------------------------------------------------------------------ table formats
@dataclass(frozen=True)
class TableFormat:
    """The tidy csv of a target: its key columns (each with the domain its values come from) and columns."""

    keys: dict[str, str]
    columns: tuple[str, ...]


_CURVES = (
    "algo", "env", "backend", "scale", "n_seeds", "t_env_min", f"{WIN}_median", f"{WIN}_q25", f"{WIN}_q75",
    f"published_{WIN}", "difference", "published_source",
)  # fmt: skip
_MATRIX = TableFormat(
    {"quantity": "matrix_quantity"},
    ("quantity", "value_median", "value_q25", "value_q75", "n_seeds", "per_seed", "published_value", "difference",
     "scale", "backend"),
)  # fmt: skip
_SCORES = TableFormat(
    {"scenario": "smacv2_scenario", "method": "algo"},
    ("scenario", "method", "label", "ours_mean", "ours_std", "n_seeds", "per_seed", "published_mean", "published_std",
     "difference", "status", "scale", "backend"),
)  # fmt: skip
# MIFQ's score tables: its tasks, its methods and the expert, each win rate also as a fraction of its expert's
_MIFQ_KEYS = {"scenario": "mifq_scenario", "method": "mifq_method"}
_MIFQ_SCORES = (*_SCORES.columns, "ours_of_expert", "published_of_expert")
_FROZENLAKE = (
    "method", "n_seeds", "episodes",
    *(f"{p}_{s}" for p in ("greedy", "proportional") for s in ("success_median", "success_q25", "success_q75",
                                                                "reaches_goal")),
    "scale", "backend", "paper",
)  # fmt: skip
# CESMA's figures: one row per setting (an MPE task, or SMAC's 3s5z) and series (marlrepro.report.cesma).
# Figures 4 to 8 are built in this format (Figure 4 on the win rate), and Figure 9
# (reward against supervised loss, per agent; marlrepro.report.cesma_loss) adds the loss and its
# correlation with the reward.
_CESMA = TableFormat({key: "text" for key in CESMA_KEYS}, CESMA_COLUMNS)
_CESMA_LOSS = TableFormat({key: "text" for key in CESMA_KEYS},
                          (*CESMA_COLUMNS, "final_loss_median", "reward_loss_correlation"))
# Every table a claim may name; a target here without a rule at this scale is "not built".
TABLE_FORMATS: dict[str, TableFormat] = {
    "igm_da_table1": TableFormat({"method": "algo", "map": "igm_da_map"}, TABLE1_COLUMNS),
    "igm_da_fig4": TableFormat({"map": "igm_da_map", "algo": "algo"}, ("map", *_CURVES)),
    "igm_da_fig5ab": TableFormat({"map": "igm_da_map", "algo": "algo"}, ("map", *_CURVES)),
    "igm_da_fig5c": TableFormat(
        {"map": "igm_da_map", "algo": "algo", "sight_range": "number"}, ("map", "sight_range", *_CURVES)
    ),
    "igm_da_fig7": TableFormat({"map": "igm_da_map", "algo": "algo"}, ("map", *_CURVES)),
    "igm_da_fig6": TableFormat({"method": "frozenlake_method"}, _FROZENLAKE),
    "me_igm_table1_qmix": _MATRIX,
    "me_igm_table1_fop": _MATRIX,
    "me_igm_table1_me_qmix": _MATRIX,
    **{f"me_igm_table{n}": _SCORES for n in (2, 3, 4)},
    **{f"me_igm_fig{n}": TableFormat({key: "text" for key in PANEL_KEYS}, PANEL_COLUMNS) for n in (2, 4, 5, 6)},
    "mifq_table1": TableFormat(_MIFQ_KEYS, (*_MIFQ_SCORES, "table")),
    "mifq_fig3": TableFormat({**_MIFQ_KEYS, "demos": "number"}, (*_MIFQ_SCORES, "demos")),
    **{f"cesma_fig{n}": _CESMA for n in (4, 5, 6, 7, 8)},
    "cesma_fig9": _CESMA_LOSS,
}


def domains(algos: Sequence[str], igm_da_maps: Sequence[str], matrix_actions: Sequence[str],
            mifq_scenarios: Sequence[str]) -> dict[str, Any]:
    """The values a row key may take: ``algo`` (config/algos), ``igm_da_map`` (Table 1's maps and
    Avg.Score), ``frozenlake_method`` (the FrozenLake table's labels), ``matrix_quantity`` (the
    matrix-game table's rows), ``smacv2_scenario`` (SMACv2's 15 scenarios), ``mifq_scenario`` (MIFQ
    Table 1's tasks), ``mifq_method`` (an algo or MIFQ's ``expert``), ``number`` (any number) and
    ``text`` (any label: a curve figure's panels and series, named by its rule)."""
    from marlrepro.env_catalog import SMACV2_SCENARIOS
    from marlrepro.frozenlake import METHOD_LABELS
    from marlrepro.report.tables import q_columns

    return {
        "algo": set(algos), "igm_da_map": {*igm_da_maps, AVG}, "frozenlake_method": set(METHOD_LABELS.values()),
        "matrix_quantity": {*q_columns(matrix_actions), "greedy payoff"}, "smacv2_scenario": set(SMACV2_SCENARIOS),
        "mifq_scenario": set(mifq_scenarios), "mifq_method": {*algos, EXPERT}, "number": None, "text": str,
    }  # fmt: skip


# ---------------------------------------------------------------------------------- criteria
@dataclass(frozen=True)
class Cell:
    """One number of a table: ``column`` of the row whose key columns equal ``row``."""

    table: str
    row: dict[str, Any]
    column: str

    def with_row(self, keys: Mapping[str, Any]) -> Cell:
        return Cell(self.table, {**self.row, **keys}, self.column)

    def label(self) -> str:
        return f"{self.table}[{', '.join(f'{k}={v}' for k, v in self.row.items())}].{self.column}"


@dataclass(frozen=True)
class Minus:
    """``left - right``."""

    left: Cell
    right: Cell

    def with_row(self, keys: Mapping[str, Any]) -> Minus:
        return Minus(self.left.with_row(keys), self.right.with_row(keys))


Operand = Cell | Minus


@dataclass(frozen=True)
class Compare:
    left: Operand
    op: str
    right: Operand
    margin: float = 0.0


@dataclass(frozen=True)
class Threshold:
    value: Operand
    op: str
    than: float


@dataclass(frozen=True)
class Count:
    keys: tuple[str, ...]
    items: tuple[tuple[Any, ...], ...]  # every combination of the keys' values
    criterion: Compare | Threshold
    at_least: int | Literal["all"]

    def item_rows(self) -> list[dict[str, Any]]:
        """Each item as the row keys it adds to the criterion's cells."""
        return [dict(zip(self.keys, item, strict=True)) for item in self.items]


@dataclass(frozen=True)
class Seeds:
    per_seed: Cell
    match: str
    negate: bool
    at_least: float


Criterion = Compare | Threshold | Count | Seeds


@dataclass(frozen=True)
class Claim:
    """A paper's claim: the sentence, where it stands, our reading, its targets, scales and criteria."""

    paper: str
    id: str
    statement: str
    source: str
    reading: str
    targets: tuple[str, ...]
    scales: tuple[str, ...]
    criteria: tuple[Criterion, ...]

    def tables(self) -> list[str]:
        """The tables its criteria read, in order of first use."""
        return list(dict.fromkeys(cell.table for criterion in self.criteria for cell in _cells(criterion)))


def _cells(criterion: Criterion) -> list[Cell]:
    def operand(value: Operand) -> list[Cell]:
        return [value.left, value.right] if isinstance(value, Minus) else [value]

    if isinstance(criterion, Compare):
        return operand(criterion.left) + operand(criterion.right)
    if isinstance(criterion, Threshold):
        return operand(criterion.value)
    if isinstance(criterion, Count):
        return [cell for keys in criterion.item_rows() for cell in _cells(_with_row(criterion.criterion, keys))]
    return [criterion.per_seed]


def parse_claims(
    paper: str, data: Mapping[str, Any], where: str, domains: Mapping[str, Any] | None = None
) -> list[Claim]:
    """The claims of a published file's ``data`` (already checked against the schema), each checked
    against :data:`TABLE_FORMATS`: every table a criterion names is known and among the claim's
    targets, every row names each key of the table, with a value of its domain (:func:`domains`;
    not checked where ``domains`` is None), every column exists. Errors name the file (``where``),
    the claim and the key."""
    claims = []
    for claim_id, spec in data.get("claims", {}).items():
        at = f"{where}: claims.{claim_id}"
        criteria = tuple(_criterion(f"{at}.criteria[{i}]", c) for i, c in enumerate(spec["criteria"]))
        claim = Claim(paper, claim_id, spec["statement"], spec["source"], spec.get("reading", ""),
                      tuple(spec["targets"]), tuple(spec["scales"]), criteria)  # fmt: skip
        for i, criterion in enumerate(criteria):
            for cell in _cells(criterion):
                _check_cell(f"{at}.criteria[{i}]", cell, claim.targets, domains)
        claims.append(claim)
    return claims


def _check_cell(at: str, cell: Cell, targets: Sequence[str], domains: Mapping[str, Any] | None) -> None:
    if cell.table not in TABLE_FORMATS:
        raise unknown_choice(f"{at}: table", cell.table, TABLE_FORMATS, "table")
    if cell.table not in targets:
        raise ConfigError(f"{at}: table {cell.table!r} is not among the claim's targets {list(targets)}")
    fmt = TABLE_FORMATS[cell.table]
    if cell.column not in fmt.columns:
        raise unknown_choice(f"{at}: column of {cell.table}", cell.column, fmt.columns, "column")
    if set(cell.row) != set(fmt.keys):
        raise ConfigError(f"{at}: row {cell.row} of {cell.table} must name exactly its keys {list(fmt.keys)}")
    for key, value in cell.row.items():
        if domains is None:
            continue
        domain = domains[fmt.keys[key]]
        if domain is None:
            if not _is_number(value):
                raise ConfigError(f"{at}: row key {key}: expected a number, got {value!r}")
        elif domain is str:
            if not isinstance(value, str) or not value:
                raise ConfigError(f"{at}: row key {key}: expected a label (text), got {value!r}")
        elif value not in domain:
            raise unknown_choice(f"{at}: row key {key} of {cell.table}", value, domain, "value")


def _operand(spec: Mapping[str, Any]) -> Operand:
    if "minus" in spec:
        left, right = (_cell(c) for c in spec["minus"])
        return Minus(left, right)
    return _cell(spec)


def _cell(spec: Mapping[str, Any]) -> Cell:
    return Cell(spec["table"], dict(spec["row"]), spec["column"])


def _criterion(at: str, spec: Mapping[str, Any]) -> Criterion:
    kind = spec["kind"]
    if kind == "compare":
        return Compare(_operand(spec["left"]), spec["op"], _operand(spec["right"]),
                       float(spec.get("margin", 0.0)))  # fmt: skip
    if kind == "threshold":
        return Threshold(_operand(spec["value"]), spec["op"], float(spec["than"]))
    if kind == "count":
        keys, items = tuple(spec["for_each"]), tuple(itertools.product(*spec["for_each"].values()))
        inner = _criterion(f"{at}.criterion", spec["criterion"])
        if not isinstance(inner, Compare | Threshold):
            raise ConfigError(f"{at}.criterion: a count repeats a compare or threshold, got kind {spec['criterion']['kind']!r}")
        at_least = spec["at_least"]
        if at_least != "all" and at_least > len(items):
            raise ConfigError(f"{at}.at_least: {at_least} is more than the {len(items)} items of for_each "
                              f"({' × '.join(keys)})")
        return Count(keys, items, inner, at_least)
    if kind == "seeds":
        negate = "is_not" in spec
        return Seeds(_cell(spec["per_seed"]), spec["is_not" if negate else "is"], negate,
                     float(spec["at_least"]))  # fmt: skip
    raise unknown_choice(f"{at}.kind", kind, ("compare", "threshold", "count", "seeds"), "kind")


# ----------------------------------------------------------------------------------- verdicts
@dataclass(frozen=True)
class Verdict:
    """``verdict`` (holds, does not hold, not judged) and ``evidence``: the numbers used, or the reason."""

    verdict: str
    evidence: str


class _Missing(Exception):
    """A cell without a number (row absent, or NaN: not run)."""


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _matches(column: pd.Series, value: Any) -> pd.Series:
    if _is_number(value):
        return pd.to_numeric(column, errors="coerce") == float(value)
    return column.astype(str) == str(value)


def _lookup(tables: Mapping[str, pd.DataFrame], cell: Cell) -> Any:
    table = tables[cell.table]
    mask = pd.Series(True, index=table.index)
    for key, value in cell.row.items():
        mask &= _matches(table[key], value)
    rows = table[mask]
    if rows.empty:
        raise _Missing(f"{cell.label()}: no such row")
    if len(rows) > 1:
        raise ValueError(f"{cell.label()}: {len(rows)} rows match")
    value = rows[cell.column].iloc[0]
    if value is None or (isinstance(value, float) and math.isnan(value)):
        raise _Missing(f"{cell.label()}: empty (not run)")
    return value


def _value(tables: Mapping[str, pd.DataFrame], operand: Operand) -> tuple[float, str]:
    if isinstance(operand, Minus):
        (a, text_a), (b, text_b) = _value(tables, operand.left), _value(tables, operand.right)
        return a - b, f"({text_a} − {text_b} = {a - b:.3g})"
    value = float(_lookup(tables, operand))
    return value, f"{operand.label()} = {value:.3g}"


def _judge(tables: Mapping[str, pd.DataFrame], criterion: Criterion) -> Verdict:
    try:
        if isinstance(criterion, Compare):
            (a, text_a), (b, text_b) = _value(tables, criterion.left), _value(tables, criterion.right)
            ok = OPS[criterion.op](a - b, criterion.margin)
            return Verdict(HOLDS if ok else FAILS,
                           f"{text_a} minus {text_b} is {a - b:.3g}, {criterion.op} {criterion.margin:g}: {ok}")  # fmt: skip
        if isinstance(criterion, Threshold):
            value, text = _value(tables, criterion.value)
            ok = OPS[criterion.op](value, criterion.than)
            return Verdict(HOLDS if ok else FAILS, f"{text} {criterion.op} {criterion.than:g}: {ok}")
        if isinstance(criterion, Seeds):
            return _judge_seeds(tables, criterion)
    except _Missing as missing:
        return Verdict(NOT_JUDGED, str(missing))
    return _judge_count(tables, criterion)


def _judge_count(tables: Mapping[str, pd.DataFrame], criterion: Count) -> Verdict:
    items = {", ".join(f"{k}={v}" for k, v in keys.items()): _judge(tables, _with_row(criterion.criterion, keys))
             for keys in criterion.item_rows()}
    held = [v for v, verdict in items.items() if verdict.verdict == HOLDS]
    failed = [v for v, verdict in items.items() if verdict.verdict == FAILS]
    missing = [v for v, verdict in items.items() if verdict.verdict == NOT_JUDGED]
    ran = len(held) + len(failed)
    if criterion.at_least == "all":
        need = f"every {' × '.join(criterion.keys)} run ({ran} of {len(items)} ran)"
        verdict = NOT_JUDGED if ran == 0 else FAILS if failed else HOLDS
    else:
        need = f"at least {criterion.at_least} of {len(items)}"
        verdict = (HOLDS if len(held) >= criterion.at_least else
                   FAILS if len(held) + len(missing) < criterion.at_least else NOT_JUDGED)  # fmt: skip
    details = "; ".join(f"{item}: {verdict.verdict} ({verdict.evidence})" for item, verdict in items.items())
    return Verdict(verdict, f"holds for {len(held)}, not for {len(failed)}, not run {len(missing)}; needs {need}. "
                            f"{details}")  # fmt: skip


def _with_row(criterion: Compare | Threshold, keys: Mapping[str, Any]) -> Compare | Threshold:
    """``criterion`` with ``keys`` (key -> value) added to the row of every cell it reads."""
    if isinstance(criterion, Compare):
        return replace(criterion, left=criterion.left.with_row(keys), right=criterion.right.with_row(keys))
    return replace(criterion, value=criterion.value.with_row(keys))


def split_per_seed(text: str) -> list[str]:
    """``'(B, B) 0, (A, A) 8'`` -> ``['(B, B) 0', '(A, A) 8']``: split at commas outside parentheses."""
    return [part.strip() for part in re.split(r",(?![^()]*\))", text) if part.strip()]


def _judge_seeds(tables: Mapping[str, pd.DataFrame], criterion: Seeds) -> Verdict:
    seeds = split_per_seed(str(_lookup(tables, criterion.per_seed)))
    matching = [s == criterion.match or s.startswith(criterion.match + " ") for s in seeds]
    count = sum(not m for m in matching) if criterion.negate else sum(matching)
    ok = count >= criterion.at_least * len(seeds)
    relation = "is not" if criterion.negate else "is"
    return Verdict(HOLDS if ok else FAILS,
                   f"{criterion.per_seed.label()} = {', '.join(seeds)}: {count} of {len(seeds)} seeds' value "
                   f"{relation} {criterion.match}, needs at least {criterion.at_least:.0%}: {ok}")  # fmt: skip


def judge(claim: Claim, tables: Mapping[str, pd.DataFrame | None]) -> Verdict:
    """The claim's verdict from ``tables`` (target -> its tidy csv, None where not built); see the module docstring."""
    names = claim.tables()
    not_built = [name for name in names if tables.get(name) is None]
    if not_built:
        return Verdict(NOT_JUDGED, f"{NOT_BUILT}: {', '.join(not_built)} (no rule makes it at this scale)")
    for name in names:
        if tables[name].empty:  # a figure of panels this scale plans no run of (CESMA Figure 4 at smoke)
            return Verdict(NOT_JUDGED, f"{name} {NO_ROWS}")
        scales = set(tables[name]["scale"].astype(str))
        if SMOKE in scales:
            return Verdict(NOT_JUDGED, f"{name} is a smoke-scale table: smoke numbers are never judged")
        if not scales <= set(claim.scales):
            return Verdict(NOT_JUDGED, f"scale below what the claim needs: {name} is at scale "
                                       f"{', '.join(sorted(scales))}; the claim needs {' or '.join(claim.scales)}")  # fmt: skip
    verdicts = [_judge(tables, criterion) for criterion in claim.criteria]  # type: ignore[arg-type]
    kinds = {v.verdict for v in verdicts}
    verdict = FAILS if FAILS in kinds else HOLDS if kinds == {HOLDS} else NOT_JUDGED
    evidence = " | ".join(v.evidence for v in verdicts)
    return Verdict(verdict, evidence)


# ------------------------------------------------------------------------------------- ledger
LEDGER_COLUMNS = ("paper", "claim", "statement", "source", "reading", "targets", "scales", "verdict", "evidence")


def ledger_table(claims: Sequence[Claim], tables: Mapping[str, pd.DataFrame | None]) -> pd.DataFrame:
    """One row per claim (:data:`LEDGER_COLUMNS`) with its verdict and evidence."""
    rows = []
    for claim in claims:
        verdict = judge(claim, tables)
        rows.append({
            "paper": claim.paper, "claim": claim.id, "statement": claim.statement, "source": claim.source,
            "reading": claim.reading, "targets": ", ".join(claim.targets), "scales": ", ".join(claim.scales),
            "verdict": verdict.verdict, "evidence": verdict.evidence,
        })  # fmt: skip
    return pd.DataFrame(rows, columns=list(LEDGER_COLUMNS))


def read_tables(paths: Mapping[str, str | Path | None]) -> dict[str, pd.DataFrame | None]:
    """Target -> its tidy csv read from ``paths`` (None stays None: not built)."""
    return {name: None if path is None else pd.read_csv(path) for name, path in paths.items()}


def claims_report(
    claims: Sequence[Claim],
    table_paths: Mapping[str, str | Path | None],
    title: str,
    scale: str,
    scale_description: str,
    out_paths: Sequence[str | Path],
) -> pd.DataFrame:
    """Judge ``claims`` from the tables at ``table_paths`` and write the ledger (csv, md, html)."""
    table = ledger_table(claims, read_tables(table_paths)).assign(scale=scale)
    display = table[["claim", "statement", "source", "verdict", "evidence", "reading", "targets"]].rename(
        columns={"statement": "the paper says", "evidence": "ours: numbers used, or why not judged",
                 "reading": "how we read it"}
    )  # fmt: skip
    note = (
        "Each claim is judged by a rule (marlrepro.report.claims) from the tidy csv of the tables it names: "
        "holds, does not hold, or not judged (a table not built, a smoke-scale table, or a scale below what "
        "the claim needs). The criteria are in config/published/ under claims:; docs/claims.md explains them."
    )
    write_table(table, out_paths, title, scale=scale, scale_description=scale_description,
                backend="the tables' own (see each)", notes=[note], display=display)  # fmt: skip
    return table
