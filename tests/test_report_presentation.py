"""How report items look: the figure style, the HTML tables with their scale banner, and the setting
line of the captions. No run directories involved (synthetic frames and planned runs only)."""

from __future__ import annotations

import matplotlib as mpl
import pandas as pd
import pytest

from marlrepro.experiments import Run
from marlrepro.report.captions import run_setting
from marlrepro.report.html_table import DIFFERENCE, table_html
from marlrepro.report.style import (
    METHOD_COLOURS,
    RC,
    REFERENCE_COLOUR,
    series_styles,
    styled,
)
from marlrepro.report.tables import scale_banner, write_table


# ------------------------------------------------------------------------------------------- style
def test_a_method_keeps_its_colour_in_every_figure():
    alone = series_styles(["qmix"])["qmix"]["color"]
    among = series_styles(["iql", "vdn", "qmix"])["qmix"]["color"]
    with_da = series_styles(["qmix_da (sight 0)", "qmix (sight 9)"])["qmix (sight 9)"]["color"]
    assert alone == among == with_da == METHOD_COLOURS["qmix"]
    assert len(set(METHOD_COLOURS.values())) == len(METHOD_COLOURS)  # no two methods share a colour
    assert REFERENCE_COLOUR not in METHOD_COLOURS.values()


def test_series_of_one_method_differ_by_line_style_and_others_take_unused_colours():
    styles = series_styles(["qmix_da (sight 0)", "qmix_da (sight 9)", "sight view 0", "sight view 9"])
    assert styles["qmix_da (sight 0)"]["color"] == styles["qmix_da (sight 9)"]["color"]
    assert styles["qmix_da (sight 0)"]["linestyle"] != styles["qmix_da (sight 9)"]["linestyle"]
    others = {styles["sight view 0"]["color"], styles["sight view 9"]["color"]}
    assert len(others) == 2 and METHOD_COLOURS["qmix_da"] not in others


def test_styled_applies_the_style_only_during_the_call():
    before = mpl.rcParams["axes.titleweight"]

    @styled
    def draw() -> tuple[str, float]:
        return mpl.rcParams["axes.titleweight"], mpl.rcParams["savefig.dpi"]

    assert draw() == ("bold", RC["savefig.dpi"])
    assert mpl.rcParams["axes.titleweight"] == before


# ------------------------------------------------------------------------------------ HTML tables
DISPLAY = pd.DataFrame(
    {
        "map": ["8m", "8m", "3m"],
        "method": ["qmix", "qmix_da", "<b>vdn</b>"],
        "ours: median [25 %, 75 %] over seeds": ["50.0 [40.0, 60.0]", "", "1.0 [1.0, 1.0]"],
        "published (paper)": ["98.3", "99.2", "not printed"],
        DIFFERENCE: ["-48.3", "", ""],
    }
)


def test_html_table_groups_rows_marks_roles_and_escapes_text():
    page = table_html(DISPLAY, "T <1>", [("Scale", "smoke"), ("Backend", "smax")], ["a note"],
                      ("SMOKE SCALE — not comparable with the paper", "tiny"), group="map")  # fmt: skip
    assert page.index('class="banner"') < page.index("<h1>T &lt;1&gt;</h1>") < page.index("<table>")
    assert "Scale: <b>smoke</b>" in page and "Backend: <b>smax</b>" in page and "<p>a note</p>" in page
    assert page.count("<tbody>") == 2 and '<th class="group" rowspan="2">8m</th>' in page
    assert '<td class="ours">50.0 [40.0, 60.0]</td>' in page and '<td class="published">98.3</td>' in page
    assert '<td class="difference">-48.3</td>' in page
    assert "&lt;b&gt;vdn&lt;/b&gt;" in page and "<b>vdn</b>" not in page


def test_tables_below_paper_scale_carry_the_banner(tmp_path):
    table = pd.DataFrame({"algo": ["qmix"], "x": [0.5]})
    for scale in ("smoke", "paper"):
        paths = [tmp_path / f"{scale}.{ext}" for ext in ("csv", "md", "html")]
        write_table(table, paths, "t", scale=scale, scale_description="d", backend="smax")
        marked = [scale_banner("smoke") in path.read_text() for path in paths[1:]]
        assert marked == ([True, True] if scale == "smoke" else [False, False])
        assert pd.read_csv(paths[0]).equals(table)
    assert scale_banner("paper") is None
    with pytest.raises(ValueError, match="tables are written as .csv, .md, .html"):
        write_table(table, [tmp_path / "t.xlsx"], "t", scale="smoke", scale_description="d", backend="smax")


# --------------------------------------------------------------------------------------- captions
def run(env: str, algo: str, seed: int, experiment: str = "e", **settings) -> Run:
    return Run("p", experiment, env, algo, seed, "smoke", "cpu", {"run.t_max": 400, **settings})


def test_run_setting_states_maps_methods_sight_steps_and_seeds():
    runs = [run(f"smax:{m}", a, s, **{"env.options.sight_range": 0}) for m in ("MMM2", "8m") for a in ("qmix", "qmix_da")
            for s in (0, 1)] + [run("smax:MMM2", "qmix", 0, "sweep", **{"env.options.sight_range": 3})]  # fmt: skip
    assert run_setting(runs) == (
        "smax:MMM2, smax:8m; qmix, qmix_da; allies' sight range 0, 3; 400 environment steps per run; "
        "1 or 2 seeds per method and environment (seeds 0-1)"
    )
    assert "sight range each unit type's own" in run_setting([run("smax:3m", "vdn", 0)])
    assert run_setting([run("matrix:me_igm", "qmix", s) for s in (0, 2)]) == (
        "matrix:me_igm; qmix; 400 environment steps per run; 2 seeds per method and environment (seeds 0, 2)"
    )
