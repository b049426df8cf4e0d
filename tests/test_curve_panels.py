"""Learning curves in panels beside the paper's words (ME-IGM Figures 2 and 4-6): the final value
and the average over training per series, over seeds, from the runs' own files."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import yaml

from marlrepro.report.curve_panels import NO_CLAIM, Panel, curve_panels_report
from marlrepro.report.published import figure_claims
from marlrepro.report.runs import RunDataError

PUBLISHED = "config/published/me_igm.yaml"


def _run(root, name: str, seed: int, algo: str, rows: list[tuple[int, float]], metric: str = "test_return_mean"):
    run_dir = root / name / f"seed{seed}"
    run_dir.mkdir(parents=True)
    final = {"algo": algo, "env": "overcooked:cramped_room", "seed": seed, "t_env": rows[-1][0],
             "test_return_mean": 0.0, "test_won_mean": 0.0, "backend": "overcooked", "updates": 1,
             "wall_time_s": 1.0, "env_steps_per_s": 1.0, "tags": {}}
    (run_dir / "final.json").write_text(json.dumps(final))
    pd.DataFrame({"t_env": [t for t, _ in rows], metric: [v for _, v in rows]}).to_parquet(run_dir / "metrics.parquet")
    (run_dir / "config.yaml").write_text(yaml.safe_dump({"run": {"eval_interval": 100}}))
    return str(run_dir)


def test_each_series_reports_its_final_value_and_its_average_over_training_over_seeds(tmp_path):
    fast = [_run(tmp_path, "fast", s, "me_qmix", [(0, 0.0), (101, 10.0 + s), (205, 20.0 + s)]) for s in range(3)]
    slow = [_run(tmp_path, "slow", s, "qmix", [(0, 0.0), (100, 0.0), (203, 20.0 + 2 * s)]) for s in range(2)]
    panel = Panel("cramped_room", "test_return_mean", "mean test return", {"me_qmix": fast, "qmix": slow})
    table = curve_panels_report([panel], "Figure 4", figure_claims(PUBLISHED, "fig4"), "smoke", "tiny",
                                [tmp_path / "t.csv", tmp_path / "t.md", tmp_path / "t.html"],
                                [tmp_path / "f.png", tmp_path / "f.pdf"])
    rows = table.set_index("series")
    assert rows.loc["me_qmix", "final_median"] == 21.0 and rows.loc["me_qmix", "n_seeds"] == 3
    assert rows.loc["me_qmix", "final_q25"] == pytest.approx(np.quantile([20, 21, 22], 0.25))
    # the average over training: the mean of each run's evaluations, then the median over seeds
    assert rows.loc["me_qmix", "over_training_median"] == pytest.approx(np.median([(0 + 10 + s + 20 + s) / 3 for s in range(3)]))
    assert rows.loc["qmix", "over_training_median"] == pytest.approx(np.median([(20 + 2 * s) / 3 for s in range(2)]))
    assert rows.loc["qmix", "t_env_min"] == 203
    assert rows.loc["me_qmix", "published"].startswith("ME-IGM Figure 4 (§6.2): significantly faster")
    assert rows.loc["qmix", "published"] == NO_CLAIM  # the paper says nothing about QMIX alone
    for path in ("t.csv", "t.md", "t.html", "f.png", "f.pdf"):
        assert (tmp_path / path).stat().st_size > 0
    assert pd.read_csv(tmp_path / "t.csv").shape == table.shape


def test_evaluations_without_a_value_are_left_out_and_a_panel_claim_applies_to_its_series(tmp_path):
    """An update scalar (FOP's q_gap) has no value before the first update: that row is no point
    of the curve, not a zero."""
    runs = [_run(tmp_path, "fop", s, "fop", [(0, math.nan), (100, 1.0), (200, 3.0)], "q_gap") for s in range(2)]
    panel = Panel("(a) test return", "q_gap", "gap", {"lr 0.1": runs})
    table = curve_panels_report([panel], "Figure 6", figure_claims(PUBLISHED, "fig6"), "smoke", "tiny",
                                [tmp_path / "t.csv"], [tmp_path / "f.png"])
    assert table.loc[0, "over_training_median"] == pytest.approx(2.0) and table.loc[0, "final_median"] == 3.0
    assert "not sensitive" not in table.loc[0, "published"] and "lower learning rate" in table.loc[0, "published"]


def test_a_series_without_runs_or_with_two_runs_of_one_seed_fails_clearly(tmp_path):
    run = _run(tmp_path, "a", 0, "qmix", [(0, 1.0), (100, 2.0)])
    twin = _run(tmp_path, "b", 0, "qmix", [(0, 1.0), (100, 2.0)])
    paths = ([tmp_path / "t.csv"], [tmp_path / "f.png"])
    with pytest.raises(RunDataError, match="series without runs: p: qmix"):
        curve_panels_report([Panel("p", "test_return_mean", "r", {"qmix": []})], "F", None, "smoke", "t", *paths)
    with pytest.raises(RunDataError, match="series 'qmix' holds two runs of one seed"):
        curve_panels_report([Panel("p", "test_return_mean", "r", {"qmix": [run, twin]})], "F", None, "smoke", "t", *paths)
