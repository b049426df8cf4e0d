"""Whole report items, from run directories to the files a rule declares (called by workflow/scripts)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from marlrepro.errors import ConfigError
from marlrepro.report.curves import align_curves, curve_band
from marlrepro.report.figures import learning_curves, matrix_heatmaps, save_figure
from marlrepro.report.published import matrix_game
from marlrepro.report.runs import (
    MATRIX_KEYS,
    read_final,
    read_metrics,
    read_run_config,
    single_value,
)
from marlrepro.report.style import styled
from marlrepro.report.tables import (
    comparison,
    final_metric_summary,
    matrix_game_table,
    q_columns,
    write_table,
)


@styled
def matrix_game_report(
    run_dirs: Sequence[str | Path],
    published_path: str | Path,
    table_key: str,
    method: str,
    scale: str,
    scale_description: str,
    table_paths: Sequence[str | Path],
    figure_paths: Sequence[str | Path],
) -> pd.DataFrame:
    """Table (csv, md, html) and heatmaps of ``method``'s learned Q_tot beside a published matrix game.

    The table is :func:`~marlrepro.report.tables.matrix_game_table`; the heatmaps show the payoff,
    the mean learned Q_tot over the runs, and the published Q_tot. Returns the table.
    """
    published = matrix_game(published_path, table_key)
    finals = [read_final(run_dir, MATRIX_KEYS) for run_dir in run_dirs]
    table = matrix_game_table(finals, published, method, scale)
    pub = published.methods[method]
    label = pub.label
    source = f"published ({published.cite})"
    display = comparison(
        table, "value", {"quantity": "quantity"}, source, missing="not printed", fmt=".2f"
    ).assign(**{"ours per seed": table["per_seed"]})
    if pub.greedy_joint_action is not None:  # the published greedy payoff is that of this joint action
        greedy = display["quantity"] == "greedy payoff"
        display.loc[greedy, source] += " " + "(" + ", ".join(pub.greedy_joint_action) + ")"
    actor_critic = method == "fop"  # its agents execute their policies' most probable actions
    executed = "each agent's most probable action under its policy" if actor_critic else \
        "each agent's argmax of its own Q_i"
    notes = [
        (
        f"{label}'s learned Q_tot of every joint action (agent 1's action first) and the payoff of the greedy "
        f"joint action the agents execute ({executed}); median and 25/75 % quantiles "
        f"over {len(finals)} seeds, every seed's value, the value transcribed from {published.source}, and the "
        f"difference (our median minus published). The game's optimal payoff is {published.optimal_payoff:g}."
        ),
    ]
    if actor_critic:
        notes.append(f"pi<i>(a): agent i's local policy (its probability of action a). {label}'s Q_tot is the "
                     f"smaller of its two critics' (what its targets and its actor use).")
    elif table["quantity"].str.startswith("pi").any():
        notes.append(f"pi<i>(a): agent i's local policy (its probability of action a); the greedy joint action is "
                     f"also the policies' most probable one, since {label}'s transformation preserves each "
                     f"agent's order.")
    write_table(
        table, table_paths, f"{published.cite}: {label}, our runs beside the published numbers",
        scale=scale, scale_description=scale_description, backend=single_value(finals, "backend"),
        notes=notes, display=display,
    )  # fmt: skip
    mean_q = np.mean([final["joint_q"] for final in finals], axis=0)
    fig = matrix_heatmaps(
        [
            ("payoff", published.payoff),
            (f"{label} Q_tot, ours: mean of {len(finals)} seeds", mean_q),
            (f"{label} Q_tot, published", pub.q_tot),
        ],
        published.actions,
        f"{published.cite}: {label} (scale: {scale}, backend: {single_value(finals, 'backend')})",
    )
    save_figure(fig, figure_paths, scale)
    return table


@styled
def matrix_game_summary_report(
    method_tables: Mapping[str, str | Path],
    published_path: str | Path,
    table_key: str,
    scale: str,
    scale_description: str,
    table_paths: Sequence[str | Path],
    figure_paths: Sequence[str | Path],
) -> pd.DataFrame:
    """The whole matrix-game table (ME-IGM Table 1): every method's rows, from the per-method
    tables of :func:`matrix_game_report` (``method_tables``: method -> its csv, in the paper's
    row order), one block per method beside the published values; the heatmaps show the payoff,
    then each method's median learned Q_tot over its seeds above its published Q_tot."""
    published = matrix_game(published_path, table_key)
    parts = []
    for method, path in method_tables.items():
        part = pd.read_csv(path)
        if method not in published.methods:
            raise ConfigError(f"{published_path}: tables.{table_key}.methods has no {method!r}; "
                              f"valid choices: {', '.join(published.methods)}")
        parts.append(part.assign(method=published.methods[method].label).loc[:, ["method", *part.columns]])
    table = pd.concat(parts, ignore_index=True)
    source = f"published ({published.cite})"
    display = comparison(
        table, "value", {"method": "method", "quantity": "quantity"}, source, missing="not printed", fmt=".2f"
    ).assign(**{"ours per seed": table["per_seed"].fillna("")})
    notes = [(
        f"Each method's learned Q_tot of every joint action (agent 1's action first), its local policies "
        f"pi<i>(a) where it has stochastic ones, and the payoff of the joint action its agents execute "
        f"(greedy on their own Q_i, or on their policies for FOP); median and 25/75 % quantiles over seeds, "
        f"every seed's value, the value transcribed from {published.source}, and the difference (our median "
        f"minus published). The game's optimal payoff is {published.optimal_payoff:g}. The per-method "
        f"targets (me_igm_table1_<method>) hold each method's notes and heatmaps."
    )]
    backend = single_value([{"backend": b} for b in table["backend"]], "backend")
    write_table(table, table_paths, f"{published.cite}: our runs beside the published numbers", scale=scale,
                scale_description=scale_description, backend=backend, notes=notes, display=display, group="method")
    panels = [("payoff", published.payoff)]
    for method in method_tables:
        rows = table[table["method"] == published.methods[method].label].set_index("quantity")
        ours = np.full(published.payoff.shape, math.nan)
        for name, (i, j) in q_columns(published.actions).items():
            ours[i, j] = rows.loc[name, "value_median"]
        label = published.methods[method].label
        panels += [(f"{label}, ours (median)", ours), (f"{label}, published", published.methods[method].q_tot)]
    fig = matrix_heatmaps(panels, published.actions, f"{published.cite} (scale: {scale}, backend: {backend})",
                          columns=2)
    save_figure(fig, figure_paths, scale)
    return table


NO_PUBLISHED = "none: not a paper's result"  # the published cell of a table no paper reports


@styled
def learning_curve_report(
    run_dirs: Sequence[str | Path],
    metric: str,
    label: str,
    scale: str,
    scale_description: str,
    table_paths: Sequence[str | Path],
    figure_paths: Sequence[str | Path],
    limits: tuple[float, float] | None = None,
) -> pd.DataFrame:
    """Curves (median, 25-75 % band over seeds) of ``metric`` per algorithm, and its final values.

    For experiments no paper reports (the foundation experiment): the table's ``published_<metric>``
    and ``difference`` are empty and its published column says :data:`NO_PUBLISHED`.
    ``metric`` is a ``metrics.parquet`` column that ``final.json`` also holds (e.g.
    ``test_won_mean``); ``label`` names it on the axis and ``limits`` is its range, if bounded.
    Curves are aligned on the runs' ``run.eval_interval`` grid. Returns the table of final values.
    """
    finals = [read_final(run_dir) for run_dir in run_dirs]
    step = single_value([read_run_config(run_dir)["run"] for run_dir in run_dirs], "eval_interval")
    curves = pd.concat(
        [
            read_metrics(run_dir, ["t_env", metric]).rename(columns={metric: "value"}).assign(algo=final["algo"], seed=final["seed"])
            for run_dir, final in zip(run_dirs, finals, strict=True)
        ],
        ignore_index=True,
    )
    band = curve_band(align_curves(curves, step))
    table = final_metric_summary(finals, metric, scale).assign(
        **{f"published_{metric}": math.nan, "difference": math.nan, "published_source": NO_PUBLISHED}
    )
    env, backend = single_value(finals, "env"), single_value(finals, "backend")
    display = comparison(
        table, metric, {"algo": "method", "t_env_min": "steps (fewest)"}, "published",
        missing=NO_PUBLISHED, fmt=".2f",
    )  # fmt: skip
    notes = [
        (
        f"{env}: {label} of each run's final evaluation (final.json); median and 25/75 % quantiles over seeds. "
        f"No paper publishes this experiment (it checks the shared value-decomposition core), so there is "
        f"nothing to compare with: the published and difference columns are empty on purpose."
        ),
    ]
    write_table(
        table, table_paths, f"{env}: final {label} (foundation experiment, no published numbers)",
        scale=scale, scale_description=scale_description, backend=backend, notes=notes, display=display,
    )  # fmt: skip
    order = list(table["algo"])
    fig = learning_curves(band, order, label, f"{env}: {label} (scale: {scale}, backend: {backend})", limits)
    save_figure(fig, figure_paths, scale)
    return table
