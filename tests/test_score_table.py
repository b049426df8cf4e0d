"""ME-IGM's score tables (Tables 2-4): our final win rates per (scenario, method) beside the
published cells, in the paper's unit and order."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from marlrepro.report.published import score_table
from marlrepro.report.runs import RunDataError
from marlrepro.report.score_table import (
    NOT_BUILT,
    PUBLISHED_ONLY,
    display_rows,
    score_rows,
)

PUBLISHED = "config/published/me_igm.yaml"


def _final(algo: str, env: str, seed: int, won: float) -> dict:
    return {"algo": algo, "env": env, "seed": seed, "test_won_mean": won, "backend": "smacv2", "t_env": 10}


def test_ours_is_the_mean_and_std_over_seeds_in_the_papers_unit_beside_every_published_cell():
    published = score_table(PUBLISHED, "table2")
    finals = [_final("me_qmix", "smacv2:protoss_5_vs_5", s, w) for s, w in enumerate((0.5, 0.7, 0.6))]
    finals.append(_final("qmix", "smacv2:zerg_20_vs_23", 0, 0.25))
    table = score_rows(finals, published, ["me_qmix", "me_qplex", "qmix", "qplex", "fop"], "smoke")
    assert len(table) == 15 * 10  # every published cell, in the paper's order
    assert list(table["scenario"].iloc[:10]) == ["protoss_5_vs_5"] * 10
    cell = table.set_index(["scenario", "method"]).loc[("protoss_5_vs_5", "me_qmix")]
    assert cell["ours_mean"] == pytest.approx(60.0) and cell["ours_std"] == pytest.approx(10.0)  # percent
    assert cell["n_seeds"] == 3 and cell["per_seed"] == "50.0, 70.0, 60.0"
    assert (cell["published_mean"], cell["published_std"]) == (75.9, 3.0)
    assert cell["difference"] == pytest.approx(60.0 - 75.9)
    one = table.set_index(["scenario", "method"]).loc[("zerg_20_vs_23", "qmix")]
    assert one["ours_mean"] == pytest.approx(25.0) and math.isnan(one["ours_std"])  # one seed: no spread
    status = table.drop_duplicates("method").set_index("method")["status"]
    assert status["mappo"] == status["hasac"] == NOT_BUILT and status["inq"] == status["imax_ppo"] == PUBLISHED_ONLY
    assert status["fop"] == "ours"
    display = display_rows(table, published).set_index(["scenario", "method"])
    assert display.loc[("protoss_5_vs_5", "ME-QMIX"), "ours: mean ± std over seeds"] == "60.0 ± 10.0"
    assert display.loc[("protoss_5_vs_5", "FOP"), "ours: mean ± std over seeds"] == "not run at this scale"
    assert display.loc[("protoss_20_vs_20", "HASAC"), "published (ME-IGM Table 2)"] == "-"  # a "-" cell


def test_a_fraction_table_keeps_fractions_and_an_empty_published_table_has_no_difference():
    published = score_table(PUBLISHED, "table4")
    table = score_rows([_final("me_qmix_mlp", "smacv2:terran_5_vs_5", 0, 0.4)], published,
                       ["me_qmix_mlp", "me_qmix"], "smoke")
    cell = table.set_index(["scenario", "method"]).loc[("terran_5_vs_5", "me_qmix_mlp")]
    assert cell["ours_mean"] == pytest.approx(0.4) and math.isnan(cell["difference"])


@pytest.mark.parametrize(("finals", "built", "message"), [
    ([_final("qmix", "smacv2:protoss_5_vs_5", 0, 0.5)], ["qmix", "vdn"], "has no methods \\['vdn'\\]"),
    ([_final("vdn", "smacv2:protoss_5_vs_5", 0, 0.5)], ["qmix"], "are not cells of ME-IGM Table 3"),
    ([_final("qmix", "smacv2:protoss_10_vs_10", 0, 0.5)], ["qmix"], "are not cells of ME-IGM Table 3"),
])
def test_runs_that_are_not_cells_of_the_table_fail_with_the_cells(finals, built, message):
    with pytest.raises(RunDataError, match=message):
        score_rows(finals, score_table(PUBLISHED, "table3"), built, "smoke")


def test_the_published_ablation_rows_are_named_as_our_methods():
    """Table 3's +Entropy and +OPT rows are keyed by the methods our runs record."""
    cells = score_table(PUBLISHED, "table3").cells
    assert list(pd.unique(cells["method"])) == ["qmix", "qmix_entropy", "me_qmix"]
    assert list(pd.unique(cells["label"])) == ["QMIX", "+Entropy", "+OPT"]
