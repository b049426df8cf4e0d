"""A report table as one standalone HTML page: scale banner, title, scale and backend, notes, table.

Snakemake's report shows a registered ``.html`` file inline (a ``.csv`` file it only offers for
download), so every table is also written as this page. The page needs nothing outside itself.
Cells are coloured by what they hold, read from the column header or, failing that, from the
row's label (the first shown cell): ``ours ...`` (our runs), ``published ...`` (transcribed from
the paper) and ``ours − published`` (the difference); see :func:`role`.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

import pandas as pd

DIFFERENCE = "ours − published"  # header (or row label) of every difference

_CSS = """
body { font-family: "DejaVu Sans", Verdana, sans-serif; font-size: 14px; color: #1f2933; margin: 16px; }
h1 { font-size: 19px; margin: 0 0 8px 0; }
.banner { background: #fff4e5; border: 3px solid #d55e00; color: #8a3b00; font-weight: bold;
          font-size: 17px; padding: 10px 14px; margin-bottom: 12px; border-radius: 4px; }
.banner span { display: block; font-weight: normal; font-size: 13px; margin-top: 4px; }
.provenance { margin: 4px 0 10px 0; }
.provenance b { background: #eef2f7; padding: 1px 6px; border-radius: 3px; }
.notes p { margin: 4px 0; color: #3e4c59; font-size: 13px; max-width: 70em; }
.legend span { display: inline-block; padding: 1px 8px; margin-right: 8px; border-radius: 3px; font-size: 12px; }
table { border-collapse: collapse; margin-top: 12px; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #cbd2d9; padding: 4px 9px; text-align: right; white-space: nowrap; }
th { background: #e4e7eb; position: sticky; top: 0; white-space: normal; min-width: 3em; }
td.label, th.label, th.group { text-align: left; }
th.group { background: #f5f7fa; vertical-align: top; }
tbody + tbody { border-top: 3px solid #9aa5b1; }
.ours { background: #e3f0fb; }
.published { background: #f7f0dc; }
.difference { background: #ffffff; font-style: italic; }
"""
_LEGEND = (
    '<p class="legend"><span class="ours">ours: this pipeline\'s runs</span>'
    '<span class="published">published: transcribed from the paper (config/published/)</span>'
    f'<span class="difference">{DIFFERENCE}</span></p>'
)


def role(text: str) -> str:
    """The CSS class of a header or row label: ``difference``, ``published``, ``ours`` or ``''``."""
    text = str(text).strip()
    if text.startswith(DIFFERENCE) or ": " + DIFFERENCE in text:
        return "difference"
    if text.startswith("published") or ": published" in text:
        return "published"
    if text.startswith("ours") or ": ours" in text:
        return "ours"
    return ""


def table_html(
    display: pd.DataFrame,
    title: str,
    provenance: Sequence[tuple[str, str]],
    notes: Sequence[str] = (),
    banner: tuple[str, str] | None = None,
    group: str | None = None,
) -> str:
    """The page: ``banner`` (headline, detail) if given, ``title``, ``provenance`` as bold
    ``(name, value)`` pairs (scale, backend), ``notes`` as paragraphs and ``display``.

    ``display`` holds the cells as they should read (strings; NaN and None read as empty). Rows
    sharing a value of column ``group`` form one block, labelled once on the left.
    """
    label_column = next(c for c in display.columns if c != group)
    head = "".join(
        f'<th class="{"label" if c in (group, label_column) else role(c)}">{html.escape(str(c))}</th>'
        for c in display.columns
    )
    blocks = display.groupby(group, sort=False) if group else [(None, display)]
    body = "".join(_block(part, group) for _, part in blocks)
    parts = [
        f'<div class="banner">{html.escape(banner[0])}<span>{html.escape(banner[1])}</span></div>' if banner else "",
        f"<h1>{html.escape(title)}</h1>",
        '<p class="provenance">'
        + " &nbsp; ".join(f"{html.escape(k)}: <b>{html.escape(v)}</b>" for k, v in provenance)
        + "</p>",
        '<div class="notes">' + "".join(f"<p>{html.escape(n)}</p>" for n in notes) + "</div>",
        _LEGEND,
        f"<table><thead><tr>{head}</tr></thead>{body}</table>",
    ]
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{_CSS}</style></head><body>\n" + "\n".join(p for p in parts if p) + "\n</body></html>\n"
    )


def _block(part: pd.DataFrame, group: str | None) -> str:
    rows = []
    label_column = next(c for c in part.columns if c != group)
    for i, (_, row) in enumerate(part.iterrows()):
        row_role = role(row[label_column])
        cells = []
        for column, value in row.items():
            if column == group:
                if i == 0:
                    cells.append(f'<th class="group" rowspan="{len(part)}">{html.escape(_text(value))}</th>')
                continue
            kind = role(column) or row_role
            classes = " ".join(c for c in (kind, "label" if column == label_column else "") if c)
            cells.append(f'<td class="{classes}">{html.escape(_text(value))}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return "<tbody>" + "".join(rows) + "</tbody>"


def _text(value: object) -> str:
    return "" if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)) else str(value)
