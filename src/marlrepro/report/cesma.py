"""CESMA's Figures 4 to 8: reward (Figure 4: test win rate) against environment samples, a
centralised expert then its decentralisation by DAgger, against MADDPG and independent DDPG (Figure 4:
IQL) (the paper prints curves, no numbers).

A :class:`Setting` is one panel (an MPE task): the DAgger runs (the *students*), for each the expert
run it imitates (same task, same seed: ``expert_from``, :mod:`marlrepro.experiments`), and the
baselines' runs by label. Every curve is a ``metrics.parquet`` column (the greedy evaluation's mean
return) against environment steps, drawn as the median over seeds with the minimum and maximum
envelope (§6.2: "we average our experiments over three runs, and plot the minimum and maximum
reward envelopes"; :func:`~marlrepro.report.curves.curve_envelope`).

* Figure 5 (``chained``): the expert's training curve, then the students' curve continuing after it
  on the samples axis: each student's steps are shifted by the steps its own expert trained (every
  sample the expert took counts, as the paper counts "the number of samples in training the expert
  as well as decentralization"); the baselines' curves beside them.
* Figure 4 (SMAC 3s5z, §6.1) is Figure 5's kind on the test win rate (``metric``
  ``test_won_mean``; §6.1: "we plot the median win percentage, as well as the max and min
  envelopes, over five independent runs"), IQL's curve beside; a scale that plans no 3s5z run
  draws its panel "not planned" and writes an empty table.
* Figure 7 is Figure 5's kind, one panel per expert (a DQN or the one-at-a-time expert), each
  with its own series names (:attr:`Setting.label`, :attr:`Setting.expert`); panels a scale plans no
  run of are drawn "not planned". Figure 8 is Figure 6's kind with the baselines drawn as curves
  (``levels=False``): the per-agent datasets' students against the shared dataset's.
* Figure 6: the students' curve from their first step, the baselines' final levels as dashed
  horizontal lines (the median of each run's last evaluation: "converged"), and the expert's
  exported level (the median of each expert run's best evaluation) dotted.

The tidy table (:data:`COLUMNS`, one row per panel and series, the claims ledger reads it:
:mod:`marlrepro.report.claims`) holds each series' seeds, samples (median over seeds of each run's
last step, the expert's included for Figure 5's decentralised agents), final evaluation (median,
min, max over seeds), the expert's exported level (``exported_median``, the expert's row alone),
``gap_to_expert`` (the exported level minus the series' final median, over the exported level's
magnitude: 0.05 is 5 % short of it), ``samples_to_maddpg``: the first step at which the series'
median curve reaches MADDPG's final median (``inf``: never; empty without a MADDPG series), and the
paper's words about the series (``config/published/cesma.yaml: figures``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from marlrepro.report.curves import align_curves, curve_envelope
from marlrepro.report.cesma_plan import CESMA, COLUMNS, MADDPG, Setting
from marlrepro.report.demo_counts import NOT_PLANNED
from marlrepro.report.figures import draw_bands, facets, mark_empty, save_figure
from marlrepro.report.published import PublishedClaims, claim_cell
from marlrepro.report.runs import RunDataError, read_final, read_metrics, read_run_config, single_value
from marlrepro.report.style import REFERENCE_COLOUR, series_styles, styled
from marlrepro.report.tables import write_table

METRIC = "test_return_mean"
# each curve's axis label, by metrics.parquet column
METRIC_LABELS = {"test_return_mean": "mean test return", "test_won_mean": "test win rate"}


def _curve(run_dir: str, label: str, metric: str, offset: int = 0) -> pd.DataFrame:
    """One run's evaluations (columns algo, seed, t_env, value), its steps shifted by ``offset``."""
    metrics = read_metrics(run_dir, ["t_env", metric]).rename(columns={metric: "value"}).dropna()
    return metrics.assign(algo=label, seed=read_final(run_dir)["seed"], t_env=metrics["t_env"] + offset)


def setting_curves(setting: Setting, metric: str, chained: bool) -> pd.DataFrame:
    """Every series' evaluations of ``setting``: the expert's (Figure 5 only), the students' (shifted
    by their own expert's steps when ``chained``) and the baselines'."""
    parts = [_curve(run, setting.expert, metric) for run in (setting.experts if chained else [])]
    parts += [_curve(student, setting.label, metric, int(read_final(expert)["t_env"]) if chained else 0)
              for student, expert in zip(setting.students, setting.imitated(), strict=True)]
    parts += [_curve(run, label, metric) for label, runs in setting.baselines.items() for run in runs]
    curves = pd.concat(parts, ignore_index=True)
    duplicated = curves.duplicated(["algo", "seed", "t_env"])
    if duplicated.any():
        raise RunDataError(f"{setting.title}: series {curves.loc[duplicated, 'algo'].iloc[0]!r} holds two runs of one seed")
    return curves[["algo", "seed", "t_env", "value"]]


def exported_levels(setting: Setting, metric: str) -> np.ndarray:
    """Each imitated expert run's best evaluation of ``metric``: the checkpoint exported to the
    students (with ``choice``, the chosen run's alone)."""
    levels = []
    for run in dict.fromkeys(setting.imitated()):
        best = read_final(run).get("best")
        if not isinstance(best, Mapping) or metric not in best:
            raise RunDataError(f"{run}/final.json: no best evaluation of {metric!r} (an expert keeps run.keep_best)")
        levels.append(float(best[metric]))
    return np.asarray(levels)


def first_reaching(envelope: pd.DataFrame, series: str, level: float) -> float:
    """The first step at which ``series``' median curve reaches ``level``; ``inf`` if it never does,
    NaN if the figure draws no curve of it (Figure 6's expert)."""
    part = envelope[envelope["algo"] == series].sort_values("t_env")
    if part.empty:
        return math.nan
    reached = part.loc[part["median"] >= level, "t_env"]
    return float(reached.iloc[0]) if len(reached) else math.inf


def setting_rows(setting: Setting, curves: pd.DataFrame, envelope: pd.DataFrame, metric: str,
                 claims: PublishedClaims | None, scale: str, backend: str) -> pd.DataFrame:
    """The table's rows of one setting (:data:`COLUMNS`): the expert, the students, the baselines,
    each with the paper's words about the series (``claims``) where it has some."""
    exported = float(np.median(exported_levels(setting, metric)))
    lasts = curves.sort_values("t_env").groupby(["algo", "seed"]).last().reset_index()
    finals = {label: lasts[lasts["algo"] == label] for label in dict.fromkeys(curves["algo"])}
    if setting.expert not in finals:  # Figure 6 draws no expert curve; its row still stands, from the expert runs
        finals = {setting.expert: pd.concat([_curve(run, setting.expert, metric).tail(1) for run in setting.experts]),
                  **finals}
    maddpg = float(finals[MADDPG]["value"].median()) if MADDPG in finals else math.nan
    rows = []
    for label, last in finals.items():
        final = last["value"].to_numpy(float)
        rows.append({
            "setting": setting.title, "series": label, "metric": metric, "n_seeds": len(final),
            "samples_median": float(last["t_env"].median()), "final_median": float(np.median(final)),
            "final_min": float(final.min()), "final_max": float(final.max()),
            "exported_median": exported if label == setting.expert else math.nan,
            "gap_to_expert": (exported - float(np.median(final))) / abs(exported) if exported else math.nan,
            "samples_to_maddpg": first_reaching(envelope, label, maddpg) if not math.isnan(maddpg) else math.nan,
            "published": claim_cell(claims, label), "scale": scale, "backend": backend,
        })  # fmt: skip
    return pd.DataFrame(rows, columns=list(COLUMNS))


def cesma_figure(settings: Sequence[Setting], envelopes: Sequence[pd.DataFrame], tables: Sequence[pd.DataFrame],
                 title: str, chained: bool, ncols: int, levels: bool = True,
                 not_planned: Sequence[str] = (), metric: str = METRIC) -> Figure:
    """One axis per setting: Figure 5's expert-then-students curves and the baselines' curves, or
    (not ``chained``) the students' curve with the baselines' final levels dashed (``levels``,
    Figure 6) or their curves (Figure 8), and the expert's exported level dotted; medians with
    min/max envelopes over seeds. Then one empty axis per ``not_planned`` panel, marked
    :data:`NOT_PLANNED`."""
    labels = list(dict.fromkeys([*(s.label for s in settings), *(label for s in settings for label in s.baselines)]))
    styles = series_styles(labels or [CESMA])
    for setting in settings:  # one method in two stages, as the paper's red curves
        styles[setting.expert] = {**styles[setting.label], "linestyle": ":"}
    fig, axes = facets(len(settings) + len(not_planned), ncols, panel=(5.2, 3.8))
    for ax, setting, envelope, table in zip(axes, settings, envelopes, tables, strict=False):
        if chained:
            series = [setting.expert, setting.label, *setting.baselines]
            stages = {setting.expert: f"{setting.label}: {setting.expert}",
                      setting.label: f"{setting.label}: decentralised agents"}
            draw_bands(ax, envelope, series, styles, bounds=("min", "max"), labels=stages)
        else:
            draw_bands(ax, envelope, [setting.label, *([] if levels else setting.baselines)], styles,
                       bounds=("min", "max"))
            rows = table.set_index("series")
            for label in setting.baselines if levels else ():
                ax.axhline(rows.loc[label, "final_median"], color=styles[label]["color"], linestyle="--",
                           linewidth=1.5, label=f"{label} (final)")
            ax.axhline(rows.loc[setting.expert, "exported_median"], color=REFERENCE_COLOUR, linestyle=":",
                       linewidth=1.0, label=f"{setting.expert} (exported)")
        named = chained and setting.label != CESMA  # Figure 7: one panel per expert of a setting
        ax.set(title=f"{setting.title}: {setting.label}" if named else setting.title, xlabel="environment samples",
               ylabel=METRIC_LABELS[metric])
        ax.legend(fontsize="small")
    for ax, panel in zip(axes[len(settings):], not_planned, strict=True):
        mark_empty(ax, panel, NOT_PLANNED)
    fig.suptitle(f"{title}\nmedian and min/max envelope over seeds")
    return fig


@styled
def cesma_report(
    settings: Sequence[Setting],
    title: str,
    chained: bool,
    claims: PublishedClaims | None,
    scale: str,
    scale_description: str,
    table_paths: Sequence[str | Path],
    figure_paths: Sequence[str | Path],
    metric: str = METRIC,
    ncols: int = 3,
    levels: bool = True,
    not_planned: Sequence[str] = (),
) -> pd.DataFrame:
    """The table (csv, md, html) and figure (png, pdf) of Figure 5 or 7 (``chained``), 6 or 8
    (``levels``: the baselines as final levels or as curves) over ``settings`` (module docstring),
    beside the paper's words about each series (``claims``); each setting's curves aligned on its
    runs' largest ``run.eval_interval``; the panels of ``not_planned`` drawn empty, marked
    :data:`NOT_PLANNED` (with no setting at all, the table is empty). ``metric``: the curves'
    ``metrics.parquet`` column (a key of :data:`METRIC_LABELS`). Returns the table."""
    if metric not in METRIC_LABELS:
        raise RunDataError(f"metric {metric!r}: CESMA's figures draw one of {', '.join(METRIC_LABELS)}")
    backends = [single_value([read_final(run) for run in setting.run_dirs()], "backend") for setting in settings]
    rows, envelopes = [], []
    for setting, backend in zip(settings, backends, strict=True):
        step = max(read_run_config(run)["run"]["eval_interval"] for run in setting.run_dirs())
        curves = setting_curves(setting, metric, chained)
        envelopes.append(curve_envelope(align_curves(curves, step)))
        rows.append(setting_rows(setting, curves, envelopes[-1], metric, claims, scale, backend))
    table = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=list(COLUMNS))
    notes = [
        "final: each run's last greedy evaluation, median [min, max] over seeds; samples: each run's last step "
        + ("(the decentralised agents': their expert's steps and their own)" if chained else "(its own steps)")
        + ", median over seeds.",
        "gap to expert: how far the final median falls short of the exported expert (each expert run's best "
        "evaluation, median over seeds), as a fraction of its magnitude; samples to MADDPG: the first step at "
        "which the series' median curve reaches MADDPG's final median (never: inf).",
        "CESMA prints these curves without numbers: config/published/cesma.yaml holds its claims, judged in "
        "the claim ledger (cesma_claims).",
    ]
    display = pd.DataFrame({
        **display_head(table, "ours: final"),
        "gap to expert": [f"{v:+.1%}" if np.isfinite(v) else "—" for v in table["gap_to_expert"]],
        "samples to MADDPG": [_samples(v) for v in table["samples_to_maddpg"]],
        "published (in words)": table["published"],
    })  # fmt: skip
    backend = ", ".join(dict.fromkeys(backends)) or "none (no run planned at this scale)"
    write_table(table, table_paths, title, scale=scale, scale_description=scale_description, backend=backend,
                notes=notes, display=display, group="setting")
    figure = cesma_figure(settings, envelopes, rows, f"{title} (scale: {scale}, backend: {backend})",
                          chained, min(ncols, len(settings) + len(not_planned)), levels, not_planned, metric)
    save_figure(figure, figure_paths, scale)
    return table


def display_head(table: pd.DataFrame, final: str) -> dict[str, Any]:
    """The first columns of a CESMA table's display (:data:`COLUMNS`' rows): setting, series,
    seeds, median samples and, headed ``final``, the final median [min, max]."""
    return {
        "setting": table["setting"], "series": table["series"], "seeds": table["n_seeds"],
        "samples": [f"{v:,.0f}" for v in table["samples_median"]],
        final: [f"{r.final_median:.3g} [{r.final_min:.3g}, {r.final_max:.3g}]" for r in table.itertuples()],
    }


def _samples(value: float) -> str:
    return "—" if math.isnan(value) else "never" if math.isinf(value) else f"{value:,.0f}"
