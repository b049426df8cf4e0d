"""CESMA's Figure 9 (appendix A.2): reward against supervised loss, and loss against episode, of the
decentralised agents on cooperative navigation with 3 agents, homogeneous and not.

A :class:`LossSetting` is one task: its DAgger runs and, where the agents differ (the
non-homogeneous task), each agent's series name in agent order ("big and slow", "medium", "small and
fast"). Each run's ``metrics.parquet`` holds, per evaluation, the greedy test return and each
student's own cross-entropy averaged over the updates since the previous evaluation
(``loss_agent{i}``, :class:`~marlrepro.learners.dagger.DAggerLearner`). The team's loss is the mean
of the agents': the team cross-entropy wherever every agent has as many labelled steps as the others
(the shared dataset on MPE: no agent dies and every action is available).

Per task, two panels:

* (a) test return against loss, one point per evaluation and seed: the team's loss on the
  homogeneous task, each agent's on the non-homogeneous one (the return is shared: every agent's
  point at an evaluation has the team's return);
* (b) loss against episode per agent: median over seeds with the minimum and maximum envelope.

The tidy table (:data:`COLUMNS`: CESMA's figure columns, :data:`marlrepro.report.cesma.COLUMNS`,
then ``final_loss_median``, the median over seeds of each run's last logged loss, and
``reward_loss_correlation``, the median over seeds of each run's Pearson correlation over its
evaluations between the test return and the series' loss) has one row per task and series: the
team's, named :data:`~marlrepro.report.cesma.CESMA`, then each agent's. The claim ledger reads it
(:mod:`marlrepro.report.claims`). A task a scale plans no run of is drawn "not planned".
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from marlrepro.report.cesma import CESMA, display_head
from marlrepro.report.cesma import COLUMNS as CESMA_COLUMNS
from marlrepro.report.curves import curve_envelope
from marlrepro.report.demo_counts import NOT_PLANNED
from marlrepro.report.figures import draw_bands, facets, mark_empty, save_figure
from marlrepro.report.published import PublishedClaims, claim_cell
from marlrepro.report.runs import RunDataError, metric_columns, read_final, read_metrics, single_value
from marlrepro.report.style import series_styles, styled
from marlrepro.report.tables import write_table

COLUMNS = (*CESMA_COLUMNS, "final_loss_median", "reward_loss_correlation")
METRIC = "test_return_mean"


@dataclass(frozen=True)
class LossSetting:
    """One task: ``students`` (DAgger run directories) and ``agents`` (each agent's series name, in
    agent order; empty: the agents are alike and the team's loss alone is drawn against the reward)."""

    title: str
    students: list[str]
    agents: list[str]

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> LossSetting:
        """A task from a rule's params."""
        setting = cls(spec["title"], list(spec["students"]), list(spec.get("agents", [])))
        if not setting.students:
            raise RunDataError(f"{setting.title}: no DAgger run")
        return setting

    @property
    def series(self) -> list[str]:
        """The table's series: the team, then each agent."""
        return [CESMA, *self.agents]


def run_losses(run_dir: str, setting: LossSetting) -> pd.DataFrame:
    """One run's evaluations (columns seed, t_env, episode, reward, then one loss column per series
    of ``setting``: the team's mean of the agents', then each agent's)."""
    logged = sum(name.startswith("loss_agent") for name in metric_columns(run_dir))
    losses = [f"loss_agent{i}" for i in range(logged)]
    if not losses:
        raise RunDataError(f"{run_dir}/metrics.parquet: no per-agent supervised loss (loss_agent0, ...); "
                           "a DAgger run of this version logs one per agent")
    metrics = read_metrics(run_dir, ["t_env", "episode", METRIC, *losses])
    if setting.agents and len(setting.agents) != len(losses):
        raise RunDataError(f"{setting.title}: {len(setting.agents)} agent names for {len(losses)} agents in {run_dir}")
    frame = pd.DataFrame({"seed": read_final(run_dir)["seed"], "t_env": metrics["t_env"],
                          "episode": metrics["episode"], "reward": metrics[METRIC],
                          CESMA: metrics[losses].mean(axis=1, skipna=False)})
    for name, column in zip(setting.agents, losses, strict=False):
        frame[name] = metrics[column]
    return frame


def correlation(frame: pd.DataFrame, series: str) -> float:
    """The median over seeds of each seed's Pearson correlation between reward and ``series``' loss
    over its evaluations with a loss (NaN where no seed has three such evaluations of varying values)."""
    values = []
    for _, run in frame.groupby("seed"):
        run = run.dropna(subset=["reward", series])
        if len(run) >= 3 and run["reward"].std() > 0 and run[series].std() > 0:
            values.append(float(np.corrcoef(run["reward"], run[series])[0, 1]))
    return float(np.median(values)) if values else math.nan


def setting_rows(setting: LossSetting, frame: pd.DataFrame, claims: PublishedClaims | None, scale: str,
                 backend: str) -> pd.DataFrame:
    """The table's rows of one task (:data:`COLUMNS`): the team's, then each agent's."""
    lasts = frame.sort_values("t_env").groupby("seed").last()
    rows = []
    for series in setting.series:
        last_loss = frame.dropna(subset=[series]).sort_values("t_env").groupby("seed")[series].last()
        final = lasts["reward"].to_numpy(float)
        rows.append({
            "setting": setting.title, "series": series, "metric": METRIC, "n_seeds": len(lasts),
            "samples_median": float(lasts["t_env"].median()), "final_median": float(np.median(final)),
            "final_min": float(final.min()), "final_max": float(final.max()),
            "exported_median": math.nan, "gap_to_expert": math.nan, "samples_to_maddpg": math.nan,
            "published": claim_cell(claims, series), "scale": scale, "backend": backend,
            "final_loss_median": float(last_loss.median()) if len(last_loss) else math.nan,
            "reward_loss_correlation": correlation(frame, series),
        })  # fmt: skip
    return pd.DataFrame(rows, columns=list(COLUMNS))


def loss_envelope(setting: LossSetting, frame: pd.DataFrame) -> pd.DataFrame:
    """Each agent's (the team's where the agents are alike) loss against episode: median, min and max
    over seeds at each evaluation's episode that every seed logged a loss at (the seeds of a task
    evaluate at the same episodes: MPE's episodes have a fixed length)."""
    series = setting.agents or [CESMA]
    curves = pd.concat([frame[["seed", "episode", name]].rename(columns={"episode": "t_env", name: "value"})
                        .assign(algo=name).dropna() for name in series], ignore_index=True)
    return curve_envelope(curves)


def loss_figure(settings: Sequence[LossSetting], frames: Sequence[pd.DataFrame], envelopes: Sequence[pd.DataFrame],
                title: str, not_planned: Sequence[str]) -> Figure:
    """A row per task: (a) test return against loss, a point per evaluation and seed, per agent on
    the non-homogeneous task; (b) loss against episode, median and min/max envelope over seeds. Then
    a row per ``not_planned`` task, its two panels marked :data:`NOT_PLANNED`."""
    labels = list(dict.fromkeys(name for s in settings for name in (s.agents or [CESMA])))
    styles = series_styles(labels or [CESMA])
    fig, axes = facets(2 * (len(settings) + len(not_planned)), 2, panel=(5.2, 3.8))
    for (ax_a, ax_b), setting, frame, envelope in zip(zip(axes[::2], axes[1::2], strict=True), settings, frames,
                                                       envelopes, strict=False):
        for name in setting.agents or [CESMA]:
            points = frame.dropna(subset=["reward", name])
            ax_a.scatter(points[name], points["reward"], s=12, alpha=0.7, color=styles[name]["color"], label=name)
        ax_a.set(title=f"(a) {setting.title}: reward against loss", xlabel="supervised loss (cross-entropy)",
                 ylabel="mean test return")
        draw_bands(ax_b, envelope, setting.agents or [CESMA], styles, bounds=("min", "max"))
        ax_b.set(title=f"(b) {setting.title}: loss against episode", xlabel="episode",
                 ylabel="supervised loss (cross-entropy)")
        for ax in (ax_a, ax_b):
            ax.legend(fontsize="small")
    for k, task in enumerate(not_planned):
        for ax, panel in zip(axes[2 * (len(settings) + k):2 * (len(settings) + k + 1)], ("(a)", "(b)"), strict=True):
            mark_empty(ax, f"{panel} {task}", NOT_PLANNED)
    fig.suptitle(f"{title}\nloss: median and min/max envelope over seeds")
    return fig


@styled
def loss_report(
    settings: Sequence[LossSetting],
    title: str,
    claims: PublishedClaims | None,
    scale: str,
    scale_description: str,
    table_paths: Sequence[str | Path],
    figure_paths: Sequence[str | Path],
    not_planned: Sequence[str] = (),
) -> pd.DataFrame:
    """The table (csv, md, html) and figure (png, pdf) of Figure 9 over ``settings`` (module
    docstring), beside the paper's words about each series (``claims``); the tasks of
    ``not_planned`` drawn empty, marked :data:`NOT_PLANNED`. Returns the table."""
    backends = [single_value([read_final(run) for run in setting.students], "backend") for setting in settings]
    frames, envelopes, rows = [], [], []
    for setting, backend in zip(settings, backends, strict=True):
        frames.append(pd.concat([run_losses(run, setting) for run in setting.students], ignore_index=True))
        envelopes.append(loss_envelope(setting, frames[-1]))
        rows.append(setting_rows(setting, frames[-1], claims, scale, backend))
    table = pd.concat(rows, ignore_index=True)
    notes = [
        "final: each run's last greedy evaluation (the shared team return), median [min, max] over seeds; "
        "loss: each run's last logged supervised cross-entropy (averaged over the updates since the evaluation "
        "before), median over seeds; the team's is the mean of the agents'.",
        "correlation: each run's Pearson correlation over its evaluations between the test return and the "
        "series' loss, median over seeds (the paper: negative).",
        "CESMA's Figure 9 used a continuous variant with a mean-squared-error loss; ours is the discrete task "
        "with the cross-entropy (docs/deviations.md). Its claims are judged in the claim ledger (cesma_claims).",
    ]
    display = pd.DataFrame({
        **display_head(table, "ours: final return"),
        "final loss": [f"{v:.3g}" if np.isfinite(v) else "—" for v in table["final_loss_median"]],
        "reward–loss correlation": [f"{v:+.2f}" if np.isfinite(v) else "—"
                                    for v in table["reward_loss_correlation"]],
        "published (in words)": table["published"],
    })  # fmt: skip
    backend = ", ".join(dict.fromkeys(backends))
    write_table(table, table_paths, title, scale=scale, scale_description=scale_description, backend=backend,
                notes=notes, display=display, group="setting")
    figure = loss_figure(settings, frames, envelopes, f"{title} (scale: {scale}, backend: {backend})", not_planned)
    save_figure(figure, figure_paths, scale)
    return table
