"""Seaborn figures: matrix-game heatmaps and learning curves with a seed band, saved atomically.

Figures are built on :class:`matplotlib.figure.Figure` directly (no pyplot state), so they work in
any process without a display and never leak between calls.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from marlrepro.io_utils import atomic_write


def matrix_heatmaps(panels: Sequence[tuple[str, np.ndarray]], actions: Sequence[str], title: str) -> Figure:
    """One annotated heatmap per ``(panel title, matrix)``, sharing one colour scale centred on 0.

    Rows are agent 1's action and columns agent 2's, labelled with ``actions``.
    """
    limit = max(float(np.abs(matrix).max()) for _, matrix in panels) or 1.0
    fig = Figure(figsize=(4.0 * len(panels) + 1.0, 4.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    for ax, (name, matrix) in zip(axes, panels, strict=True):
        sns.heatmap(
            matrix, ax=ax, annot=True, fmt=".1f", cmap="vlag", center=0.0, vmin=-limit, vmax=limit,
            square=True, cbar=False, xticklabels=list(actions), yticklabels=list(actions),
        )  # fmt: skip
        ax.set(title=name, xlabel="agent 2 action", ylabel="agent 1 action")
    fig.colorbar(axes[-1].collections[0], ax=list(axes), shrink=0.8, label="value")
    fig.suptitle(title)
    return fig


def learning_curves(band: pd.DataFrame, order: Sequence[str], ylabel: str, title: str) -> Figure:
    """Median line and 25-75 % band per algorithm from a :func:`~marlrepro.report.curves.curve_band` result."""
    palette = dict(zip(order, sns.color_palette("colorblind", len(order)), strict=True))
    fig = Figure(figsize=(6.4, 4.2), layout="constrained")
    ax = fig.subplots()
    for algo in order:
        part = band[band["algo"] == algo]
        ax.fill_between(part["t_env"], part["q25"], part["q75"], color=palette[algo], alpha=0.25, linewidth=0)
    sns.lineplot(data=band, x="t_env", y="median", hue="algo", hue_order=list(order), palette=palette, errorbar=None, ax=ax)
    ax.set(xlabel="environment steps", ylabel=ylabel, title=title)
    ax.legend(title="median, 25-75 % band")
    return fig


def save_figure(fig: Figure, paths: Iterable[str | Path]) -> None:
    """Save ``fig`` to every path (format from the suffix: png, pdf, ...), each atomically."""
    for path in paths:
        fmt = Path(path).suffix.lstrip(".")
        atomic_write(path, lambda tmp: fig.savefig(tmp, format=fmt, dpi=150, bbox_inches="tight"))
