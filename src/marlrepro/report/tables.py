"""Tables of our runs beside the published numbers: tidy DataFrames, written as csv and markdown.

Every table carries the scale it came from (a ``scale`` column, and a note above the markdown
table), so a smoke-scale table can never be mistaken for a paper-scale one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from marlrepro.errors import ConfigError
from marlrepro.io_utils import atomic_write
from marlrepro.report.published import PublishedMatrixGame
from marlrepro.report.runs import RunDataError, single_value


def joint_action_name(actions: Sequence[str], joint: Sequence[int]) -> str:
    """``(['A', 'B', 'C'], [1, 1])`` -> ``'(B, B)'``."""
    try:
        return _joint([actions[int(a)] for a in joint])
    except IndexError:
        raise RunDataError(f"joint action {list(joint)} outside the game's actions {list(actions)}") from None


def _joint(names: Sequence[str]) -> str:
    return "(" + ", ".join(names) + ")"


def q_columns(actions: Sequence[str]) -> dict[str, tuple[int, int]]:
    """Column name -> matrix index of a flattened 2-agent Q_tot: ``Q(A,A)``, ``Q(A,B)``, ... (row-major)."""
    return {f"Q({a},{b})": (i, j) for i, a in enumerate(actions) for j, b in enumerate(actions)}


def matrix_game_table(
    finals: Sequence[Mapping[str, Any]], published: PublishedMatrixGame, method: str, scale: str
) -> pd.DataFrame:
    """One row per seed, a mean row and the published row for ``method`` on a 2-agent matrix game.

    ``finals`` are the runs' ``final.json`` contents (with the matrix-game keys). Each run row
    holds the learned Q_tot (row-major), the greedy joint action the agents execute (as action
    letters), its payoff and the game's optimal payoff. The mean row averages Q_tot, the greedy
    payoff and ``greedy_is_optimal`` (the share of seeds that found the optimum). The published
    row is labelled ``published (<cite>)``.
    """
    if method not in published.methods:
        raise ConfigError(f"published table has no method {method!r}; methods: {', '.join(published.methods)}")
    if not finals:
        raise RunDataError("matrix_game_table: no runs given")
    columns = q_columns(published.actions)

    def q_cells(q: np.ndarray) -> dict[str, float]:
        return {name: float(q[index]) for name, index in columns.items()}

    runs = []
    for final in sorted(finals, key=lambda f: f["seed"]):
        where = f"run seed {final['seed']}"
        if final["algo"] != method:
            raise RunDataError(f"{where}: algo {final['algo']!r}, expected {method!r}")
        if not np.array_equal(np.asarray(final["payoff"], dtype=float), published.payoff):
            raise RunDataError(f"{where}: payoff {final['payoff']} differs from the published game {published.payoff.tolist()}")
        q = np.asarray(final["joint_q"], dtype=float)
        if q.shape != published.payoff.shape:
            raise RunDataError(f"{where}: joint_q has shape {q.shape}, expected {published.payoff.shape}")
        runs.append(
            {
                "row": f"seed {final['seed']}", "seed": final["seed"], "scale": scale,
                "backend": final["backend"], "t_env": final["t_env"], **q_cells(q),
                "greedy_joint_action": joint_action_name(published.actions, final["greedy_joint_action"]),
                "greedy_payoff": float(final["greedy_payoff"]), "optimal_payoff": float(final["optimal_payoff"]),
                "greedy_is_optimal": float(final["greedy_payoff"] == final["optimal_payoff"]),
            }
        )  # fmt: skip
    run_rows = pd.DataFrame(runs)
    mean = {
        "row": f"mean over {len(runs)} seeds", "scale": scale, "backend": single_value(finals, "backend"),
        **run_rows[list(columns)].mean().to_dict(), "greedy_joint_action": "",
        "greedy_payoff": run_rows["greedy_payoff"].mean(), "optimal_payoff": published.optimal_payoff,
        "greedy_is_optimal": run_rows["greedy_is_optimal"].mean(),
    }  # fmt: skip
    pub = published.methods[method]
    greedy_payoff = math.nan if pub.greedy_payoff is None else pub.greedy_payoff
    paper = {
        "row": f"published ({published.cite})", "scale": "", "backend": "", **q_cells(pub.q_tot),
        "greedy_joint_action": "" if pub.greedy_joint_action is None else _joint(pub.greedy_joint_action),
        "greedy_payoff": greedy_payoff, "optimal_payoff": published.optimal_payoff,
        "greedy_is_optimal": math.nan if math.isnan(greedy_payoff) else float(greedy_payoff == published.optimal_payoff),
    }  # fmt: skip
    table = pd.DataFrame([*runs, mean, paper], columns=list(run_rows.columns))
    return table.astype({"seed": "Int64", "t_env": "Int64"})


def final_metric_summary(finals: Sequence[Mapping[str, Any]], metric: str, scale: str) -> pd.DataFrame:
    """Median and 25/75 % quantiles over seeds of ``metric`` from each run's ``final.json``, per algo.

    Algorithms keep the order in which they first appear in ``finals``.
    """
    if not finals:
        raise RunDataError("final_metric_summary: no runs given")
    by_algo: dict[str, list[Mapping[str, Any]]] = {}
    for final in finals:
        by_algo.setdefault(final["algo"], []).append(final)
    rows = []
    for algo, runs in by_algo.items():
        values = pd.Series([float(run[metric]) for run in runs])
        rows.append(
            {
                "algo": algo,
                "env": single_value(runs, "env"),
                "backend": single_value(runs, "backend"),
                "scale": scale,
                "n_seeds": len(runs),
                "t_env_min": min(int(run["t_env"]) for run in runs),
                f"{metric}_median": values.median(),
                f"{metric}_q25": values.quantile(0.25),
                f"{metric}_q75": values.quantile(0.75),
            }
        )
    return pd.DataFrame(rows)


def to_markdown(table: pd.DataFrame, title: str, notes: Sequence[str] = ()) -> str:
    """A markdown document: ``# title``, the notes as paragraphs, then ``table`` (floats to 2 places)."""
    header = "| " + " | ".join(map(str, table.columns)) + " |"
    rule = "|" + "|".join("---" for _ in table.columns) + "|"
    body = ["| " + " | ".join(_cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n\n".join([f"# {title}", *notes, "\n".join([header, rule, *body])]) + "\n"


def _cell(value: Any) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value).replace("|", "\\|")


def scale_note(scale: str, description: str) -> str:
    """The line every markdown table starts with: which scale the runs used, and what it means."""
    return f"**Scale: {scale}** ({description.strip()})"


def write_table(table: pd.DataFrame, csv: str | Path, md: str | Path, title: str, notes: Sequence[str]) -> None:
    """Write ``table`` as csv and as markdown (with ``title`` and ``notes``), each atomically."""
    markdown = to_markdown(table, title, notes)
    atomic_write(csv, lambda tmp: table.to_csv(tmp, index=False))
    atomic_write(md, lambda tmp: tmp.write_text(markdown, encoding="utf-8"))
