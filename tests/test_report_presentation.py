"""How report items look: the figure style, the HTML tables with their scale banner, the setting
line of the captions, and the paper's numbers reaching captions and tables only from
config/published/. No run directories involved (synthetic frames and planned runs only)."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jinja2
import matplotlib as mpl
import pandas as pd
import pytest
import yaml

from marlrepro.errors import ConfigError
from marlrepro.experiments import Run
from marlrepro.frozenlake import METHOD_LABELS, run_frozenlake
from marlrepro.report.captions import matrix_game_published, run_setting
from marlrepro.report.frozenlake_figure import frozenlake_table
from marlrepro.report.html_table import DIFFERENCE, table_html
from marlrepro.report.published import figure_claims
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
    assert "sight range SMAC's (9; SMACv2: each unit type's own)" in run_setting([run("smax:3m", "vdn", 0)])
    assert run_setting([run("matrix:me_igm", "qmix", s) for s in (0, 2)]) == (
        "matrix:me_igm; qmix; 400 environment steps per run; 2 seeds per method and environment (seeds 0, 2)"
    )


# ------------------------------------------------------------------- published numbers: config only
ROOT = Path(__file__).resolve().parents[1]
PUBLISHED = sorted((ROOT / "config/published").glob("*.yaml"))
ME_IGM_CAPTIONS = ["me_igm_table1_qmix.rst", "me_igm_table1_qmix_figure.rst"]
ME_QMIX_CAPTIONS = ["me_igm_table1_me_qmix.rst", "me_igm_table1_me_qmix_figure.rst"]
FOP_CAPTIONS = ["me_igm_table1_fop.rst", "me_igm_table1_fop_figure.rst"]


def _leaves(node: Any) -> list[Any]:
    if isinstance(node, dict):
        return [leaf for value in node.values() for leaf in _leaves(value)]
    if isinstance(node, list):
        return [leaf for value in node for leaf in _leaves(value)]
    return [node]


def render_caption(name: str, **params: Any) -> str:
    """``workflow/report/NAME`` rendered as Snakemake's report renders it (Jinja over ``snakemake``)."""
    params = {"scale": "paper", "scale_description": "d", "setting": "s", **params}
    template = jinja2.Template((ROOT / "workflow/report" / name).read_text())
    return template.render(snakemake=SimpleNamespace(params=SimpleNamespace(**params)))


def test_me_igm_captions_take_the_published_numbers_from_config(tmp_path):
    """Rendered from a published file whose numbers differ from the paper's, the captions show
    those numbers and none of the paper's: a caption that hard-codes them fails here."""
    data = yaml.safe_load((ROOT / "config/published/me_igm.yaml").read_text())
    table = data["tables"]["table1"]
    table["payoff"][2][2] = 9  # the optimum moves to (C, C)
    table["methods"]["qmix"].update(q_tot=[[-7.25] * 3, [-7.25, 1.75, 1.75], [-7.25, 1.75, 1.75]],
                                    greedy_joint_action=["C", "B"], greedy_payoff=3)  # fmt: skip
    table["methods"]["me_qmix"].update(q_tot=[[-3.5] * 3, [-3.5] * 3, [-3.5, -3.5, 9.25]],
                                       greedy_joint_action=["C", "C"], greedy_payoff=9)  # fmt: skip
    fake = tmp_path / "me_igm.yaml"
    fake.write_text(yaml.safe_dump(data))
    real = matrix_game_published(ROOT / "config/published/me_igm.yaml", "table1", "qmix")
    assert real["optimum"] == "optimal payoff 8 at (A, A)" and "[-8.5, 0.2, 0.2]" in real["q_tot"]
    published = matrix_game_published(fake, "table1", "qmix")
    for name in ME_IGM_CAPTIONS:
        caption = render_caption(name, published=published)
        assert "optimal payoff 9 at (C, C)" in caption and "[-7.25, 1.75, 1.75]" in caption, name
        for printed in ("-8.5", "0.2", "payoff 8", "(A, A)", "(B, B)"):
            assert printed not in caption, f"{name} hard-codes {printed!r}"
        assert "[-8.5, 0.2, 0.2]" in render_caption(name, published=real)
    me_qmix = matrix_game_published(fake, "table1", "me_qmix")
    for name in ME_QMIX_CAPTIONS:  # the same discipline for the ME-QMIX row's captions
        caption = render_caption(name, published=me_qmix)
        assert "optimal payoff 9 at (C, C)" in caption and "[-3.5, -3.5, 9.25]" in caption, name
        for printed in ("-8.5", "-28", "-14", "payoff 8", "(A, A)"):
            assert printed not in caption, f"{name} hard-codes {printed!r}"
    table["methods"]["fop"].update(q_tot=[[-6.75] * 3, [-6.75] * 3, [-6.75, -6.75, 9.0]])
    fake.write_text(yaml.safe_dump(data))
    fop = matrix_game_published(fake, "table1", "fop")
    for name in FOP_CAPTIONS:  # and for the FOP row's
        caption = render_caption(name, published=fop)
        assert "optimal payoff 9 at (C, C)" in caption and "[-6.75, -6.75, 9]" in caption, name
        for printed in ("-12", ".21", ".39", "payoff 8", "(A, A)"):
            assert printed not in caption, f"{name} hard-codes {printed!r}"
    with pytest.raises(ConfigError, match="has no 'vdn'; valid choices: fop, me_qmix, qmix"):
        matrix_game_published(fake, "table1", "vdn")


def test_no_caption_or_report_code_holds_a_published_value():
    """Every decimal number of config/published/ is absent from the captions and report scripts,
    and no string literal of the report code is a published claim (IGM-DA Figure 6)."""
    values = [leaf for path in PUBLISHED for leaf in _leaves(yaml.safe_load(path.read_text()))]
    decimals = {f"{v:g}" for v in values if isinstance(v, float) and not v.is_integer()}
    claims = {c for c in figure_claims(ROOT / "config/published/igm_da.yaml", "fig6").claims.values()}
    assert "-8.5" in decimals and "98.3" in decimals and "reaches the goal" in claims
    for path in [*(ROOT / "workflow/report").glob("*.rst"), *(ROOT / "workflow/scripts").glob("*.py")]:
        text = path.read_text()
        found = [d for d in decimals if re.search(rf"(?<![\w.]){re.escape(d)}(?![\w.])", text)]
        assert not found, f"{path.name} holds published numbers {found}"
    for path in [*(ROOT / "src/marlrepro/report").glob("*.py"), *(ROOT / "workflow/scripts").glob("*.py")]:
        literals = {node.value for node in ast.walk(ast.parse(path.read_text()))
                    if isinstance(node, ast.Constant) and isinstance(node.value, str)}  # fmt: skip
        assert not literals & claims, f"{path.name} holds published claims {literals & claims}"


def test_frozenlake_table_shows_the_claims_of_the_published_file(tmp_path):
    data = yaml.safe_load((ROOT / "config/published/igm_da.yaml").read_text())
    data["figures"]["fig6"]["claims"] = {"qtable": "claim one", "dagger": "claim two"}
    fake = tmp_path / "igm_da.yaml"
    fake.write_text(yaml.safe_dump(data))
    result = run_frozenlake([0], 20)
    table = frozenlake_table(result, "smoke", figure_claims(fake, "fig6"))
    claims = dict(zip(table["method"], table["paper"], strict=True))
    assert claims[METHOD_LABELS["qtable"]] == "claim one" and claims[METHOD_LABELS["dagger"]] == "claim two"
    assert claims[METHOD_LABELS["bc"]] == ""  # not in the paper's figure
    data["figures"]["fig6"]["claims"]["nosuch"] = "x"
    fake.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match="unknown methods \\['nosuch'\\]; valid choices"):
        frozenlake_table(result, "smoke", figure_claims(fake, "fig6"))
