"""IGM-DA report items (Hong, Jin, Tang: "Rethinking Individual Global Max"): Table 1, Figs. 3, 4, 5, 7.

Each builder reads run directories (see :mod:`~marlrepro.report.runs`; IGM-DA runs add the metric
``test_expert_won_mean`` and ``action_values.parquet``), writes the table (csv, md) and the figure
(png, pdf) a rule declares, and returns the table. Win rates are in percent, the paper's unit, and
"final" means a run's last evaluation (``final.json``). Over seeds we report the median and the
25-75 % range, as the paper does (§4); curves are aligned on the runs' evaluation grid and smoothed
by a trailing moving average of :data:`SMOOTH_WINDOW` evaluations, as the paper's are. A run's
sight range is its ``env.options.sight_range``; null (the env's default sight, 9 on the SMAC maps) reads as
:data:`DEFAULT_SIGHT`, SMAC's sight.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from marlrepro.report.curves import align_curves, curve_band
from marlrepro.report.figures import facets, save_figure
from marlrepro.report.html_table import DIFFERENCE
from marlrepro.report.published import PublishedTable1, published_table1
from marlrepro.report.runs import (
    RunDataError,
    read_final,
    read_metrics,
    read_run_config,
    single_value,
)
from marlrepro.report.style import (
    REFERENCE_COLOUR,
    series_colours,
    series_styles,
    styled,
)
from marlrepro.report.table_columns import AVG, TABLE1_COLUMNS, WIN
from marlrepro.report.tables import (
    comparison,
    final_metric_summary,
    number,
    spread,
    write_table,
)

DEFAULT_SIGHT = 9.0  # SMAC's sight range (appendix D: "The original observation range of ally units is nine")
TABLE1_SIGHT = 0.0  # Table 1: "Average win rate of SMAC challenges in sight view 0"
SMOOTH_WINDOW = 5  # §4: "smoothed by a moving average filter with its window size being set to 5"
TARGET = "target_mean"  # Fig. 3(a): the experts' own win rate
BAND_STATS = ("median", "q25", "q75")
_VARIANTS = ("", "_bc", "_da")  # the original method, its BC ablation, its IGM-DA (DAgger) variant
_IMITATION_WIDTH, _PLAIN_WIDTH = 2.4, 1.2  # §4.2: "coarse curves for the IGM-DA results"


# ----------------------------------------------------------------------------------------- runs
@dataclass(frozen=True)
class IgmRun:
    """One finished training run: its directory, ``final.json`` and resolved ``config.yaml``."""

    path: Path
    final: Mapping[str, Any]
    config: Mapping[str, Any]

    @property
    def algo(self) -> str:
        return str(self.final["algo"])

    @property
    def map(self) -> str:
        """The SMAC map of ``env`` (``smax:3s5z`` -> ``3s5z``)."""
        return str(self.final["env"]).split(":", 1)[-1]

    @property
    def win_rate(self) -> float:
        """Final test win rate in %."""
        return 100.0 * float(self.final["test_won_mean"])

    @property
    def sight(self) -> float:
        """The allies' sight range (``env.options.sight_range``; null reads as :data:`DEFAULT_SIGHT`)."""
        options = self.config.get("env", {}).get("options")
        if not isinstance(options, Mapping):
            raise RunDataError(f"{self.path / 'config.yaml'}: missing env.options (for sight_range)")
        sight = options.get("sight_range")
        return DEFAULT_SIGHT if sight is None else float(sight)

    @property
    def eval_interval(self) -> int:
        try:
            return int(self.config["run"]["eval_interval"])
        except (KeyError, TypeError):
            raise RunDataError(f"{self.path / 'config.yaml'}: missing run.eval_interval") from None


def read_runs(run_dirs: Iterable[str | Path]) -> list[IgmRun]:
    """Load the runs, ordered by map, method (original, BC, DA), sight range and seed."""
    runs = [IgmRun(Path(d), read_final(d), read_run_config(d)) for d in run_dirs]
    if not runs:
        raise RunDataError("no runs given")
    return sorted(runs, key=lambda r: (r.map, algo_order(r.algo), r.sight, r.final["seed"]))


def algo_order(algo: str) -> tuple[str, int]:
    """Sort key: each base method, then its BC and DA variants (``qmix < qmix_bc < qmix_da < qplex``)."""
    for rank, suffix in enumerate(_VARIANTS[1:], start=1):
        if algo.endswith(suffix):
            return algo.removesuffix(suffix), rank
    return algo, 0


def _is_imitation(series: str) -> bool:
    return algo_order(series.split(" ", 1)[0])[1] > 0


def _group(runs: Sequence[IgmRun], key: Callable[[IgmRun], Hashable]) -> dict[Any, list[IgmRun]]:
    groups: dict[Any, list[IgmRun]] = {}
    for run in runs:
        groups.setdefault(key(run), []).append(run)
    return groups


def _series_labels(runs: Sequence[IgmRun]) -> Callable[[IgmRun], str]:
    """A run's series in a figure: its algo, plus its sight range where the runs mix sight ranges."""
    mixed = len({run.sight for run in runs}) > 1
    return lambda run: f"{run.algo} (sight {run.sight:g})" if mixed else run.algo


def _final_summary(runs: Sequence[IgmRun], label: Callable[[IgmRun], str], scale: str) -> pd.DataFrame:
    """Median and 25/75 % quantiles over seeds of the final win rate (%) per series (column ``algo``)."""
    finals = [{**run.final, "algo": label(run), WIN: run.win_rate} for run in runs]
    return final_metric_summary(finals, WIN, scale)


def _curves(runs: Sequence[IgmRun], label: Callable[[IgmRun], str], column: str) -> pd.DataFrame:
    """The runs' ``column`` curves in % as :func:`align_curves` takes them (``seed`` is the run's index)."""
    return pd.concat(
        [
            read_metrics(run.path, ["t_env", column]).rename(columns={column: "value"})
            .assign(algo=label(run), seed=index, value=lambda f: 100.0 * f["value"])
            for index, run in enumerate(runs)
        ],
        ignore_index=True,
    )  # fmt: skip


def moving_average(curves: pd.DataFrame, columns: Sequence[str], window: int) -> pd.DataFrame:
    """Trailing mean of ``columns`` over ``window`` consecutive grid points, per ``algo`` (§4's smoothing).

    The first ``window - 1`` points average what precedes them, so every curve keeps its first point.
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    curves = curves.sort_values(["algo", "t_env"], kind="stable").reset_index(drop=True)
    rolling = curves.groupby("algo", sort=False)[list(columns)].rolling(window, min_periods=1).mean()
    return curves.assign(**{c: rolling[c].to_numpy() for c in columns})


def _columns_first(table: pd.DataFrame, first: Sequence[str]) -> pd.DataFrame:
    return table[[*first, *[c for c in table.columns if c not in first]]]


def _eval_grid(runs: Sequence[IgmRun]) -> int:
    """The runs' shared ``run.eval_interval``, the step of the grid their curves are aligned on."""
    return single_value([{"eval_interval": run.eval_interval} for run in runs], "eval_interval")


def _smoothed_band(runs: Sequence[IgmRun], label: Callable[[IgmRun], str], window: int) -> pd.DataFrame:
    """Median and 25-75 % band over seeds of the runs' test win rate (%) per series, smoothed."""
    band = curve_band(align_curves(_curves(runs, label, "test_won_mean"), _eval_grid(runs)))
    return moving_average(band, BAND_STATS, window)


def _notes(runs: Sequence[IgmRun], *more: str) -> list[str]:
    sights = ", ".join(f"{s:g}" for s in sorted({run.sight for run in runs}))
    return [
        (
            f"Allies' sight range: {sights}. Win rates in %, median and 25-75 % range over seeds of each "
            f"run's final evaluation (final.json)."
        ),
        *more,
    ]


def _backend(runs: Sequence[IgmRun]) -> str:
    return str(single_value([run.final for run in runs], "backend"))


# ---------------------------------------------------------------------- beside the paper's Table 1
NOT_PRINTED = "not printed"  # a published cell the paper has no number for
PUBLISHED_STATISTIC = (
    "The paper's text is ambiguous about the statistic over seeds that its numbers are: §4 says results are "
    "\"presented with the average performance with 25-75% percentile\", the Figure 4 caption speaks of \"the "
    "median win rate\"; we report the median and compare it with the published value either way."
)


def _published_note(published: PublishedTable1) -> str:
    return (
        f"published: the value of {published.source} for the same method and map at sight range 0 (\"The "
        f"detailed results of Figure 4 are listed in Table 1\", §4.2); '{NOT_PRINTED}' where the paper has no "
        f"number (any other sight range, BC, the experts): its figures are plots only. {DIFFERENCE}: our median "
        f"minus the published value, in percentage points. {PUBLISHED_STATISTIC}"
    )


def beside_table1(
    table: pd.DataFrame, published: PublishedTable1, cells: Sequence[tuple[str, str, float] | None]
) -> pd.DataFrame:
    """``table`` (one row per entry of ``cells``) with Table 1's value where the paper printed one.

    ``cells`` gives each row's ``(method, map, sight range)``, or None for a row the paper cannot
    have (the experts). Adds ``published_win_rate`` (NaN unless the sight range is Table 1's 0
    and Table 1 has the method and map), ``difference`` (our median minus it) and
    ``published_source``.
    """
    paper = [
        published.win_rate(method, name) if sight == TABLE1_SIGHT else math.nan
        for method, name, sight in (cell or ("", "", math.nan) for cell in cells)
    ]
    source = [f"{published.source}, sight range 0" if not math.isnan(p) else NOT_PRINTED for p in paper]
    return table.assign(
        **{f"published_{WIN}": paper, "difference": table[f"{WIN}_median"].to_numpy() - np.asarray(paper),
           "published_source": source}
    )  # fmt: skip


def _comparison(
    table: pd.DataFrame, keys: Mapping[str, str], published: PublishedTable1, **kwargs: Any
) -> pd.DataFrame:
    """:func:`~marlrepro.report.tables.comparison` of the win rate, beside Table 1."""
    return comparison(table, WIN, keys, "published (Table 1)", NOT_PRINTED, **kwargs)


def _smoothing_note(window: int) -> str:
    return (
        f"Curves: each run interpolated onto its evaluation grid (run.eval_interval), median and 25-75 % "
        f"band over seeds, then a trailing moving average over {window} evaluations (the paper's window-5 "
        f"smoothing, §4). Table values are not smoothed."
    )


# -------------------------------------------------------------------------------------- figures
def _draw_bands(ax: Axes, band: pd.DataFrame, styles: Mapping[str, Mapping[str, Any]]) -> None:
    """Median line and 25-75 % band per series; IGM-DA and BC series drawn coarse, as in the paper."""
    for series, style in styles.items():
        part = band[band["algo"] == series]
        if part.empty:
            continue
        ax.fill_between(part["t_env"], part["q25"], part["q75"], color=style["color"], alpha=0.2, linewidth=0)
        width = _IMITATION_WIDTH if _is_imitation(series) else _PLAIN_WIDTH
        ax.plot(part["t_env"], part["median"], linewidth=width, label=series, **style)


def _finish(fig: Figure, axes: Sequence[Axes], title: str, legend_title: str) -> Figure:
    """One legend below the panels (each series once) and the title above them."""
    handles: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    fig.legend(list(handles.values()), list(handles), loc="outside lower center", ncols=min(len(handles), 6),
               title=legend_title)  # fmt: skip
    fig.suptitle(title)
    return fig


def _figure_title(title: str, scale: str, runs: Sequence[IgmRun]) -> str:
    return f"{title}\n(scale: {scale}, backend: {single_value([run.final for run in runs], 'backend')})"


# -------------------------------------------------------------------------------------- Table 1
@styled
def table1_report(
    run_dirs: Sequence[str | Path],
    published_path: str | Path,
    scale: str,
    scale_description: str,
    table_paths: Sequence[str | Path],
    figure_paths: Sequence[str | Path],
) -> pd.DataFrame:
    """IGM-DA Table 1: final win rate (%) at sight range 0 per method and map, beside the published table.

    The csv is tidy: one row per method and map (and one ``Avg.Score`` row per method) with our
    median, 25/75 % quantiles and seed count, the published value and the difference (ours minus
    published). Our Avg.Score is the mean of our per-map medians over the paper's maps that the
    method ran, as the paper averages its maps; where that is fewer than all of them, the published
    value it is compared with is the paper's mean over the same maps. The markdown and HTML are the
    paper's wide table (:func:`table1_wide`); methods we did not run keep their published row. The
    figure: one panel per map plus Avg.Score, bars per method, ours (median, 25-75 % whiskers)
    beside published (hatched). Returns the tidy table.
    """
    published = published_table1(published_path)
    runs = read_runs(run_dirs)
    off_sight = sorted({f"{run.path}: {run.sight:g}" for run in runs if run.sight != TABLE1_SIGHT})
    if off_sight:
        raise RunDataError(
            f"Table 1 compares runs at sight range {TABLE1_SIGHT:g}; these are not: {off_sight}"
        )
    table = table1_table(runs, published, scale)
    notes = _notes(
        runs,
        f"Rows 'published' are transcribed from {published.source} ({published.metric}). {DIFFERENCE}: our "
        f"median minus published, in percentage points. Avg.Score: mean over the maps, as the paper; where we "
        f"ran fewer maps, ours averages those and is compared with the paper's mean over the same maps.",
        PUBLISHED_STATISTIC,
    )  # fmt: skip
    title = f"{published.cite}: Table 1, win rate (%) at sight range 0, our runs beside the published numbers"
    write_table(
        table, table_paths, title, scale=scale, scale_description=scale_description, backend=_backend(runs),
        notes=notes, display=table1_wide(table, published), group="method",
    )  # fmt: skip
    save_figure(table1_figure(table, published, _figure_title(title, scale, runs)), figure_paths, scale)
    return table


def table1_table(runs: Sequence[IgmRun], published: PublishedTable1, scale: str) -> pd.DataFrame:
    """The tidy Table 1 (columns :data:`TABLE1_COLUMNS`): see :func:`table1_report`."""
    by_map = _group(runs, lambda run: run.map)
    ours = pd.concat(
        [
            _final_summary(group, lambda run: run.algo, scale).assign(map=name)
            for name, group in by_map.items()
        ]
    ).set_index(["algo", "map"])
    ran = ours.index.get_level_values
    methods = [*published.methods, *sorted(set(ran("algo")) - set(published.methods), key=algo_order)]
    maps = [*published.maps, *sorted(set(ran("map")) - set(published.maps))]
    not_run = dict.fromkeys(["n_seeds", f"{WIN}_median", f"{WIN}_q25", f"{WIN}_q75", "t_env_min"], math.nan)
    rows = []
    for method in methods:
        label = published.methods[method].label if method in published.methods else method
        for name in maps:
            paper = published.win_rate(method, name)
            if (method, name) not in ours.index and math.isnan(paper):
                continue
            mine = ours.loc[(method, name)] if (method, name) in ours.index else not_run
            rows.append({
                "method": method, "label": label, "map": name, **{key: mine[key] for key in not_run},
                f"published_{WIN}": paper, "difference": mine[f"{WIN}_median"] - paper,
            })  # fmt: skip
        rows.append(_avg_row(method, label, [r for r in rows if r["method"] == method], published))
    table = pd.DataFrame(rows).assign(
        sight_range=TABLE1_SIGHT, scale=scale, backend=single_value([run.final for run in runs], "backend")
    )
    return table.reindex(columns=list(TABLE1_COLUMNS)).astype(
        {"n_seeds": "Int64", "n_maps": "Int64", "t_env_min": "Int64"}
    )


def _avg_row(
    method: str, label: str, rows: Sequence[Mapping[str, Any]], published: PublishedTable1
) -> dict[str, Any]:
    """Avg.Score of ``method``: our mean median over the paper's maps we ran, the paper's over those maps."""
    ran = [row for row in rows if row["map"] in published.maps and not math.isnan(row[f"{WIN}_median"])]
    ours = float(np.mean([row[f"{WIN}_median"] for row in ran])) if ran else math.nan
    paper = math.nan
    if method in published.methods:
        covers_all = len(ran) in (0, len(published.maps))
        paper = (
            published.methods[method].avg
            if covers_all
            else float(np.mean([row[f"published_{WIN}"] for row in ran]))
        )
    return {"method": method, "label": label, "map": AVG, f"{WIN}_median": ours, f"published_{WIN}": paper,
            "difference": ours - paper, "n_maps": len(ran)}  # fmt: skip


def table1_wide(table: pd.DataFrame, published: PublishedTable1) -> pd.DataFrame:
    """The paper's layout of a :func:`table1_table`: per method (column ``method``, its label) our
    row, the published row and the difference (the unnamed second column says which), one column
    per map.

    Our cells read ``median [25 %, 75 %]``; methods we did not run show only their published row.
    """
    maps = [name for name in dict.fromkeys(table["map"]) if name != AVG]
    every = len(published.maps)
    rows = []
    for method, part in table.groupby("method", sort=False):
        part = part.set_index("map")
        label = part["label"].iloc[0]
        avg = part.loc[AVG]
        ran = part[f"{WIN}_median"].notna().any()
        if ran:
            seeds = sorted(set(part["n_seeds"].dropna().astype(int)))
            n = f"{seeds[0]}" if len(seeds) == 1 else f"{seeds[0]}-{seeds[-1]}"
            subset = f" ({avg['n_maps']} of {every} maps)" if avg["n_maps"] < every else ""
            cells = {name: _ours_cell(part, name) for name in maps}
            rows.append(
                {"method": label, "": f"ours ({n} seeds)", **cells, AVG: number(avg[f"{WIN}_median"]) + subset}
            )
        if method in published.methods:
            printed = published.methods[method].avg
            same = (
                f" ({avg[f'published_{WIN}']:.1f} on our {avg['n_maps']} maps)"
                if 0 < avg["n_maps"] < every
                else ""
            )
            cells = {name: number(part[f"published_{WIN}"].get(name, math.nan)) for name in maps}
            rows.append({"method": label, "": "published", **cells, AVG: f"{printed:.1f}{same}"})
        if ran and method in published.methods:
            cells = {name: number(part["difference"].get(name, math.nan), "+.1f") for name in [*maps, AVG]}
            rows.append({"method": label, "": DIFFERENCE, **cells})
    return pd.DataFrame(rows, columns=["method", "", *maps, AVG]).fillna("")


def _ours_cell(part: pd.DataFrame, name: str) -> str:
    if name not in part.index:
        return ""
    row = part.loc[name]
    return spread(row[f"{WIN}_median"], row[f"{WIN}_q25"], row[f"{WIN}_q75"])


def table1_figure(table: pd.DataFrame, published: PublishedTable1, title: str) -> Figure:
    """One panel per map and Avg.Score: per method, our median (25-75 % whiskers) beside the published bar."""
    panels = list(dict.fromkeys(table["map"]))
    panels = [*[p for p in panels if p != AVG], AVG]
    methods = list(dict.fromkeys(table["method"]))
    labels = dict(zip(table["method"], table["label"], strict=True))
    palette = series_colours(methods)
    fig, axes = facets(len(panels), ncols=4)
    width = 0.4
    for ax, panel in zip(axes, panels, strict=True):
        part = table[table["map"] == panel].set_index("method")
        for i, method in enumerate(methods):
            if method not in part.index:
                continue
            row, colour = part.loc[method], palette[method]
            if pd.notna(row[f"{WIN}_median"]):
                median = row[f"{WIN}_median"]
                spread = [[median - row[f"{WIN}_q25"]], [row[f"{WIN}_q75"] - median]]
                errors = spread if pd.notna(row[f"{WIN}_q25"]) else None
                ax.bar(i - width / 2, median, width, color=colour)
                ax.errorbar(i - width / 2, median, yerr=errors, fmt="o", color="black", markersize=4, capsize=3)
            if pd.notna(row[f"published_{WIN}"]):
                ax.bar(i + width / 2, row[f"published_{WIN}"], width, color=colour, alpha=0.4, hatch="//",
                       edgecolor=colour)  # fmt: skip
        ax.set_xticks(range(len(methods)), [labels[m] for m in methods], rotation=45, ha="right")
        ax.set(title=panel, ylim=(0, 105), ylabel="win rate (%)")
    legend = [
        Patch(facecolor="0.4", label="ours: median over seeds, 25-75 % whiskers"),
        Patch(facecolor="0.4", alpha=0.4, hatch="//", edgecolor="0.4", label=f"published ({published.cite})"),
    ]
    fig.legend(handles=legend, loc="outside lower center", ncols=2)
    fig.suptitle(title)
    return fig


# ------------------------------------------------------------------------- Figs. 4, 5(a, b), 7
@styled
def curves_report(
    run_dirs: Sequence[str | Path],
    published_path: str | Path,
    scale: str,
    scale_description: str,
    title: str,
    table_paths: Sequence[str | Path],
    figure_paths: Sequence[str | Path],
    smooth_window: int = SMOOTH_WINDOW,
) -> pd.DataFrame:
    """IGM-DA Fig. 4 (sight 0, the curves behind Table 1), Fig. 5(a, b) (BC vs DAgger) and Fig. 7 (sight 9).

    One panel per map, one curve per algorithm (per algorithm and sight range where the runs mix
    sight ranges): test win rate (%) against environment steps, median and 25-75 % band over seeds,
    smoothed by a trailing moving average of ``smooth_window`` evaluations. The table holds the
    final win rates per map and series (column ``algo``), beside Table 1 where it has the cell
    (:func:`beside_table1`). Returns the table.
    """
    published = published_table1(published_path)
    runs = read_runs(run_dirs)
    label = _series_labels(runs)
    series = {label(run): (run.algo, run.sight) for run in runs}
    maps = _group(runs, lambda run: run.map)
    table = pd.concat([_final_summary(group, label, scale).assign(map=name) for name, group in maps.items()])
    table = _columns_first(table, ["map"]).reset_index(drop=True)
    cells = [(series[algo][0], name, series[algo][1]) for algo, name in zip(table["algo"], table["map"], strict=True)]
    table = beside_table1(table, published, cells)
    write_table(
        table, table_paths, title, scale=scale, scale_description=scale_description, backend=_backend(runs),
        notes=_notes(runs, _published_note(published), _smoothing_note(smooth_window)),
        display=_comparison(table, {"map": "map", "algo": "method"}, published), group="map",
    )  # fmt: skip
    styles = series_styles(list(series))
    fig, axes = facets(len(maps), ncols=3)
    for ax, (name, group) in zip(axes, maps.items(), strict=True):
        _draw_bands(ax, _smoothed_band(group, label, smooth_window), styles)
        ax.set(title=name, xlabel="environment steps", ylabel="test win rate (%)", ylim=(-2, 102))
    legend = f"median, 25-75 % band over seeds, moving average of {smooth_window}"
    save_figure(_finish(fig, axes, _figure_title(title, scale, runs), legend), figure_paths, scale)
    return table


# ------------------------------------------------------------------------------------ Fig. 5(c)
@styled
def sight_sweep_report(
    run_dirs: Sequence[str | Path],
    published_path: str | Path,
    scale: str,
    scale_description: str,
    table_paths: Sequence[str | Path],
    figure_paths: Sequence[str | Path],
) -> pd.DataFrame:
    """IGM-DA Fig. 5(c): final win rate (%) against the allies' sight range, one line per algorithm.

    Runs are grouped by map, algorithm and sight range (from each run's config.yaml); points are
    medians over seeds with 25-75 % error bars, one panel per map. The table's sight-0 rows sit
    beside Table 1 (:func:`beside_table1`). Returns the table.
    """
    published = published_table1(published_path)
    runs = read_runs(run_dirs)
    groups = _group(runs, lambda run: (run.map, run.sight))
    table = pd.concat(
        [_final_summary(group, lambda run: run.algo, scale).assign(map=name, sight_range=sight)
         for (name, sight), group in groups.items()]
    )  # fmt: skip
    table = table.sort_values(["map", "algo", "sight_range"], key=_sort_key, kind="stable").reset_index(
        drop=True
    )
    table = _columns_first(table, ["map", "algo", "sight_range"])
    cells = list(zip(table["algo"], table["map"], table["sight_range"], strict=True))
    table = beside_table1(table, published, cells)
    title = "IGM-DA Fig. 5(c): final win rate against the allies' sight range"
    keys = {"map": "map", "algo": "method", "sight_range": "sight range"}
    write_table(
        table, table_paths, title, scale=scale, scale_description=scale_description, backend=_backend(runs),
        notes=_notes(runs, _published_note(published)), display=_comparison(table, keys, published), group="map",
    )  # fmt: skip
    maps = list(dict.fromkeys(table["map"]))
    styles = series_styles(list(dict.fromkeys(table["algo"])))
    fig, axes = facets(len(maps), ncols=3)
    for ax, name in zip(axes, maps, strict=True):
        for algo, style in styles.items():
            part = table[(table["map"] == name) & (table["algo"] == algo)]
            error = [part[f"{WIN}_median"] - part[f"{WIN}_q25"], part[f"{WIN}_q75"] - part[f"{WIN}_median"]]
            width = _IMITATION_WIDTH if _is_imitation(algo) else _PLAIN_WIDTH
            ax.errorbar(part["sight_range"], part[f"{WIN}_median"], yerr=error, marker="o", linewidth=width,
                        capsize=3, label=algo, **style)  # fmt: skip
        ax.set(title=name, xlabel="allies' sight range", ylabel="final test win rate (%)", ylim=(-2, 102))
    save_figure(
        _finish(fig, axes, _figure_title(title, scale, runs), "median, 25-75 % over seeds"), figure_paths, scale
    )
    return table


def _sort_key(column: pd.Series) -> pd.Series:
    return column.map(algo_order) if column.name == "algo" else column


# -------------------------------------------------------------------------------------- Fig. 3
@styled
def lossy_decomposition_report(
    run_dirs: Sequence[str | Path],
    published_path: str | Path,
    scale: str,
    scale_description: str,
    table_paths: Sequence[str | Path],
    figure_paths: Sequence[str | Path],
    smooth_window: int = SMOOTH_WINDOW,
) -> pd.DataFrame:
    """IGM-DA Fig. 3, lossy decomposition: learners at sight 9 and sight 0 imitating full-sight experts.

    (a) The learners' test win rate (%) per sight range (median, 25-75 % band over runs) and the
    experts' own win rate (``test_expert_won_mean``) averaged over all runs, drawn as *target_mean*;
    all smoothed by a trailing moving average of ``smooth_window`` evaluations. (b) The distributions
    of the greedy actions' Q-values in greedy evaluation (``action_values.parquet``): learners per
    sight range, and the experts pooled. The runs must share one algorithm and map. The table holds,
    per series, the final win rate (the learners' beside Table 1 at sight 0, :func:`beside_table1`)
    and the action values' summary. Returns the table.
    """
    published = published_table1(published_path)
    runs = read_runs(run_dirs)
    finals = [run.final for run in runs]
    algo, env = single_value(finals, "algo"), single_value(finals, "env")
    learners = _smoothed_band(runs, _learner_series, smooth_window)
    expert = moving_average(_mean_curve(runs), ["mean"], smooth_window)
    values = pd.concat([_action_values(run) for run in runs], ignore_index=True)
    table = _lossy_table(runs, values, scale)
    name = single_value([{"map": run.map} for run in runs], "map")
    cells = [
        None if agents == "expert" else (algo, name, sight)
        for agents, sight in zip(table["agents"], table["sight_range"], strict=True)
    ]
    table = beside_table1(table, published, cells)
    title = f"IGM-DA Fig. 3: lossy decomposition, {algo} learners imitating full-sight experts on {env}"
    notes = _notes(
        runs, _published_note(published), _smoothing_note(smooth_window),
        f"{TARGET}: the experts' own greedy win rate (their last evaluation for the table; the curve is the "
        f"mean over all runs). Action values: Q of the greedy available action at every step of greedy "
        f"evaluation episodes; the experts' pooled over all runs.",
    )  # fmt: skip
    values_stats = table[["action_value_median", "action_value_q25", "action_value_q75"]].to_numpy(dtype=float)
    display = _comparison(table, {"series": "series", "agents": "agents"}, published, count="n_runs").assign(
        **{"action value: median [25 %, 75 %]": [spread(*row, fmt=".2f") for row in values_stats]}
    )
    write_table(
        table, table_paths, title, scale=scale, scale_description=scale_description, backend=_backend(runs),
        notes=notes, display=display,
    )  # fmt: skip
    order = [*dict.fromkeys(_learner_series(run) for run in runs), TARGET]
    save_figure(
        _lossy_figure(learners, expert, values, order, _figure_title(title, scale, runs)), figure_paths, scale
    )
    return table


def _learner_series(run: IgmRun) -> str:
    return f"sight view {run.sight:g}"


def _mean_curve(runs: Sequence[IgmRun]) -> pd.DataFrame:
    """The experts' win-rate curve (%), mean over all runs at each grid point every run reached."""
    aligned = align_curves(_curves(runs, lambda run: TARGET, "test_expert_won_mean"), _eval_grid(runs))
    curve = aligned.groupby(["algo", "t_env"])["value"].agg(mean="mean", n_runs="count").reset_index()
    return curve[curve["n_runs"] == len(runs)].reset_index(drop=True)


def _action_values(run: IgmRun) -> pd.DataFrame:
    """``action_values.parquet`` of ``run`` with a ``series`` column: the learner's sight, or the expert."""
    path = run.path / "action_values.parquet"
    if not path.is_file():
        raise RunDataError(f"{path}: missing")
    values = pd.read_parquet(path)
    if missing := [c for c in ("agents", "value") if c not in values.columns]:
        raise RunDataError(f"{path}: missing columns {missing}; has {list(values.columns)}")
    if unknown := sorted(set(values["agents"]) - {"learner", "expert"}):
        raise RunDataError(f"{path}: agents must be 'learner' or 'expert', got {unknown}")
    series = np.where(values["agents"] == "expert", TARGET, _learner_series(run))
    return pd.DataFrame(
        {"series": series, "agents": values["agents"], "value": values["value"].astype(float)}
    )


def _last(run: IgmRun, column: str) -> float:
    """The last evaluation's ``column`` of ``run``'s metrics, in %."""
    metrics = read_metrics(run.path, ["t_env", column]).sort_values("t_env")
    return 100.0 * float(metrics[column].iloc[-1])


def _lossy_table(runs: Sequence[IgmRun], values: pd.DataFrame, scale: str) -> pd.DataFrame:
    """Per series: the final win rate over runs and the summary of its action values."""
    learners = _final_summary(runs, _learner_series, scale)
    expert_finals = [{**run.final, "algo": TARGET, WIN: _last(run, "test_expert_won_mean")} for run in runs]
    finals = pd.concat([learners, final_metric_summary(expert_finals, WIN, scale)], ignore_index=True)
    finals = finals.rename(columns={"algo": "series", "n_seeds": "n_runs"})
    stats = values.groupby("series")["value"].agg(
        n_action_values="count", action_value_mean="mean", action_value_std="std",
        action_value_q25=lambda v: v.quantile(0.25), action_value_median="median",
        action_value_q75=lambda v: v.quantile(0.75),
    )  # fmt: skip
    sights = {_learner_series(run): run.sight for run in runs}
    table = finals.join(stats, on="series").assign(
        agents=lambda t: np.where(t["series"] == TARGET, "expert", "learner"),
        sight_range=lambda t: t["series"].map(sights),
    )
    return _columns_first(table, ["series", "agents", "sight_range"])


def _lossy_figure(
    learners: pd.DataFrame, expert: pd.DataFrame, values: pd.DataFrame, order: list[str], title: str
) -> Figure:
    styles = series_styles([s for s in order if s != TARGET])
    palette = {**{s: style["color"] for s, style in styles.items()}, TARGET: REFERENCE_COLOUR}
    fig, (curves, dists) = facets(2, ncols=2, panel=(5.6, 4.0))
    _draw_bands(curves, learners, styles)
    line = {"color": REFERENCE_COLOUR, "linestyle": "--", "linewidth": _IMITATION_WIDTH}
    curves.plot(expert["t_env"], expert["mean"], label=TARGET, **line)
    curves.set(title="(a) learners' win rate vs the experts' (target_mean)", xlabel="environment steps",
               ylabel="test win rate (%)", ylim=(-2, 102))  # fmt: skip
    present = [s for s in order if s in set(values["series"])]
    sns.histplot(data=values, x="value", hue="series", hue_order=present, palette=palette, stat="density",
                 common_norm=False, element="step", ax=dists, legend=False)  # fmt: skip
    dists.set(
        title="(b) Q-value of the greedy action (colours as in (a); black: experts)",
        xlabel="action value",
        ylabel="density",
    )
    return _finish(fig, [curves], title, "learners: median, 25-75 % band; experts: mean (target_mean)")
