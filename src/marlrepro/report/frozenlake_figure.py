"""IGM-DA Figure 6 (appendix E): the aliased FrozenLake, each method's learned table and walk, success curves.

:func:`frozenlake_figure` draws the figure from a :class:`~marlrepro.frozenlake.FrozenLakeResult`;
:func:`frozenlake_report` runs the experiment and writes the table (csv, md) and the figure (png, pdf).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure

from marlrepro.errors import ConfigError
from marlrepro.frozenlake import (
    ACTIONS,
    METHOD_LABELS,
    FrozenLakeResult,
    Lake,
    Settings,
    final_summary,
    greedy_path,
    make_lake,
    policy_probabilities,
    run_frozenlake,
)
from marlrepro.report.curves import curve_band
from marlrepro.report.figures import save_figure
from marlrepro.report.published import PublishedClaims, figure_claims
from marlrepro.report.style import series_colours, styled
from marlrepro.report.tables import spread, write_table

NOT_IN_FIGURE = "not in the paper's figure"
BACKEND = "tabular (gymnasium FrozenLake-v1)"
_STEP = {0: (-1, 0), 1: (0, 1), 2: (1, 0), 3: (0, -1)}  # action -> (d column, d row) on the drawn map
_BLOCK_COLOURS = ("#d9f0d3", "#a6dba0", "#c7e9c0", "#74c476")  # four shades of the paper's green boxes
_HOLE, _GOAL = "#253494", "#fec44f"
_END_MARKER = {"goal": "*", "hole": "X", "loops": "o"}


def representative_seed(result: FrozenLakeResult, method: str) -> int:
    """Index (into ``result.seeds``) of the seed with the median final proportional success (lower median)."""
    final = result.final()
    rows = final[(final["method"] == method) & (final["policy"] == "proportional")]
    success = rows.set_index("seed")["success"]
    ranked = np.argsort([success[seed] for seed in result.seeds], kind="stable")
    return int(ranked[(len(ranked) - 1) // 2])


def _draw_lake(ax: Axes, lake: Lake) -> None:
    """Cells shaded by their observation block, holes and goal coloured, letters in the corners."""
    letters = np.array(list("".join(lake.desc)))
    n_obs = lake.n_observations
    colours = [*_BLOCK_COLOURS[:n_obs], _HOLE, _GOAL]
    codes = np.where(letters == "H", n_obs, np.where(letters == "G", n_obs + 1, lake.observation))
    n_rows, n_cols = len(lake.desc), len(lake.desc[0])
    ax.imshow(codes.reshape(n_rows, n_cols), cmap=ListedColormap(colours), vmin=-0.5, vmax=len(colours) - 0.5)
    for cell, letter in enumerate(letters):
        row, col = divmod(cell, n_cols)
        ax.text(col - 0.42, row - 0.42, letter, ha="left", va="top", fontsize="small", fontweight="bold",
                color="white" if letter == "H" else "black")  # fmt: skip
    ax.set_xticks(np.arange(-0.5, n_cols), minor=True)
    ax.set_yticks(np.arange(-0.5, n_rows), minor=True)
    ax.grid(which="minor", color="white", linewidth=1.0)
    for edge in np.arange(1.5, max(n_rows, n_cols) - 1, 2):
        ax.axhline(edge, color="#006d2c", linewidth=2.5)
        ax.axvline(edge, color="#006d2c", linewidth=2.5)
    ax.set(xticks=[], yticks=[])
    ax.tick_params(which="minor", length=0)


def _draw_policy(ax: Axes, lake: Lake, cell_policy: np.ndarray, colour: str) -> None:
    """Arrows from each non-terminal cell's centre, length proportional to pi(a | cell)."""
    n_cols = len(lake.desc[0])
    for cell in np.flatnonzero(~lake.terminal):
        row, col = divmod(int(cell), n_cols)
        for action, (dx, dy) in _STEP.items():
            p = cell_policy[cell, action]
            if p > 0.02:
                ax.arrow(
                    col, row, 0.36 * p * dx, 0.36 * p * dy, width=0.035, head_width=0.13 * np.sqrt(p),
                    head_length=0.09 * np.sqrt(p), length_includes_head=True, color=colour, alpha=0.9,
                )  # fmt: skip


def _draw_path(ax: Axes, lake: Lake, path: list[int], outcome: str, colour: str) -> None:
    """The greedy walk through the cell centres, its end marked by how it ends."""
    rows, cols = np.divmod(np.asarray(path), len(lake.desc[0]))
    jitter = np.linspace(-0.08, 0.08, len(path))  # separates a walk that comes back on itself
    ax.plot(cols + jitter, rows + jitter, color=colour, linewidth=2.2, alpha=0.85, solid_capstyle="round")
    ax.plot(cols[-1], rows[-1], marker=_END_MARKER[outcome], markersize=13, color=colour, markeredgecolor="k")


def _policy_panel(ax: Axes, lake: Lake, cell_table: np.ndarray, policy: str, title: str, colour: str) -> None:
    """Map, the ``policy`` reading of a cell table (cells, actions) as arrows, and its greedy walk."""
    _draw_lake(ax, lake)
    _draw_policy(ax, lake, policy_probabilities(cell_table, policy), "#444444")
    path, outcome = greedy_path(lake, np.argmax(cell_table, axis=-1))
    _draw_path(ax, lake, path, outcome, colour)
    ax.set_title(f"{title}\ngreedy walk: {outcome}", fontsize="medium")


def _curve_band(result: FrozenLakeResult, policy: str) -> pd.DataFrame:
    part = result.curves[result.curves["policy"] == policy]
    aligned = pd.DataFrame(
        {
            "algo": part["method"].map(METHOD_LABELS), "seed": part["seed"], "t_env": part["episode"],
            "value": part["success"],
        }
    )  # fmt: skip
    return curve_band(aligned)


def _curves_panel(
    ax: Axes, result: FrozenLakeResult, policy: str, palette: dict[str, tuple[float, ...]], title: str
) -> None:
    band = _curve_band(result, policy)
    for label, colour in palette.items():
        part = band[band["algo"] == label]
        ax.fill_between(part["t_env"], part["q25"], part["q75"], color=colour, alpha=0.25, linewidth=0)
    sns.lineplot(data=band, x="t_env", y="median", hue="algo", hue_order=list(palette), palette=palette,
                 errorbar=None, ax=ax)  # fmt: skip
    ax.set(xlabel="training episodes", ylabel="P(reach G within 100 steps)", ylim=(-0.03, 1.03))
    ax.set_title(title, fontsize="medium")
    ax.legend(title="median, 25-75 % band over seeds", fontsize="small", title_fontsize="small")


def frozenlake_figure(result: FrozenLakeResult, scale: str) -> Figure:
    """Figure 6 style: (a) the map with its four observation blocks and the DAgger expert's greedy walk on
    the true cells, (b) per method its table q(o, a) / Q(o, a) (heatmap) and, on the map, its
    Proposition-5 action probabilities (arrows) and greedy walk (line; star: goal, X: hole, o: loops),
    (c) success probability vs training episodes under the greedy and the proportional reading.

    Panels (a', b) show each method's representative seed (median final proportional success).
    """
    lake = make_lake()
    methods = list(result.tables)
    palette = series_colours([METHOD_LABELS[m] for m in methods])
    colours = list(palette.values())
    columns = len(methods) + 1
    fig = Figure(figsize=(3.9 * columns, 11.5), layout="constrained")
    grid = fig.add_gridspec(3, columns, height_ratios=[1.0, 0.75, 1.0])
    ax_map = fig.add_subplot(grid[0, 0])
    _draw_lake(ax_map, lake)
    ax_map.set_title("(a) FrozenLake, 4x4, deterministic:\neach green box is one observation", fontsize="medium")
    ax_map.set_xlabel("arrows: pi(a | o); line: greedy walk\n(star: goal, X: hole, o: loops)", fontsize="small")
    expert_method = next((m for m in ("dagger", "bc") if m in result.experts), None)
    ax_expert = fig.add_subplot(grid[1, 0])
    if expert_method is None:
        ax_expert.set_axis_off()
    else:
        seed = representative_seed(result, expert_method)
        name, shown = METHOD_LABELS[expert_method], result.seeds[seed]
        title = f"(a') {name}: expert,\ngreedy on the true cell, seed {shown}"
        _policy_panel(ax_expert, lake, result.experts[expert_method][seed], "greedy", title, "black")
    final = result.final().set_index(["method", "policy", "seed"])["success"]
    for column, (method, colour) in enumerate(zip(methods, colours, strict=True), start=1):
        seed = representative_seed(result, method)
        table = result.tables[method][seed]
        p_prop = final[(method, "proportional", result.seeds[seed])]
        shown = result.seeds[seed]
        title = f"(b) {METHOD_LABELS[method]}, seed {shown}\nProp. 5 reading: P(G) = {p_prop:.2f}"
        ax_policy = fig.add_subplot(grid[0, column])
        _policy_panel(ax_policy, lake, table[lake.observation], "proportional", title, colour)
        ax_table = fig.add_subplot(grid[1, column])
        sns.heatmap(
            table, ax=ax_table, annot=True, fmt=".2f", cmap="Greens", cbar=False, annot_kws={"fontsize": "small"},
            xticklabels=list(ACTIONS), yticklabels=[f"box {o}" for o in range(lake.n_observations)],
        )  # fmt: skip
        ax_table.set_title(f"{'Q' if method == 'qtable' else 'q'}(o, a), {METHOD_LABELS[method]}", fontsize="medium")
        ax_table.tick_params(labelsize="small")
    split = columns // 2
    ax_greedy = fig.add_subplot(grid[2, :split])
    _curves_panel(ax_greedy, result, "greedy", palette, "(c) greedy policy (argmax)")
    ax_greedy.text(
        0.5, 0.5, "no deterministic policy on the 4 boxes reaches G:\nevery greedy curve is 0",
        transform=ax_greedy.transAxes, ha="center", va="center", fontsize="medium", color="#555555",
    )  # fmt: skip
    _curves_panel(fig.add_subplot(grid[2, split:]), result, "proportional", palette,
                  "(c) Prop. 5 reading: pi(a|o) = q(o, a) / sum q(o, .)")  # fmt: skip
    fig.suptitle(
        f"IGM-DA Figure 6: aliased FrozenLake, {len(result.seeds)} seeds x {result.episodes} episodes "
        f"(scale: {scale})"
    )
    return fig


def frozenlake_table(result: FrozenLakeResult, scale: str, published: PublishedClaims) -> pd.DataFrame:
    """:func:`~marlrepro.frozenlake.final_summary` with the scale, the backend and the paper's claim
    per method (``published``: ``fig6`` of ``config/published/igm_da.yaml``)."""
    table = final_summary(result)
    unknown = sorted(set(published.claims) - set(METHOD_LABELS))
    if unknown:
        raise ConfigError(f"{published.cite}: claims about unknown methods {unknown}; valid choices: "
                          f"{', '.join(METHOD_LABELS)}")
    claims = {METHOD_LABELS[m]: claim for m, claim in published.claims.items()}
    return table.assign(scale=scale, backend=BACKEND, paper=table["method"].map(claims).fillna(""))


@styled
def frozenlake_report(
    seeds: Sequence[int],
    episodes: int,
    scale: str,
    scale_description: str,
    table_paths: Sequence[str | Path],
    figure_paths: Sequence[str | Path],
    published_path: str | Path,
    settings: Settings | None = None,
) -> pd.DataFrame:
    """Run the FrozenLake experiment, write its table (csv, md, html) and Figure 6 (png, pdf); returns the table.

    The paper's Figure 6 is qualitative, so the published column holds its claim per method
    (``fig6`` of the published file ``published_path``) and there is no difference column.
    """
    settings = settings or Settings()
    published = figure_claims(published_path, "fig6")
    result = run_frozenlake(list(seeds), episodes, settings=settings)
    table = frozenlake_table(result, scale, published)
    notes = [
        f"{episodes} training episodes per run, seeds {list(result.seeds)}; tabular, on the CPU.",
        (
            "gymnasium FrozenLake-v1, is_slippery=False, map SFFF/FHFH/FHFH/HFFG; the agent observes only its "
            "2x2 block. Success = exact probability of reaching G within gymnasium's 100-step limit, at the last "
            "evaluation; median and 25/75 % quantiles over seeds; reaches_goal = seeds with success > 0."
        ),
        (
            "greedy = argmax of the acting table; proportional = pi(a|o) = q(o, a) / sum q(o, .), the reading of "
            "Proposition 5 (the regressed q is an average of one-hots). No deterministic memoryless policy on "
            "the four blocks reaches G (all 256 enumerated), so every greedy row is 0 by construction; the "
            "proportional row of the plain Q-table is a control (its entries are values, not probabilities)."
        ),
        (
            f"Settings: gamma {settings.gamma}, Q-learning step {settings.td_lr}, imitation step "
            f"{settings.imitation_lr}, epsilon {settings.epsilon_start} -> {settings.epsilon_end} over the first "
            f"{settings.epsilon_fraction:.0%} of the episodes."
        ),
        (
            f"published: the claim of {published.cite}. The paper prints no success rates for this "
            "experiment, only the claim, so there is no difference to compute."
        ),
    ]
    write_table(
        table, table_paths, "IGM-DA Figure 6: FrozenLake, Q-table vs DAgger Q-table", scale=scale,
        scale_description=scale_description, backend=BACKEND, notes=notes, display=frozenlake_display(table),
        group="method",
    )  # fmt: skip
    save_figure(frozenlake_figure(result, scale), figure_paths, scale)
    return table


def frozenlake_display(table: pd.DataFrame) -> pd.DataFrame:
    """The readable form of :func:`frozenlake_table`: per method and policy reading, ours beside the paper's claim."""
    rows = []
    for _, row in table.iterrows():
        for policy, reading in (("greedy", "greedy (argmax)"), ("proportional", "Prop. 5 reading")):
            stats = (row[f"{policy}_success_{s}"] for s in ("median", "q25", "q75"))
            rows.append({
                "method": row["method"], "policy": reading,
                "ours: P(reach G) median [25 %, 75 %]": spread(*stats, fmt=".2f"),
                "ours: seeds reaching G": row[f"{policy}_reaches_goal"],
                "published claim (Fig. 6(b))": row["paper"] or NOT_IN_FIGURE,
            })  # fmt: skip
    return pd.DataFrame(rows)
