"""A published table of one score per (scenario, method), e.g. ME-IGM's SMACv2 win rates (Tables
2-4), with our runs beside it: the table and its figure."""

from __future__ import annotations

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
from marlrepro.report.tables import number, write_table

# our final win rate (a fraction) in a published table's unit, and how that unit is printed
UNIT_SCALE = {"percent": 100.0, "fraction": 1.0}
UNIT_FORMAT = {"percent": ".1f", "fraction": ".2f"}
NOT_BUILT = "not built yet"
PUBLISHED_ONLY = "published only"


def score_rows(finals: Sequence[Mapping[str, Any]], published: PublishedScoreTable, built: Sequence[str],
               scale: str) -> pd.DataFrame:
    """One row per published cell (scenario, method), scenario by scenario in the paper's order,
    with ours beside it.

    ``built``: the published methods we build; a published method's key is the method name our runs
    record (``final.json``'s ``algo``: ``me_qmix``, ``qmix_entropy``). Ours is the mean and
    (sample) standard deviation over seeds of each run's final test win rate in the table's unit,
    as the paper prints them; a cell whose method we do not build, or whose scenario was not run at
    this scale, has no value of ours. Runs that are no cell of the table fail first.
    Columns: ``scenario``, ``method`` (published key), ``label``, ``ours_mean``, ``ours_std``,
    ``n_seeds``, ``per_seed``, ``published_mean``, ``published_std``, ``difference`` (ours minus
    published), ``status`` (ours, not built yet, published only), ``scale``.
    """
    if published.unit not in UNIT_SCALE:  # a reward (MIFQ's MPE tables): no win rate of ours to set beside it
        raise RunDataError(f"{published.cite} is a table of {published.metric} ({published.unit}); our runs are set "
                           f"beside win-rate tables only (units: {', '.join(UNIT_SCALE)})")
    unknown = sorted(set(built) - set(published.labels))
    if unknown:
        raise RunDataError(f"{published.cite} has no methods {unknown}; its methods: {', '.join(published.labels)}")
    factor, fmt = UNIT_SCALE[published.unit], UNIT_FORMAT[published.unit]
    by_cell: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for final in finals:
        scenario = final["env"].split(":", 1)[1]
        by_cell.setdefault((scenario, final["algo"]), []).append(final)
    foreign = set(by_cell) - {(s, m) for s in published.scenarios for m in built}
    if foreign:
        raise RunDataError(f"runs of cells {sorted(foreign)} are not cells of {published.cite}")
    rows = []
    order = {scenario: i for i, scenario in enumerate(published.scenarios)}
    cells = published.cells.sort_values("scenario", key=lambda column: column.map(order), kind="stable")
    for cell in cells.itertuples():
        runs = sorted(by_cell.get((cell.scenario, cell.method), []), key=lambda f: f["seed"])
        values = [factor * float(run["test_won_mean"]) for run in runs]
        mean = float(np.mean(values)) if values else math.nan
        std = float(np.std(values, ddof=1)) if len(values) > 1 else math.nan
        status = PUBLISHED_ONLY if cell.published_only else ("ours" if cell.method in built else NOT_BUILT)
        rows.append({
            "scenario": cell.scenario, "method": cell.method, "label": cell.label, "ours_mean": mean, "ours_std": std,
            "n_seeds": len(values), "per_seed": ", ".join(format(v, fmt) for v in values),
            "published_mean": cell.mean, "published_std": cell.std, "difference": mean - cell.mean,
            "status": status, "scale": scale,
        })  # fmt: skip
    return pd.DataFrame(rows)


def _mean_std(mean: float, std: float, fmt: str) -> str:
    if pd.isna(mean):
        return ""
    return number(mean, fmt) + ("" if pd.isna(std) else f" ± {number(std, fmt)}")


def display_rows(table: pd.DataFrame, published: PublishedScoreTable) -> pd.DataFrame:
    """The readable form: ours and published as ``mean ± std``; why a cell of ours is empty."""
    fmt = UNIT_FORMAT[published.unit]
    source = f"published ({published.cite})"
    ours = [_mean_std(m, s, fmt) or (status if status != "ours" else "not run at this scale")
            for m, s, status in zip(table["ours_mean"], table["ours_std"], table["status"], strict=True)]
    return pd.DataFrame({
        "scenario": table["scenario"], "method": table["label"],
        "ours: mean ± std over seeds": ours, "seeds": table["n_seeds"].map(lambda n: str(n) if n else ""),
        source: [_mean_std(m, s, fmt) or "-" for m, s in zip(table["published_mean"], table["published_std"], strict=True)],
        "ours − published": [number(v, "+" + fmt) for v in table["difference"]],
        "ours per seed": table["per_seed"],
    })  # fmt: skip


def score_figure(table: pd.DataFrame, published: PublishedScoreTable, title: str) -> Figure:
    """Per scenario, a bar per method we build (our mean, the seeds' standard deviation as an error
    bar) and the published mean of the same method as a black tick; one panel per scenario group
    (the part of the scenario name before ``_``, e.g. the SMACv2 race)."""
    built = table[table["status"] == "ours"]
    methods = list(dict.fromkeys(built["method"]))
    labels = dict(zip(built["method"], built["label"], strict=True))
    groups = list(dict.fromkeys(s.split("_", 1)[0] for s in published.scenarios))
    colours = series_colours(methods)
    widest = max(sum(s.split("_", 1)[0] == g for s in published.scenarios) for g in groups)
    fig = Figure(figsize=(max(6.0, 0.35 * widest * max(1, len(methods)) + 2.0), 3.2 * len(groups)),
                 layout="constrained")
    axes = fig.subplots(len(groups), 1, squeeze=False)[:, 0]
    width = 0.8 / max(1, len(methods))
    for ax, group in zip(axes, groups, strict=True):
        scenarios = [s for s in published.scenarios if s.split("_", 1)[0] == group]
        for k, method in enumerate(methods):
            part = built[built["method"] == method].set_index("scenario").loc[scenarios]
            x = np.arange(len(scenarios)) + (k - (len(methods) - 1) / 2) * width
            ax.bar(x, part["ours_mean"], width, yerr=part["ours_std"].fillna(0), color=colours[method],
                   label=f"{labels[method]} (ours)", capsize=2)
            ax.scatter(x, part["published_mean"], marker="_", s=200, color="black", zorder=3,
                       label="published" if k == 0 else None)
        ax.set_xticks(np.arange(len(scenarios)), [s.split("_", 1)[1] for s in scenarios])
        ax.set(title=group, ylabel=f"{published.metric} ({published.unit})")
        ax.set_ylim(0, UNIT_SCALE[published.unit] * 1.05)
    axes[0].legend(ncols=min(4, len(methods) + 1), fontsize="small")
    fig.suptitle(title)
    return fig


@styled
def score_table_report(
    run_dirs: Sequence[str | Path],
    published_path: str | Path,
    table_key: str,
    built: Sequence[str],
    scale: str,
    scale_description: str,
    table_paths: Sequence[str | Path],
    figure_paths: Sequence[str | Path],
) -> pd.DataFrame:
    """Table (csv, md, html) and bar figure of our final win rates beside a published score table."""
    published = score_table(published_path, table_key)
    finals = [read_final(run_dir) for run_dir in run_dirs]
    table = score_rows(finals, published, built, scale)
    backend = single_value(finals, "backend")
    notes = [(
        f"Ours: each run's final test win rate (its last evaluation, greedy, decentralised), mean ± sample "
        f"standard deviation over seeds in the paper's unit ({published.unit}); the published value is "
        f"transcribed from {published.source}. '{NOT_BUILT}': a method whose learner another issue builds; "
        f"'{PUBLISHED_ONLY}': a method the paper quotes and marlrepro does not build."
    )]
    write_table(table.assign(backend=backend), table_paths, f"{published.cite}: our runs beside the published numbers",
                scale=scale, scale_description=scale_description, backend=backend, notes=notes,
                display=display_rows(table, published), group="scenario")
    fig = score_figure(table, published, f"{published.cite} (scale: {scale}, backend: {backend})")
    save_figure(fig, figure_paths, scale)
    return table
