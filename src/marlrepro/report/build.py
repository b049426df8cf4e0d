"""Whole report items, from run directories to the files a rule declares (called by workflow/scripts)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

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
from marlrepro.report.tables import (
    final_metric_summary,
    matrix_game_table,
    scale_note,
    write_table,
)


def matrix_game_report(
    run_dirs: Sequence[str | Path],
    published_path: str | Path,
    table_key: str,
    method: str,
    scale: str,
    scale_description: str,
    table_paths: tuple[str | Path, str | Path],
    figure_paths: Sequence[str | Path],
) -> pd.DataFrame:
    """Table (csv, md) and heatmaps of ``method``'s learned Q_tot beside a published matrix game.

    The heatmaps show the payoff, the mean learned Q_tot over the runs, and the published Q_tot.
    Returns the table.
    """
    published = matrix_game(published_path, table_key)
    finals = [read_final(run_dir, MATRIX_KEYS) for run_dir in run_dirs]
    table = matrix_game_table(finals, published, method, scale)
    label = published.methods[method].label
    notes = [
        scale_note(scale, scale_description),
        f"Backend: {single_value(finals, 'backend')}. Rows 'seed k' and the mean are our runs; the last row "
        f"is transcribed from {published.source}. Greedy joint action: the agents' decentralised argmax, "
        f"rows = agent 1.",
    ]
    csv, md = table_paths
    write_table(table, csv, md, f"{published.cite}: {label}, our runs beside the published numbers", notes)
    mean_q = np.mean([final["joint_q"] for final in finals], axis=0)
    fig = matrix_heatmaps(
        [
            ("payoff", published.payoff),
            (f"{label} Q_tot, mean of {len(finals)} runs ({scale})", mean_q),
            (f"{label} Q_tot, published", published.methods[method].q_tot),
        ],
        published.actions,
        f"{published.cite}: {label} (scale: {scale})",
    )
    save_figure(fig, figure_paths)
    return table


def learning_curve_report(
    run_dirs: Sequence[str | Path],
    metric: str,
    label: str,
    scale: str,
    scale_description: str,
    table_paths: tuple[str | Path, str | Path],
    figure_paths: Sequence[str | Path],
) -> pd.DataFrame:
    """Curves (median, 25-75 % band over seeds) of ``metric`` per algorithm, and its final values.

    ``metric`` is a ``metrics.parquet`` column that ``final.json`` also holds (e.g.
    ``test_won_mean``); ``label`` names it on the axis. Curves are aligned on the runs'
    ``run.eval_interval`` grid. Returns the table of final values.
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
    table = final_metric_summary(finals, metric, scale)
    env, backend = single_value(finals, "env"), single_value(finals, "backend")
    notes = [
        scale_note(scale, scale_description),
        f"{env} (backend {backend}): {label} of each run's final evaluation (final.json); median and "
        f"25/75 % quantiles over seeds.",
    ]
    csv, md = table_paths
    write_table(table, csv, md, f"{env}: final {label}", notes)
    order = list(table["algo"])
    fig = learning_curves(band, order, label, f"{env} ({backend}), scale: {scale}")
    save_figure(fig, figure_paths)
    return table
