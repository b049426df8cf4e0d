"""MIFQ Figure 3 (§5.4): each imitation learner's final win rate against the number of
demonstrations it learned from, box plots over seeds, one panel per task (SMACv2 and Gold Miner),
beside the appendix's tables by number of demonstrations (Tables 3-14, the numbers the figure
plots; the figure itself prints none).

The runs are MIFQ's demo-count scans and Table 1's runs at its count; a run's count is the
``demos.count`` of its resolved config. The table has one row per cell of the paper's grid (task,
method, number of demonstrations), ours as :func:`~marlrepro.report.score_table.score_rows` gives
it (mean and sample std over seeds, in the tables' percent; also as a fraction of our expert's
where the task's expert file is given) beside the published cell, and status :data:`NOT_PLANNED`
where this scale plans no run of the cell (smoke and validation plan none of the scans). The
figure draws every cell: our seeds' box, the published mean as a diamond, our expert and the
paper's as vertical lines, and "not planned" across a count of which no run is planned.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from marlrepro.report.figures import facets, save_figure
from marlrepro.report.published import PublishedScoreTable, score_table
from marlrepro.report.runs import RunDataError, read_final, read_run_config
from marlrepro.report.score_table import (
    NOT_RUN,
    UNIT_FIELD,
    UNIT_SCALE,
    WIN_RATE_UNITS,
    display_rows,
    scenario_backends,
    scenario_of,
    score_rows,
)
from marlrepro.report.style import REFERENCE_COLOUR, series_colours, styled
from marlrepro.report.table_columns import EXPERT
from marlrepro.report.tables import write_table

NOT_PLANNED = "not planned at this scale"
BOX_WIDTH = 0.8  # of one count's row, shared by its methods' boxes (seaborn's default)


def demo_count(run_dir: str | Path) -> int:
    """The number of demonstrations a run learned from: ``demos.count`` of its config.yaml."""
    return int(read_run_config(run_dir)["demos"]["count"])


def count_rows(runs: Sequence[tuple[Mapping[str, Any], int]], experts: Sequence[Mapping[str, Any]],
               tables: Sequence[PublishedScoreTable], methods: Sequence[str], scale: str) -> pd.DataFrame:
    """One row per cell (scenario, method of ``methods``, number of demonstrations) of ``tables``
    (the published tables of one unit, one per count and family), tasks in the tables' order, then
    counts, then ``methods``' order; :func:`score_rows`' columns, ``demos`` and ``backend`` (that of
    the scenario's runs). ``runs``: (final.json, its count); ``experts``: the tasks'
    expert files (their score over the demonstrations). A run of no table's (scenario, count) fails."""
    parts, used = [], set()
    for published in tables:
        own = [(i, final) for i, (final, count) in enumerate(runs)
               if count == published.demos and scenario_of(final) in published.scenarios]
        used.update(i for i, _ in own)
        references = [expert for expert in experts if scenario_of(expert) in published.scenarios]
        rows = score_rows([final for _, final in own] + references, published, [EXPERT, *methods], scale)
        parts.append(rows[rows["method"].isin(methods)].assign(demos=published.demos))
    homeless = sorted({(scenario_of(final), count) for i, (final, count) in enumerate(runs) if i not in used})
    if homeless:
        raise RunDataError(f"runs of (scenario, demonstrations) {homeless} are cells of none of "
                           f"{', '.join(published.cite for published in tables)}")
    table = pd.concat(parts, ignore_index=True)
    table.loc[table["n_seeds"] == 0, "status"] = NOT_PLANNED
    table["backend"] = table["scenario"].map(scenario_backends([final for final, _ in runs])).fillna(NOT_RUN)
    order = {name: i for i, name in enumerate(dict.fromkeys(s for published in tables for s in published.scenarios))}
    table = table.assign(_task=table["scenario"].map(order), _method=table["method"].map(methods.index))
    table = table.sort_values(["_task", "demos", "_method"], kind="stable").drop(columns=["_task", "_method"])
    return table[["scenario", "method", "demos", *(c for c in table.columns if c not in ("scenario", "method", "demos"))]
                 ].reset_index(drop=True)


def seed_scores(runs: Sequence[tuple[Mapping[str, Any], int]], unit: str) -> pd.DataFrame:
    """One row per run: ``scenario``, ``method``, ``demos``, ``seed`` and its final ``score`` in ``unit``."""
    return pd.DataFrame(
        [{"scenario": scenario_of(final), "method": final["algo"], "demos": count, "seed": final["seed"],
          "score": UNIT_SCALE[unit] * float(final[UNIT_FIELD[unit]])} for final, count in runs],
        columns=["scenario", "method", "demos", "seed", "score"],
    )  # fmt: skip


def demo_count_figure(scores: pd.DataFrame, table: pd.DataFrame, experts: Mapping[str, tuple[float, float]],
                      methods: Sequence[str], xlabel: str, limits: tuple[float, float] | None, title: str,
                      ncols: int = 3) -> Figure:
    """One panel per task (``table``'s scenarios), the numbers of demonstrations down the y axis: per
    count, a box of our seeds' final scores (``scores``) per method, the published mean of the cell as a
    diamond of the method's colour on the box's line, "not planned" across a count without runs of ours; ``experts``:
    scenario -> (ours, published) expert score, drawn as vertical lines where known (NaN: not);
    ``limits``: the score's range (a win rate's), else the data's."""
    scenarios = list(dict.fromkeys(table["scenario"]))
    counts = sorted(set(table["demos"]))
    labels = [str(count) for count in counts]
    colours = series_colours(list(methods))
    step = BOX_WIDTH / len(methods)
    offsets = {method: (k - (len(methods) - 1) / 2) * step for k, method in enumerate(methods)}
    fig, axes = facets(len(scenarios), ncols, panel=(4.6, 0.55 * len(counts) * max(1.0, len(methods) / 4) + 1.4))
    for ax, scenario in zip(axes, scenarios, strict=True):
        ours = scores[scores["scenario"] == scenario].assign(demos=lambda d: d["demos"].astype(str))
        if not ours.empty:
            sns.boxplot(data=ours, x="score", y="demos", hue="method", order=labels, hue_order=list(methods),
                        palette=colours, orient="h", width=BOX_WIDTH, dodge=True, fliersize=2, linewidth=1,
                        legend=False, ax=ax)  # fmt: skip
        cells = table[table["scenario"] == scenario]
        rows = np.array([labels.index(str(d)) for d in cells["demos"]]) + cells["method"].map(offsets).to_numpy()
        ax.scatter(cells["published_mean"], rows, c=[colours[m] for m in cells["method"]], marker="D", s=16,
                   edgecolors=REFERENCE_COLOUR, linewidths=0.8, zorder=3)
        for count in counts:
            if cells.loc[cells["demos"] == count, "n_seeds"].sum() == 0:
                ax.text(0.97, labels.index(str(count)), NOT_PLANNED, transform=ax.get_yaxis_transform(), ha="right",
                        va="center", fontsize="x-small", style="italic", color="0.35",
                        bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1})  # fmt: skip
        ours_expert, published_expert = experts.get(scenario, (np.nan, np.nan))
        for value, style in ((ours_expert, "--"), (published_expert, ":")):
            if np.isfinite(value):
                ax.axvline(value, color=REFERENCE_COLOUR, linestyle=style, linewidth=1.0)
        ax.set_yticks(range(len(labels)), labels)
        ax.set_ylim(len(labels) - 0.5, -0.5)  # the fewest demonstrations on top, as seaborn draws them
        if limits is not None:
            ax.set_xlim(*limits)
        ax.set(title=scenario, xlabel=xlabel, ylabel="expert demonstrations")
    handles = [
        *(Patch(facecolor=colours[m], label=label) for m, label in dict(zip(table["method"], table["label"])).items()),
        Line2D([], [], linestyle="none", marker="D", markersize=4, markerfacecolor="white",
               markeredgecolor=REFERENCE_COLOUR, label="published mean (the method's colour)"),
        Line2D([], [], linestyle="--", color=REFERENCE_COLOUR, label="our expert"),
        Line2D([], [], linestyle=":", color=REFERENCE_COLOUR, label="published expert"),
    ]  # fmt: skip
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 5), fontsize="small")
    fig.suptitle(f"{title}\nour final scores over seeds (boxes) beside the published means (diamonds)")
    return fig


@styled
def demo_counts_report(
    run_dirs: Sequence[str | Path],
    published_path: str | Path,
    table_keys: Sequence[str],
    methods: Sequence[str],
    scale: str,
    scale_description: str,
    table_paths: Sequence[str | Path],
    figure_paths: Sequence[str | Path],
    reference_files: Sequence[str | Path] = (),
) -> pd.DataFrame:
    """The table (csv, md, html) and box-plot figure (png, pdf) of ``run_dirs`` beside the published
    tables ``table_keys`` (one unit; one per number of demonstrations and task family) for
    ``methods``; ``reference_files``: the tasks' expert files. With no runs (a scale that plans none)
    every cell is :data:`NOT_PLANNED` and the figure shows the published values alone."""
    tables = [score_table(published_path, key) for key in table_keys]
    units = {published.unit for published in tables}
    if len(units) != 1:
        raise RunDataError(f"{', '.join(table_keys)}: one unit per figure, got {sorted(units)}")
    (unit,) = units
    runs = [(read_final(run_dir), demo_count(run_dir)) for run_dir in run_dirs]
    experts = [json.loads(Path(path).read_text()) for path in reference_files]
    table = count_rows(runs, experts, tables, methods, scale)
    backend = ", ".join(dict.fromkeys(b for b in table["backend"] if b != NOT_RUN)) or NOT_RUN
    ours = {scenario_of(expert): UNIT_SCALE[unit] * float(expert[UNIT_FIELD[unit]]) for expert in experts}
    paper = {cell.scenario: cell.mean for t in tables for cell in t.cells.itertuples() if cell.method == EXPERT}
    expert_lines = {s: (ours.get(s, np.nan), paper.get(s, np.nan)) for s in dict.fromkeys(table["scenario"])}
    (kind, first), (_, last) = (t.cite.rsplit(" ", 1) for t in (tables[0], tables[-1]))
    cites = f"{kind}s {first}-{last}"  # MIFQ Tables 3-14
    display = display_rows(table, tables[0], f"published ({cites})")
    display.insert(1, "demonstrations", table["demos"])
    notes = [
        (f"Ours: each run's final {tables[0].metric} (its last greedy, decentralised evaluation) on the first N of its "
         "task's demonstrations, mean ± sample standard deviation over seeds; the published value is the cell of the "
         f"appendix table with N demonstrations ({cites}; Figure 3 plots them and prints no numbers). "
         f"'{NOT_PLANNED}': no run of the cell is planned at scale {scale}."),
        ("As fractions of the expert's: ours of our expert's score over its demonstrations, published of the "
         "published expert's."),
    ]
    write_table(table, table_paths, f"MIFQ Figure 3 ({cites}): {tables[0].metric} by number of demonstrations",
                scale=scale, scale_description=scale_description, backend=backend, notes=notes, display=display,
                group="scenario")  # fmt: skip
    xlabel = f"final {tables[0].metric} ({'%' if unit == 'percent' else unit})"
    limits = (0.0, UNIT_SCALE[unit]) if unit in WIN_RATE_UNITS else None
    fig = demo_count_figure(seed_scores(runs, unit), table, expert_lines, methods, xlabel, limits,
                            f"MIFQ Figure 3: {tables[0].metric} by number of demonstrations (scale: {scale}, "
                            f"backend: {backend})")  # fmt: skip
    save_figure(fig, figure_paths, scale)
    return table
