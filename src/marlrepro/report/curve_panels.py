"""Figures of learning curves in panels, each panel a set of labelled series of runs, beside the
paper's words about them (ME-IGM Figures 2, 4, 5 and 6: the paper prints curves, no numbers).

A panel plots one ``metrics.parquet`` column against environment steps for each series: the
median over the series' seeds and the 25-75 % band (:mod:`marlrepro.report.curves`). The table
holds, per panel and series, the final value (the last evaluation of each run) and the average
over training (the mean of the run's evaluations: a higher one at an equal final value means
faster learning), each as median and quartiles over seeds, and the paper's claim about the
series where it makes one (``config/published/<paper>.yaml: figures``). A panel may draw
references, horizontal lines at a value read from a JSON file in final.json's fields (MIFQ's
experts: each one's score over its demonstrations), with a row each in the table.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from marlrepro.report.curves import align_curves, curve_band
from marlrepro.report.figures import draw_bands, facets, save_figure
from marlrepro.report.published import NO_CLAIM, PublishedClaims, claim_cell
from marlrepro.report.runs import (
    RunDataError,
    read_final,
    read_metrics,
    read_run_config,
    single_value,
)
from marlrepro.report.style import series_styles, styled
from marlrepro.report.table_columns import PANEL_COLUMNS
from marlrepro.report.tables import write_table


@dataclass(frozen=True)
class Panel:
    """One panel: ``metric`` (a ``metrics.parquet`` column, labelled ``ylabel``, within ``limits``
    if bounded) of each series (label -> run directories); ``references``: label -> a JSON file in
    final.json's fields whose ``metric`` is drawn as a horizontal line."""

    title: str
    metric: str
    ylabel: str
    series: dict[str, list[str]]
    limits: tuple[float, float] | None = None
    references: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> Panel:
        """A panel from a rule's params (``limits`` a list or absent; ``references`` a mapping or absent)."""
        limits = spec.get("limits")
        return cls(spec["title"], spec["metric"], spec["ylabel"], {k: list(v) for k, v in spec["series"].items()},
                   None if limits is None else (float(limits[0]), float(limits[1])), dict(spec.get("references", {})))

    def reference_values(self) -> dict[str, float]:
        """Each reference's value of the panel's metric."""
        values = {}
        for label, path in self.references.items():
            data = json.loads(Path(path).read_text())
            if self.metric not in data:
                raise RunDataError(f"{path}: the reference {label!r} of panel {self.title!r} has no {self.metric!r}")
            values[label] = float(data[self.metric])
        return values


def panel_curves(panel: Panel) -> pd.DataFrame:
    """The panel's evaluations: columns ``algo`` (the series label), ``seed``, ``t_env``, ``value``;
    evaluations without a value (a learner's update scalar before its first update) are dropped."""
    parts = []
    for label, run_dirs in panel.series.items():
        for run_dir in run_dirs:
            metrics = read_metrics(run_dir, ["t_env", panel.metric]).rename(columns={panel.metric: "value"})
            parts.append(metrics.dropna().assign(algo=label, seed=read_final(run_dir)["seed"]))
    curves = pd.concat(parts, ignore_index=True)
    duplicated = curves.duplicated(["algo", "seed", "t_env"])
    if duplicated.any():
        raise RunDataError(f"{panel.title}: series {curves.loc[duplicated, 'algo'].iloc[0]!r} holds two runs of one seed")
    return curves[["algo", "seed", "t_env", "value"]]


def panel_rows(panel: Panel, curves: pd.DataFrame, claims: PublishedClaims | None, scale: str,
               backend: str) -> pd.DataFrame:
    """The table's rows of one panel (:data:`PANEL_COLUMNS`), series in the panel's order."""
    rows = []
    for label in panel.series:
        runs = curves[curves["algo"] == label].sort_values("t_env").groupby("seed")
        final = runs["value"].last().to_numpy(float)
        over = runs["value"].mean().to_numpy(float)
        steps = runs["t_env"].max()
        rows.append({
            "panel": panel.title, "series": label, "metric": panel.metric, "n_seeds": len(final),
            "t_env_min": int(steps.min()) if len(steps) else 0,
            **_quartiles("final", final), **_quartiles("over_training", over),
            "published": claim_cell(claims, label, panel.title), "scale": scale, "backend": backend,
        })  # fmt: skip
    for label, value in panel.reference_values().items():
        rows.append({
            "panel": panel.title, "series": f"{label} (reference)", "metric": panel.metric, "n_seeds": 1,
            "t_env_min": 0, **_quartiles("final", np.array([value])), **_quartiles("over_training", np.array([])),
            "published": NO_CLAIM, "scale": scale, "backend": backend,
        })  # fmt: skip
    return pd.DataFrame(rows, columns=list(PANEL_COLUMNS))


def _quartiles(name: str, values: np.ndarray) -> dict[str, float]:
    if not len(values):
        return {f"{name}_{q}": float("nan") for q in ("median", "q25", "q75")}
    q25, median, q75 = np.quantile(values, [0.25, 0.5, 0.75])
    return {f"{name}_median": float(median), f"{name}_q25": float(q25), f"{name}_q75": float(q75)}


def panels_figure(panels: Sequence[Panel], bands: Sequence[pd.DataFrame], title: str, ncols: int) -> Figure:
    """One axis per panel, the series' median lines and 25-75 % bands; series keep one style
    across panels."""
    styles = series_styles(list(dict.fromkeys(label for panel in panels for label in panel.series)))
    fig, axes = facets(len(panels), ncols, panel=(5.2, 3.8))
    for ax, panel, band in zip(axes, panels, bands, strict=True):
        draw_bands(ax, band, list(panel.series), styles, panel.limits)
        for label, value in panel.reference_values().items():
            ax.axhline(value, color="black", linestyle="--", linewidth=1.0, label=label)
        ax.set(title=panel.title, xlabel="environment steps", ylabel=panel.ylabel)
        ax.legend(fontsize="small")
    fig.suptitle(f"{title}\nmedian and 25-75 % band over seeds")
    return fig


@styled
def curve_panels_report(
    panels: Sequence[Panel],
    title: str,
    claims: PublishedClaims | None,
    scale: str,
    scale_description: str,
    table_paths: Sequence[str | Path],
    figure_paths: Sequence[str | Path],
    ncols: int = 2,
) -> pd.DataFrame:
    """The table (csv, md, html) and figure (png, pdf) of ``panels`` (module docstring); each
    panel's curves are aligned on its runs' ``run.eval_interval``. Returns the table."""
    missing = [f"{panel.title}: {label}" for panel in panels for label, runs in panel.series.items() if not runs]
    if missing:
        raise RunDataError(f"series without runs: {'; '.join(missing)}")
    # one backend per panel (like with like); a figure may set several side by side (MIFQ's tasks)
    backends = [single_value([read_final(run_dir) for runs in panel.series.values() for run_dir in runs], "backend")
                for panel in panels]
    backend = ", ".join(dict.fromkeys(backends))
    rows, bands = [], []
    for panel, panel_backend in zip(panels, backends, strict=True):
        step = max(read_run_config(run_dir)["run"]["eval_interval"] for runs in panel.series.values() for run_dir in runs)
        curves = panel_curves(panel)
        rows.append(panel_rows(panel, curves, claims, scale, panel_backend))
        bands.append(curve_band(align_curves(curves, step)))
    table = pd.concat(rows, ignore_index=True)
    notes = [
        ("final: each run's last evaluation; over training: the mean of each run's evaluations (higher at an "
         "equal final value = faster learning); both as median [25 %, 75 %] over seeds."),
        *([(f"{claims.source}: the paper prints these curves without numbers; its words stand beside ours "
            "(published column).")] if claims is not None else []),
    ]
    display = pd.DataFrame({
        "panel": table["panel"], "series": table["series"], "seeds": table["n_seeds"],
        "ours: final": [_cell(r, "final") for r in table.itertuples()],
        "ours: over training": [_cell(r, "over_training") for r in table.itertuples()],
        "published (in words)": table["published"],
    })  # fmt: skip
    write_table(table, table_paths, title, scale=scale, scale_description=scale_description, backend=backend,
                notes=notes, display=display, group="panel")  # fmt: skip
    fig = panels_figure(panels, bands, f"{title} (scale: {scale}, backend: {backend})", ncols)
    save_figure(fig, figure_paths, scale)
    return table


def _cell(row: Any, name: str) -> str:
    median, q25, q75 = (getattr(row, f"{name}_{q}") for q in ("median", "q25", "q75"))
    return "—" if np.isnan(median) else f"{median:.3g} [{q25:.3g}, {q75:.3g}]"
