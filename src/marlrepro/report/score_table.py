"""A published table of one score per (scenario, method), e.g. ME-IGM's SMACv2 win rates (Tables
2-4), with our runs beside it: the table and its figure.

A score is a run's final greedy win rate (units percent and fraction) or its final mean return
(unit reward: MIFQ's MPE columns). One report may set several published tables side by side (MIFQ's
Table 1 is published as a win-rate half and a reward half). Where the paper prints an ``expert``
row (MIFQ's demonstrators), ours comes from reference files in final.json's fields (the expert's
score over its demonstrations) and every win rate is also given as a fraction of its own expert's,
ours of ours and published of published, so that experts of different strength compare fairly."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from marlrepro.report.figures import save_figure
from marlrepro.report.published import PublishedScoreTable, score_table
from marlrepro.report.runs import RunDataError, read_final, single_value
from marlrepro.report.style import series_colours, styled
from marlrepro.report.table_columns import EXPERT
from marlrepro.report.tables import number, write_table

# the final.json field a published table's unit reads (a win rate, or the environment's own
# return), its factor into that unit, and how that unit is printed
UNIT_FIELD = {"percent": "test_won_mean", "fraction": "test_won_mean", "reward": "test_return_mean"}
UNIT_SCALE = {"percent": 100.0, "fraction": 1.0, "reward": 1.0}
UNIT_FORMAT = {"percent": ".1f", "fraction": ".2f", "reward": ".1f"}
WIN_RATE_UNITS = ("percent", "fraction")  # bounded below by 0 and above by UNIT_SCALE
NOT_BUILT = "not built yet"
PUBLISHED_ONLY = "published only"
NOT_RUN = "none (not run at this scale)"  # the backend of a scenario without runs


def score_rows(finals: Sequence[Mapping[str, Any]], published: PublishedScoreTable, built: Sequence[str],
               scale: str) -> pd.DataFrame:
    """One row per published cell (scenario, method), scenario by scenario in the paper's order,
    with ours beside it.

    ``built``: the published methods we build; a published method's key is the method name our runs
    record (``final.json``'s ``algo``: ``me_qmix``, ``qmix_entropy``; ``expert`` for an expert's
    reference file). Ours is the mean and (sample) standard deviation over seeds of each run's final
    test win rate, or its final test return in a table of unit ``reward`` (:data:`UNIT_FIELD`), in
    the table's unit, as the paper prints them; a cell whose method we do not build, or whose
    scenario was not run at this scale, has no value of ours. Runs that are no cell of the table
    fail first. Columns: ``scenario``, ``method`` (published key), ``label``, ``ours_mean``,
    ``ours_std``, ``n_seeds``, ``per_seed``, ``published_mean``, ``published_std``, ``difference``
    (ours minus published), ``status`` (ours, not built yet, published only), ``scale``; in a table
    with an :data:`EXPERT` row and a win-rate unit also ``ours_of_expert`` and
    ``published_of_expert``: each method's mean as a fraction of its own expert's on the scenario.
    """
    unknown = sorted(set(built) - set(published.labels))
    if unknown:
        raise RunDataError(f"{published.cite} has no methods {unknown}; its methods: {', '.join(published.labels)}")
    factor, fmt = UNIT_SCALE[published.unit], UNIT_FORMAT[published.unit]
    by_cell: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for final in finals:
        by_cell.setdefault((scenario_of(final), final["algo"]), []).append(final)
    foreign = set(by_cell) - {(s, m) for s in published.scenarios for m in built}
    if foreign:
        raise RunDataError(f"runs of cells {sorted(foreign)} are not cells of {published.cite}")
    rows = []
    order = {scenario: i for i, scenario in enumerate(published.scenarios)}
    cells = published.cells.sort_values("scenario", key=lambda column: column.map(order), kind="stable")
    for cell in cells.itertuples():
        runs = sorted(by_cell.get((cell.scenario, cell.method), []), key=lambda f: f["seed"])
        values = [factor * float(run[UNIT_FIELD[published.unit]]) for run in runs]
        mean = float(np.mean(values)) if values else math.nan
        std = float(np.std(values, ddof=1)) if len(values) > 1 else math.nan
        status = PUBLISHED_ONLY if cell.published_only else ("ours" if cell.method in built else NOT_BUILT)
        rows.append({
            "scenario": cell.scenario, "method": cell.method, "label": cell.label, "ours_mean": mean, "ours_std": std,
            "n_seeds": len(values), "per_seed": ", ".join(format(v, fmt) for v in values),
            "published_mean": cell.mean, "published_std": cell.std, "difference": mean - cell.mean,
            "status": status, "scale": scale,
        })  # fmt: skip
    table = pd.DataFrame(rows)
    if EXPERT in published.labels and published.unit in WIN_RATE_UNITS:
        experts = table[table["method"] == EXPERT].set_index("scenario")
        others = table["method"] != EXPERT
        for side in ("ours", "published"):
            expert = table["scenario"].map(experts[f"{side}_mean"]).where(lambda v: v > 0)
            table[f"{side}_of_expert"] = (table[f"{side}_mean"] / expert).where(others)
    return table


def scenario_of(final: Mapping[str, Any]) -> str:
    """The scenario of a run's (or a reference file's) env: ``miner:easy_2_vs_2`` -> ``easy_2_vs_2``."""
    return final["env"].split(":", 1)[1]


def scenario_backends(finals: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """The one backend of each scenario's runs (like with like within a scenario; a table may set
    several backends side by side, MIFQ's SMACv2 and Gold Miner win rates)."""
    return {scenario: single_value([f for f in finals if scenario_of(f) == scenario], "backend")
            for scenario in dict.fromkeys(map(scenario_of, finals))}


def _mean_std(mean: float, std: float, fmt: str) -> str:
    if pd.isna(mean):
        return ""
    return number(mean, fmt) + ("" if pd.isna(std) else f" ± {number(std, fmt)}")


def display_rows(table: pd.DataFrame, published: PublishedScoreTable, source: str | None = None) -> pd.DataFrame:
    """The readable form: ours and published as ``mean ± std``; why a cell of ours is empty; each
    method's fraction of its own expert where the table has them. ``source``: the published
    column's header (default ``published (<cite>)``)."""
    fmt = UNIT_FORMAT[published.unit]
    ours = [_mean_std(m, s, fmt) or (status if status != "ours" else "not run at this scale")
            for m, s, status in zip(table["ours_mean"], table["ours_std"], table["status"], strict=True)]
    display = pd.DataFrame({
        "scenario": table["scenario"], "method": table["label"],
        "ours: mean ± std over seeds": ours, "seeds": table["n_seeds"].map(lambda n: str(n) if n else ""),
        source or f"published ({published.cite})":
            [_mean_std(m, s, fmt) or "-" for m, s in zip(table["published_mean"], table["published_std"], strict=True)],
        "ours − published": [number(v, "+" + fmt) for v in table["difference"]],
        "ours per seed": table["per_seed"],
    })  # fmt: skip
    if "ours_of_expert" in table:
        display["ours ÷ our expert"] = [number(v, ".2f") for v in table["ours_of_expert"]]
        display["published ÷ published expert"] = [number(v, ".2f") for v in table["published_of_expert"]]
    return display


def score_figure(table: pd.DataFrame, published: PublishedScoreTable | Sequence[PublishedScoreTable],
                 title: str, groups: Mapping[str, str] | None = None) -> Figure:
    """Per scenario, a bar per method we build (our mean, the seeds' standard deviation as an error
    bar) and the published mean of the same method as a black tick; one panel per scenario group
    (``groups[scenario]``, else the part of the scenario name before ``_``, e.g. the SMACv2 race) of
    each published table, in that table's unit (a win rate's axis from 0 to its top; a reward's the
    data's)."""
    tables = [published] if isinstance(published, PublishedScoreTable) else list(published)
    built = table[table["status"] == "ours"]
    methods = list(dict.fromkeys(built["method"]))
    labels = dict(zip(built["method"], built["label"], strict=True))

    def group_of(scenario: str) -> str:
        return (groups or {}).get(scenario, scenario.split("_", 1)[0])

    panels = [(source, group, [s for s in source.scenarios if group_of(s) == group])
              for source in tables for group in dict.fromkeys(map(group_of, source.scenarios))]
    colours = series_colours(methods)
    widest = max(len(scenarios) for _, _, scenarios in panels)
    fig = Figure(figsize=(max(6.0, 0.35 * widest * max(1, len(methods)) + 2.0), 3.2 * len(panels)),
                 layout="constrained")
    axes = fig.subplots(len(panels), 1, squeeze=False)[:, 0]
    width = 0.8 / max(1, len(methods))
    for ax, (source, group, scenarios) in zip(axes, panels, strict=True):
        cells = built[built["scenario"].isin(scenarios)]
        for k, method in enumerate(methods):
            part = cells[cells["method"] == method].set_index("scenario").reindex(scenarios)
            x = np.arange(len(scenarios)) + (k - (len(methods) - 1) / 2) * width
            ax.bar(x, part["ours_mean"], width, yerr=part["ours_std"].fillna(0), color=colours[method],
                   label=f"{labels[method]} (ours)", capsize=2)
            ax.scatter(x, part["published_mean"], marker="_", s=200, color="black", zorder=3,
                       label="published" if k == 0 else None)
        ax.set_xticks(np.arange(len(scenarios)), [s.removeprefix(f"{group}_") for s in scenarios])
        ax.set(title=group, ylabel=f"{source.metric} ({source.unit})")
        if source.unit in WIN_RATE_UNITS:
            ax.set_ylim(0, UNIT_SCALE[source.unit] * 1.05)
    axes[0].legend(ncols=min(4, len(methods) + 1), fontsize="small")
    fig.suptitle(title)
    return fig


def _assign(finals: Sequence[Mapping[str, Any]], tables: Sequence[PublishedScoreTable]) -> list[list[Mapping[str, Any]]]:
    """The finals of each of ``tables``: those of its scenarios (all of them for one table, whose
    :func:`score_rows` names any foreign cell); a final of none of several tables fails."""
    if len(tables) == 1:
        return [list(finals)]
    scenario = {id(final): scenario_of(final) for final in finals}
    homeless = sorted({scenario[id(f)] for f in finals if not any(scenario[id(f)] in t.scenarios for t in tables)})
    if homeless:
        raise RunDataError(f"runs of scenarios {homeless} are cells of none of {', '.join(t.cite for t in tables)}")
    return [[final for final in finals if scenario[id(final)] in table.scenarios] for table in tables]


@styled
def score_table_report(
    run_dirs: Sequence[str | Path],
    published_path: str | Path,
    table_key: str | Sequence[str],
    built: Sequence[str],
    scale: str,
    scale_description: str,
    table_paths: Sequence[str | Path],
    figure_paths: Sequence[str | Path],
    reference_files: Sequence[str | Path] = (),
    groups: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Table (csv, md, html) and bar figure of our final scores beside one published score table,
    or beside several side by side (``table_key`` a list: one metric and unit each; the rows of
    each in turn, the csv's ``table`` column naming it). ``reference_files``: JSON files in
    final.json's fields that are ours too, such as each task's expert (``algo`` expert: its score
    over its demonstrations, ``marlrepro collect-demos --summary``). ``groups``: the figure's panel
    of a scenario (:func:`score_figure`)."""
    keys = [table_key] if isinstance(table_key, str) else list(table_key)
    tables = [score_table(published_path, key) for key in keys]
    finals = [read_final(run_dir) for run_dir in run_dirs]
    finals += [json.loads(Path(path).read_text()) for path in reference_files]
    parts, displays, backends = [], [], []
    for key, published, own in zip(keys, tables, _assign(finals, tables), strict=True):
        by_scenario = scenario_backends(own)
        backends += by_scenario.values()
        part = score_rows(own, published, [m for m in built if m in published.labels], scale)
        part["backend"] = part["scenario"].map(by_scenario).fillna(NOT_RUN)
        parts.append(part.assign(table=key) if len(keys) > 1 else part)
        displays.append(display_rows(part, published, "published" if len(keys) > 1 else None))
    table = pd.concat(parts, ignore_index=True)
    display = pd.concat(displays, ignore_index=True)
    backend = ", ".join(dict.fromkeys(backends)) or NOT_RUN
    cites = " and ".join(dict.fromkeys(published.cite for published in tables))
    units = {published.unit for published in tables}
    sources = "; ".join(dict.fromkeys(published.source for published in tables))
    notes = [(
        f"Ours: each run's final {' or '.join(_SCORE[u] for u in sorted(units))} (its last evaluation, greedy, "
        f"decentralised), mean ± sample standard deviation over seeds in the paper's unit; the published value is "
        f"transcribed from {sources}. '{NOT_BUILT}': a method whose learner another issue builds; "
        f"'{PUBLISHED_ONLY}': a method the paper quotes and marlrepro does not build."
    )]
    if len(tables) > 1:
        notes.append("The published table is printed in parts of one metric each: "
                     + "; ".join(f"{p.cite}, {', '.join(p.scenarios)}: {p.metric} ({p.unit})" for p in tables) + ".")
    if any(EXPERT in p.labels for p in tables):
        fractions = any(EXPERT in p.labels and p.unit in WIN_RATE_UNITS for p in tables)
        notes.append(f"{EXPERT.capitalize()} (ours): the expert's mean score over the demonstrations it played (each "
                     "task's demo file), not a training run; our experts are not the paper's."
                     + (" Win rates are also given as fractions of their own expert's (ours of ours, published of "
                        "published)." if fractions else ""))
    write_table(table, table_paths, f"{cites}: our runs beside the published numbers", scale=scale,
                scale_description=scale_description, backend=backend, notes=notes, display=display, group="scenario")
    fig = score_figure(table, tables, f"{cites} (scale: {scale}, backend: {backend})", groups)
    save_figure(fig, figure_paths, scale)
    return table


_SCORE = {"percent": "test win rate", "fraction": "test win rate", "reward": "test return (reward tables)"}
