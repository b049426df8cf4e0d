"""Seaborn figures: matrix-game heatmaps and learning curves with a seed band, saved atomically.

Figures are built on :class:`matplotlib.figure.Figure` directly (no pyplot state), so they work in
any process without a display and never leak between calls. Their look comes from
:mod:`~marlrepro.report.style`, applied by the report functions that draw and save them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.transforms import offset_copy

from marlrepro.io_utils import atomic_write
from marlrepro.report.style import BANNER_COLOUR, DPI, series_styles
from marlrepro.report.tables import scale_banner


def matrix_heatmaps(panels: Sequence[tuple[str, np.ndarray]], actions: Sequence[str], title: str,
                    columns: int | None = None) -> Figure:
    """One annotated heatmap per ``(panel title, matrix)``, sharing one colour scale centred on 0,
    ``columns`` per row (default: all in one row; the first panel alone on the first row when the
    rest fill whole rows, e.g. the payoff above one row per method).

    Rows are agent 1's action and columns agent 2's, labelled with ``actions``.
    """
    limit = max(float(np.abs(matrix).max()) for _, matrix in panels) or 1.0
    columns = columns or len(panels)
    rows = 1 + -(-(len(panels) - 1) // columns) if columns < len(panels) else 1
    fig = Figure(figsize=(4.0 * columns + 1.0, 4.6 * rows), layout="constrained")
    grid = np.atleast_2d(fig.subplots(rows, columns))
    axes = ([grid[0, 0], *grid[1:].ravel()] if rows > 1 else list(grid.ravel()))[:len(panels)]
    for ax in grid.ravel():
        if all(ax is not used for used in axes):
            ax.set_axis_off()
    for ax, (name, matrix) in zip(axes, panels, strict=True):
        sns.heatmap(
            matrix, ax=ax, annot=True, fmt=".1f", cmap="vlag", center=0.0, vmin=-limit, vmax=limit,
            square=True, cbar=False, xticklabels=list(actions), yticklabels=list(actions),
        )  # fmt: skip
        ax.set(title=name, xlabel="agent 2 action", ylabel="agent 1 action")
    fig.colorbar(axes[-1].collections[0], ax=axes, shrink=0.8, label="value")
    fig.suptitle(title)
    return fig


def facets(n: int, ncols: int, panel: tuple[float, float] = (4.2, 3.3)) -> tuple[Figure, list[Axes]]:
    """A constrained-layout figure with ``n`` panels in rows of ``ncols`` (spare panels hidden)."""
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(panel[0] * ncols, panel[1] * nrows + 0.8), layout="constrained")
    axes = list(fig.subplots(nrows, ncols, squeeze=False).ravel())
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def draw_bands(ax: Axes, band: pd.DataFrame, series: Sequence[str], styles: Mapping[str, Mapping[str, Any]],
               limits: tuple[float, float] | None = None, bounds: tuple[str, str] = ("q25", "q75"),
               labels: Mapping[str, str | None] | None = None) -> None:
    """Median line and 25-75 % band of each of ``series`` (``band``'s column ``algo``, a
    :func:`~marlrepro.report.curves.curve_band` result) on ``ax``; ``bounds``: the band's columns
    (``("min", "max")`` for a :func:`~marlrepro.report.curves.curve_envelope`). ``limits``: the
    metric's range (e.g. 0 and 1 for a win rate), shown whole on the y axis. ``labels``: a series'
    legend entry, if not its name (None: none, e.g. a second stage of a series)."""
    low, high = bounds
    for name in series:
        part = band[band["algo"] == name]
        label = name if labels is None else labels.get(name, name)
        ax.fill_between(part["t_env"], part[low], part[high], color=styles[name]["color"], alpha=0.2, linewidth=0)
        ax.plot(part["t_env"], part["median"], label=label, linewidth=2.0, **styles[name])
    if limits is not None:
        pad = 0.02 * (limits[1] - limits[0])
        ax.set_ylim(limits[0] - pad, limits[1] + pad)


def mark_empty(ax: Axes, title: str, text: str) -> None:
    """An empty panel titled ``title``, ``text`` (e.g. why nothing is drawn: not planned at this
    scale) written across its middle, without ticks."""
    ax.set(title=title, xticks=[], yticks=[])
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", style="italic", color="0.35")


def learning_curves(
    band: pd.DataFrame, order: Sequence[str], ylabel: str, title: str, limits: tuple[float, float] | None = None
) -> Figure:
    """Median line and 25-75 % band per algorithm from a :func:`~marlrepro.report.curves.curve_band`
    result (:func:`draw_bands`)."""
    fig = Figure(figsize=(7.0, 4.6), layout="constrained")
    ax = fig.subplots()
    draw_bands(ax, band, order, series_styles(order), limits)
    ax.set(xlabel="environment steps", ylabel=ylabel, title=title)
    ax.legend(title="median, 25-75 % band over seeds")
    return fig


def save_figure(fig: Figure, paths: Iterable[str | Path], scale: str) -> None:
    """Save ``fig`` to every path (format from the suffix: png, pdf, ...), each atomically.

    Below paper scale the figure first gets :func:`~marlrepro.report.tables.scale_banner` above
    everything else, so a smoke figure cannot pass for a result either.
    """
    banner = scale_banner(scale)
    if banner:
        above = offset_copy(fig.transFigure, fig=fig, y=14, units="points")  # clear of the title
        fig.text(0.5, 1.0, banner, transform=above, ha="center", va="bottom", color=BANNER_COLOUR, fontweight="bold",
                 fontsize="large", bbox={"facecolor": "#fff4e5", "edgecolor": BANNER_COLOUR, "pad": 6})  # fmt: skip
    for path in paths:
        fmt = Path(path).suffix.lstrip(".")
        atomic_write(path, lambda tmp, fmt=fmt: fig.savefig(tmp, format=fmt, dpi=DPI, bbox_inches="tight"))
