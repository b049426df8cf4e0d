"""The one style of every report figure: seaborn's ``ticks`` look at ``notebook`` font sizes, the
colour-blind palette, one fixed colour per method, png at :data:`DPI` and pdf with embedded TrueType.

Every function that draws and saves a report figure is wrapped in :func:`styled`, which applies
:data:`RC` for the duration of the call only (matplotlib reads rc settings both when artists are
made and when ticks are drawn at save time), so the style never leaks into other code.
:func:`series_styles` gives a method the same colour in every figure (``qmix`` is blue in the
foundation curves and in every IGM-DA figure); series that are not methods take the palette's
unused colours in order.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Sequence
from typing import Any, ParamSpec, TypeVar

import matplotlib as mpl
import seaborn as sns
from cycler import cycler

P = ParamSpec("P")
R = TypeVar("R")

DPI = 200  # png resolution; pdfs are vector
PALETTE = tuple(sns.color_palette("colorblind"))  # Wong's colour-blind-safe colours, as seaborn orders them
# method -> index into PALETTE; fixed, so a method keeps its colour across figures and papers
_PALE = 8  # yellow: too pale for a line on white, so no method has it
_METHOD_INDEX = {
    "qmix": 0, "qmix_da": 1, "qplex": 2, "qplex_da": 3, "dmix": 5, "dmix_da": 4, "qmix_bc": 6,
    "iql": 7, "vdn": 9,
}  # fmt: skip
METHOD_COLOURS: dict[str, tuple[float, float, float]] = {m: PALETTE[i] for m, i in _METHOD_INDEX.items()}
REFERENCE_COLOUR = (0.0, 0.0, 0.0)  # experts, targets and other reference lines
BANNER_COLOUR = "#d55e00"  # the below-paper-scale warning on figures (and, in CSS, on HTML tables)
LINESTYLES = ("-", "--", ":", "-.")  # separates series of one method (e.g. two sight ranges)

RC: dict[str, Any] = {
    **sns.axes_style("ticks"),
    **sns.plotting_context("notebook"),
    "axes.prop_cycle": cycler(color=PALETTE),
    "axes.grid": True,
    "grid.color": "0.9",
    "grid.linewidth": 0.8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titleweight": "bold",
    "figure.titlesize": "large",
    "figure.titleweight": "bold",
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans"],
    "legend.frameon": False,
    "image.cmap": "viridis",
    "savefig.dpi": DPI,
    "savefig.bbox": "tight",
    "pdf.fonttype": 42,  # TrueType in the pdf: text stays text (searchable, editable)
}


def styled(draw: Callable[P, R]) -> Callable[P, R]:
    """Run ``draw`` (a function that builds and saves figures) with :data:`RC` applied."""

    @functools.wraps(draw)
    def with_style(*args: P.args, **kwargs: P.kwargs) -> R:
        with mpl.rc_context(RC):
            return draw(*args, **kwargs)

    return with_style


def method_of(series: str) -> str:
    """The method a series label names: its first word (``'qmix_da (sight 9)'`` -> ``'qmix_da'``)."""
    return series.split(" ", 1)[0]


def series_styles(series: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``color`` and ``linestyle`` per series label, in the order given.

    A series whose first word is a known method (see :func:`method_of`) takes that method's colour;
    other series take the palette colours no method here uses, in order. Series that share a
    colour (one method at two sight ranges) get successive line styles.
    """
    taken = {METHOD_COLOURS[method_of(s)] for s in series if method_of(s) in METHOD_COLOURS}
    unused = [c for i, c in enumerate(PALETTE) if c not in taken and i != _PALE]
    spare = itertools.chain(unused, itertools.cycle(PALETTE))
    styles: dict[str, dict[str, Any]] = {}
    uses: dict[tuple[float, ...], int] = {}
    for name in series:
        colour = METHOD_COLOURS.get(method_of(name)) or next(spare)
        styles[name] = {"color": colour, "linestyle": LINESTYLES[uses.get(colour, 0) % len(LINESTYLES)]}
        uses[colour] = uses.get(colour, 0) + 1
    return styles


def series_colours(series: Sequence[str]) -> dict[str, tuple[float, float, float]]:
    """Just the colours of :func:`series_styles` (for bars, points and seaborn's ``palette=``)."""
    return {name: style["color"] for name, style in series_styles(series).items()}
