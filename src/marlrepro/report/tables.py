"""Tables of our runs beside the published numbers: tidy DataFrames, written as csv, markdown and HTML.

Every table is written three ways (:func:`write_table`): the tidy csv (numbers, one column per
quantity), and a readable markdown and HTML page of its ``display`` form, where ours (median and
25-75 % over seeds), the published value and the difference sit side by side. Every table carries
the scale it came from (a ``scale`` column, and lines above the markdown and HTML table), and a
table below paper scale carries :func:`scale_banner`, so a smoke-scale table can never be mistaken
for a paper-scale one.
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
from marlrepro.report.html_table import DIFFERENCE, table_html
from marlrepro.report.published import PublishedMatrixGame
from marlrepro.report.runs import RunDataError, single_value

PAPER_SCALE = "paper"  # the published settings; every other scale is marked as not comparable


def joint_action_name(actions: Sequence[str], joint: Sequence[int]) -> str:
    """``(['A', 'B', 'C'], [1, 1])`` -> ``'(B, B)'``."""
    try:
        return _joint([actions[int(a)] for a in joint])
    except IndexError:
        raise RunDataError(f"joint action {list(joint)} outside the game's actions {list(actions)}") from None


def _joint(names: Sequence[str]) -> str:
    return "(" + ", ".join(names) + ")"


def q_columns(actions: Sequence[str]) -> dict[str, tuple[int, int]]:
    """Name -> matrix index of a flattened 2-agent Q_tot: ``Q_tot(A, A)``, ``Q_tot(A, B)``, ... (row-major)."""
    return {f"Q_tot({a}, {b})": (i, j) for i, a in enumerate(actions) for j, b in enumerate(actions)}


def matrix_game_table(
    finals: Sequence[Mapping[str, Any]], published: PublishedMatrixGame, method: str, scale: str
) -> pd.DataFrame:
    """``method``'s learned Q_tot and greedy payoff on a 2-agent matrix game beside the published row.

    ``finals`` are the runs' ``final.json`` contents (with the matrix-game keys). One row per
    quantity: ``Q_tot(a1, a2)`` for every joint action (agent 1 first), for softmax-policy agents
    (ME-IGM) each agent's policy ``pi<i>(a)``, then ``greedy payoff``
    (the payoff of the joint action the agents execute, each taking the argmax of its own Q_i).
    Columns: median and 25/75 % quantiles over seeds (``value_*``), the seed count, every seed's
    value in seed order (``per_seed``; for the greedy payoff with the joint action, e.g.
    ``(B, B) 0``), the published value, ``difference`` (our median minus published), scale and
    backend.
    """
    if method not in published.methods:
        raise ConfigError(f"published table has no method {method!r}; methods: {', '.join(published.methods)}")
    if not finals:
        raise RunDataError("matrix_game_table: no runs given")
    runs = sorted(finals, key=lambda f: f["seed"])
    for final in runs:
        where = f"run seed {final['seed']}"
        if final["algo"] != method:
            raise RunDataError(f"{where}: algo {final['algo']!r}, expected {method!r}")
        if not np.array_equal(np.asarray(final["payoff"], dtype=float), published.payoff):
            raise RunDataError(f"{where}: payoff {final['payoff']} differs from the published game {published.payoff.tolist()}")
        if np.shape(final["joint_q"]) != published.payoff.shape:
            raise RunDataError(f"{where}: joint_q has shape {np.shape(final['joint_q'])}, expected {published.payoff.shape}")
    pub = published.methods[method]
    rows = []
    for name, (i, j) in q_columns(published.actions).items():
        values = [float(final["joint_q"][i][j]) for final in runs]
        rows.append(_quantity_row(name, values, ", ".join(f"{v:.2f}" for v in values), float(pub.q_tot[i, j])))
    if all("policy" in final for final in runs):  # softmax-policy agents: their local policies
        printed = list(pub.policies.values())  # agent 1's, then agent 2's, where the paper prints them
        for agent in range(2):
            for k, action in enumerate(published.actions):
                values = [float(final["policy"][agent][k]) for final in runs]
                rows.append(_quantity_row(f"pi{agent + 1}({action})", values, ", ".join(f"{v:.2f}" for v in values),
                                          printed[agent][k] if printed else math.nan))
    payoffs = [float(final["greedy_payoff"]) for final in runs]
    greedy = ", ".join(
        f"{joint_action_name(published.actions, final['greedy_joint_action'])} {payoff:g}"
        for final, payoff in zip(runs, payoffs, strict=True)
    )
    rows.append(_quantity_row("greedy payoff", payoffs, greedy, math.nan if pub.greedy_payoff is None else pub.greedy_payoff))
    return pd.DataFrame(rows).assign(scale=scale, backend=single_value(finals, "backend"))


def _quantity_row(name: str, values: Sequence[float], per_seed: str, published: float) -> dict[str, Any]:
    series = pd.Series(values)
    median = float(series.median())
    return {
        "quantity": name, "value_median": median, "value_q25": series.quantile(0.25),
        "value_q75": series.quantile(0.75), "n_seeds": len(values), "per_seed": per_seed,
        "published_value": published, "difference": median - published,
    }  # fmt: skip


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


# ------------------------------------------------------------------------------- readable tables
OURS = "ours: median [25 %, 75 %] over seeds"  # the header of our numbers in every comparison


def spread(median: float, q25: float, q75: float, fmt: str = ".1f") -> str:
    """A cell ``median [q25, q75]``; empty where the median is missing (a run we did not make)."""
    if pd.isna(median):
        return ""
    return f"{median:{fmt}} [{q25:{fmt}}, {q75:{fmt}}]"


def number(value: float, fmt: str = ".1f", missing: str = "") -> str:
    """``value`` formatted, or ``missing`` where it is NaN."""
    return missing if pd.isna(value) else format(value, fmt)


def comparison(
    table: pd.DataFrame,
    metric: str,
    keys: Mapping[str, str],
    published: str,
    missing: str,
    fmt: str = ".1f",
    count: str = "n_seeds",
) -> pd.DataFrame:
    """The readable form of a tidy table of ``<metric>_median/_q25/_q75``, ``count`` (seeds),
    ``published_<metric>`` and ``difference`` columns: ``keys`` (column -> header) first, then
    ours as ``median [25 %, 75 %]``, the seed count, the published value (header ``published``)
    and the difference (header :data:`~marlrepro.report.html_table.DIFFERENCE`). Cells without a
    published value read ``missing`` (say why: "not printed", ...).
    """
    display = pd.DataFrame({header: table[column].map(_key) for column, header in keys.items()})
    stats = table[[f"{metric}_median", f"{metric}_q25", f"{metric}_q75"]].to_numpy(dtype=float)
    display[OURS] = [spread(*row, fmt=fmt) for row in stats]
    display["seeds"] = [number(n, "d") for n in table[count]]
    display[published] = [number(v, fmt, missing) for v in table[f"published_{metric}"]]
    display[DIFFERENCE] = [number(v, "+" + fmt) for v in table["difference"]]
    return display


def _key(value: Any) -> str:
    """A key cell: numbers without trailing zeros (sight range 0, not 0.0)."""
    return f"{value:g}" if isinstance(value, float) else str(value)


def scale_banner(scale: str) -> str | None:
    """The warning a table or caption of a scale other than ``paper`` carries; None at paper scale."""
    return None if scale == PAPER_SCALE else f"{scale.upper()} SCALE — not comparable with the paper"


def scale_note(scale: str, description: str) -> str:
    """The scale line of every table: which scale the runs used, and what it means."""
    return f"**Scale: {scale}** ({description.strip()})"


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


def write_table(
    table: pd.DataFrame,
    paths: Sequence[str | Path],
    title: str,
    *,
    scale: str,
    scale_description: str,
    backend: str,
    notes: Sequence[str] = (),
    display: pd.DataFrame | None = None,
    group: str | None = None,
) -> None:
    """Write a table to each of ``paths``, by suffix, each atomically.

    ``.csv``: the tidy ``table``. ``.md`` and ``.html``: its readable form ``display`` (default:
    ``table``) under ``title``, the scale banner (:func:`scale_banner`, at any scale but paper),
    the scale with its description, the backend and the ``notes``. ``group`` names a column of
    ``display`` whose runs of equal values form one block in the HTML.
    """
    display = table if display is None else display
    banner = scale_banner(scale)
    header = [
        *([f"> **{banner}.** {scale_description.strip()}"] if banner else []),
        f"{scale_note(scale, scale_description)}. Backend: {backend}.",
    ]
    texts = {  # the readable forms, as text
        ".md": lambda: to_markdown(display, title, [*header, *notes]),
        ".html": lambda: table_html(
            display, title, [("Scale", scale), ("Backend", backend)], notes,
            (banner, scale_description.strip()) if banner else None, group,
        ),
    }  # fmt: skip
    for path in paths:
        suffix = Path(path).suffix
        if suffix == ".csv":
            atomic_write(path, lambda tmp: table.to_csv(tmp, index=False))
        elif suffix in texts:
            text = texts[suffix]()
            atomic_write(path, lambda tmp, text=text: tmp.write_text(text, encoding="utf-8"))
        else:
            raise ValueError(f"{path}: tables are written as .csv, {', '.join(texts)}, not {suffix!r}")
