"""The IGM-DA report builders (Table 1, Figs. 3, 4/5(a, b)/7 and 5(c)) on SYNTHETIC run directories.

Every run directory here is hand-made (final.json, metrics.parquet, config.yaml and, for IGM-DA
runs, action_values.parquet) so that the expected medians, quartiles and averages are known
exactly; none of it is a training result.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from matplotlib.figure import Figure

from marlrepro.errors import ConfigError
from marlrepro.report import igm_da
from marlrepro.report.igm_da import (
    curves_report,
    lossy_decomposition_report,
    moving_average,
    sight_sweep_report,
    table1_report,
)
from marlrepro.report.published import published_table1
from marlrepro.report.runs import RunDataError
from marlrepro.report.style import METHOD_COLOURS
from marlrepro.report.table_columns import AVG

PUBLISHED = {
    "source": "Hong, Jin, Tang: Rethinking Individual Global Max in Cooperative MARL, Table 1 (published)",
    "cite": "IGM-DA (Hong et al.)",
    "table1": {
        "metric": "mean win rate (%) at sight range 0",
        "maps": ["3s5z", "5m_vs_6m", "MMM2", "8m", "3s_vs_5z", "8m_vs_9m"],
        "methods": {
            "qmix": {"label": "qmix", "win_rate": [90.2, 36.4, 26.2, 98.3, 1.9, 33.9], "avg": 47.8},
            "qmix_da": {"label": "qmix-DA", "win_rate": [93.3, 50.6, 55.4, 99.2, 43.9, 70.8], "avg": 68.9},
            "qplex": {"label": "qplex", "win_rate": [87.0, 5.0, 0.0, 98.7, 18.9, 36.2], "avg": 41.0},
        },
    },
}
EVAL = 1000  # run.eval_interval of every synthetic run
STEPS = np.arange(0, 10 * EVAL, EVAL)  # evaluations at 0, 1000, ..., 9000


def make_run(
    root: Path, algo: str, map_name: str, seed: int, won: float, *, sight: float | None = 0.0,
    curve: np.ndarray | None = None, expert: np.ndarray | None = None,
    values: dict[str, list[float]] | None = None,
) -> Path:  # fmt: skip
    """A synthetic run directory: final win rate ``won`` (0..1); ``curve`` defaults to a ramp to ``won``.

    ``expert`` adds the ``test_expert_won_mean`` curve and ``values`` (agents -> Q-values) writes
    action_values.parquet, as IGM-DA runs do.
    """
    run_dir = root / f"smax-{map_name}" / algo / f"seed{seed}" / f"sight{sight}"
    run_dir.mkdir(parents=True)
    curve = np.linspace(0.0, won, len(STEPS)) if curve is None else curve
    final = {"algo": algo, "env": f"smax:{map_name}", "seed": seed, "t_env": int(STEPS[-1]), "updates": 10,
             "test_return_mean": 1.0, "test_won_mean": won, "wall_time_s": 1.0, "env_steps_per_s": 1.0,
             "backend": "smax", "tags": {}}  # fmt: skip
    (run_dir / "final.json").write_text(json.dumps(final))
    metrics = pd.DataFrame({"t_env": STEPS, "test_won_mean": curve, "test_return_mean": 1.0})
    if expert is not None:
        metrics["test_expert_won_mean"] = expert
    metrics.to_parquet(run_dir / "metrics.parquet")
    mode = "dagger" if algo.endswith("_da") else "bc" if algo.endswith("_bc") else "none"
    config = {"algo": algo, "env": {"name": f"smax:{map_name}", "options": {"sight_range": sight}},
              "imitation": {"mode": mode}, "run": {"eval_interval": EVAL}}  # fmt: skip
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    if values is not None:
        rows = [(agents, v) for agents, vs in values.items() for v in vs]
        pd.DataFrame(rows, columns=["agents", "value"]).to_parquet(run_dir / "action_values.parquet")
    return run_dir


@pytest.fixture
def published(tmp_path) -> Path:
    path = tmp_path / "igm_da.yaml"
    path.write_text(yaml.safe_dump(PUBLISHED, sort_keys=False))
    return path


@pytest.fixture
def figures(monkeypatch) -> list[Figure]:
    """Every figure a builder saves (still saved to its paths)."""
    saved, save = [], igm_da.save_figure
    monkeypatch.setattr(igm_da, "save_figure", lambda fig, *args: (saved.append(fig), save(fig, *args)))
    return saved


def outputs(root: Path, name: str) -> tuple[tuple[Path, Path, Path], tuple[Path, Path]]:
    return (root / f"{name}.csv", root / f"{name}.md", root / f"{name}.html"), (root / f"{name}.png", root / f"{name}.pdf")


def assert_written(tables: tuple[Path, Path, Path], figs: tuple[Path, Path]) -> str:
    """The five files exist and are non-empty (real png and pdf, the HTML table marked as below paper
    scale); returns the markdown."""
    csv, md, page = tables
    png, pdf = figs
    assert len(pd.read_csv(csv)) > 0
    assert "SMOKE SCALE — not comparable with the paper" in page.read_text() and "<table>" in page.read_text()
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 1000
    return md.read_text()


def line(fig: Figure, label: str, panel: int = 0) -> np.ndarray:
    """The y data of the line labelled ``label`` in the ``panel``-th axes of ``fig``."""
    (match,) = [ln for ln in fig.axes[panel].get_lines() if ln.get_label() == label]
    return np.asarray(match.get_ydata(), dtype=float)


# ------------------------------------------------------------------------------------- Table 1
# (algo, map) -> final win rates of seeds 0, 1, 2
TABLE1_WINS = {
    ("qmix", "3s5z"): [0.8, 0.9, 1.0],  # median 90, quartiles 85 / 95
    ("qmix", "8m"): [1.0, 0.6, 0.8],  # median 80, quartiles 70 / 90
    ("qmix_da", "3s5z"): [0.5, 0.7, 0.6],  # median 60, quartiles 55 / 65
    ("qmix_da", "8m"): [1.0, 1.0, 0.9],  # median 100, quartiles 95 / 100
}


def test_table1_beside_the_published_table(tmp_path, published, figures):
    runs = [
        make_run(tmp_path / "runs", a, m, s, w)
        for (a, m), wins in TABLE1_WINS.items()
        for s, w in enumerate(wins)
    ]
    tables, figs = outputs(tmp_path / "out", "table1")
    table = table1_report(runs, published, "smoke", "SMOKE: tiny budget", tables, figs).set_index(
        ["method", "map"]
    )

    assert table.loc[
        ("qmix", "3s5z"), ["win_rate_median", "win_rate_q25", "win_rate_q75"]
    ].tolist() == pytest.approx([90.0, 85.0, 95.0])
    assert table.loc[
        ("qmix", "8m"), ["win_rate_median", "win_rate_q25", "win_rate_q75"]
    ].tolist() == pytest.approx([80.0, 70.0, 90.0])
    assert table.loc[("qmix_da", "8m"), ["win_rate_q25", "win_rate_q75"]].tolist() == pytest.approx(
        [95.0, 100.0]
    )
    assert table.loc[("qmix_da", "3s5z"), "published_win_rate"] == 93.3
    assert table.loc[("qmix_da", "3s5z"), "difference"] == pytest.approx(60.0 - 93.3)
    assert (table.loc[["qmix", "qmix_da"], "n_seeds"].dropna() == 3).all()
    # Avg.Score over the two maps we ran, compared with the paper's mean over the same two maps
    assert table.loc[("qmix", AVG), "win_rate_median"] == pytest.approx(85.0)
    assert table.loc[("qmix", AVG), "published_win_rate"] == pytest.approx((90.2 + 98.3) / 2)
    assert table.loc[("qmix_da", AVG), "difference"] == pytest.approx(80.0 - (93.3 + 99.2) / 2)
    assert table.loc[("qmix", AVG), "n_maps"] == 2
    # a method we did not run keeps every published cell and the printed Avg.Score
    qplex = table.loc["qplex"]
    assert list(qplex.index) == [*PUBLISHED["table1"]["maps"], AVG]
    assert qplex["published_win_rate"].tolist() == [87.0, 5.0, 0.0, 98.7, 18.9, 36.2, 41.0]
    assert qplex["win_rate_median"].isna().all() and qplex.loc[AVG, "n_maps"] == 0
    # maps we did not run still carry the published value of methods we ran
    assert table.loc[("qmix", "MMM2"), "published_win_rate"] == 26.2
    assert np.isnan(table.loc[("qmix", "MMM2"), "win_rate_median"])
    assert set(table["scale"]) == {"smoke"} and set(table["backend"]) == {"smax"}

    md = assert_written(tables, figs)
    assert "**Scale: smoke** (SMOKE: tiny budget). Backend: smax." in md
    assert "> **SMOKE SCALE — not comparable with the paper.**" in md
    assert (
        "| qmix | ours (3 seeds) | 90.0 [85.0, 95.0] |  |  | 80.0 [70.0, 90.0] |  |  | 85.0 (2 of 6 maps) |"
        in md
    )
    assert "| qmix | published | 90.2 | 36.4 | 26.2 | 98.3 | 1.9 | 33.9 | 47.8 (94.2 on our 2 maps) |" in md
    assert "| qmix | ours − published | -0.2 |  |  | -18.3 |  |  | -9.2 |" in md
    assert "| qplex | published | 87.0 | 5.0 | 0.0 | 98.7 | 18.9 | 36.2 | 41.0 |" in md
    assert "| qplex | ours" not in md
    page = tables[2].read_text()  # one block per method, cells coloured by what they hold
    assert page.count("<tbody>") == 3 and '<th class="group" rowspan="3">qmix</th>' in page
    assert '<td class="ours">90.0 [85.0, 95.0]</td>' in page and '<td class="published">26.2</td>' in page
    tidy = pd.read_csv(tables[0])
    assert {"method", "map", "win_rate_median", "published_win_rate", "difference", "scale"} <= set(
        tidy.columns
    )
    (fig,) = figures
    assert [ax.get_title() for ax in fig.axes if ax.get_visible()] == [*PUBLISHED["table1"]["maps"], AVG]


def test_table1_refuses_runs_not_at_sight_zero(tmp_path, published):
    run = make_run(tmp_path, "qmix", "8m", 0, 0.5, sight=None)  # null: per-type sight, i.e. 9
    with pytest.raises(RunDataError, match="sight range 0.*: 9"):
        table1_report([run], published, "smoke", "", *outputs(tmp_path, "t"))


@pytest.mark.parametrize(
    "change, words",
    [
        ({"win_rate": [1.0, 2.0]}, ["igm_da.yaml", "table1.methods.qmix.win_rate", "6 numbers"]),
        ({"avg": 50.0}, ["igm_da.yaml", "table1.methods.qmix.avg", "47.82", "typo"]),
        ({"label": ""}, ["igm_da.yaml", "table1.methods.qmix.label"]),
    ],
)
def test_malformed_published_file_names_the_file_and_key(tmp_path, change, words):
    data = json.loads(json.dumps(PUBLISHED))
    data["table1"]["methods"]["qmix"].update(change)
    path = tmp_path / "igm_da.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as err:
        published_table1(path)
    assert all(word in str(err.value) for word in words), err.value


# ------------------------------------------------------------------------------------- curves
STEP_CURVE = np.repeat([0.0, 1.0], 5)  # 0 for five evaluations, then 1


def test_moving_average_is_trailing_per_series():
    frame = pd.DataFrame({"algo": ["a"] * 10 + ["b"] * 3, "t_env": [*STEPS, *STEPS[:3]],
                          "median": [*STEP_CURVE, 3.0, 6.0, 9.0]})  # fmt: skip
    smoothed = moving_average(frame, ["median"], 5)
    np.testing.assert_allclose(smoothed["median"][:10], [0, 0, 0, 0, 0, 0.2, 0.4, 0.6, 0.8, 1.0])
    np.testing.assert_allclose(smoothed["median"][10:], [3.0, 4.5, 6.0])


def test_curves_report_smooths_the_median_and_tables_final_values(tmp_path, published, figures):
    runs = []
    for map_name in ("3s5z", "8m"):
        for seed, won in enumerate([0.2, 0.4, 0.6]):
            runs.append(make_run(tmp_path / "runs", "qmix", map_name, seed, won, curve=STEP_CURVE * won))
            runs.append(make_run(tmp_path / "runs", "qmix_da", map_name, seed, won + 0.3))
    tables, figs = outputs(tmp_path / "out", "fig4")
    table = curves_report(runs, published, "smoke", "SMOKE", "IGM-DA Fig. 4 at sight 0", tables, figs)

    assert list(zip(table["map"], table["algo"], strict=True)) == [
        ("3s5z", "qmix"), ("3s5z", "qmix_da"), ("8m", "qmix"), ("8m", "qmix_da")
    ]  # fmt: skip
    np.testing.assert_allclose(table["win_rate_median"], [40.0, 70.0, 40.0, 70.0])
    np.testing.assert_allclose(table["win_rate_q25"], [30.0, 60.0, 30.0, 60.0])
    np.testing.assert_allclose(table["win_rate_q75"], [50.0, 80.0, 50.0, 80.0])
    # the paper's numbers for Figure 4 are Table 1's (same method, map and sight range 0)
    np.testing.assert_allclose(table["published_win_rate"], [90.2, 93.3, 98.3, 99.2])
    np.testing.assert_allclose(table["difference"], [40.0 - 90.2, 70.0 - 93.3, 40.0 - 98.3, 70.0 - 99.2])
    (fig,) = figures
    # the median step 0 -> 40 % over seeds, smoothed by the trailing window of 5
    np.testing.assert_allclose(line(fig, "qmix"), 40.0 * np.array([0, 0, 0, 0, 0, 0.2, 0.4, 0.6, 0.8, 1.0]))
    assert fig.axes[0].title.get_fontweight() == "bold"  # drawn in the report style (marlrepro.report.style)
    assert tuple(fig.axes[0].get_lines()[0].get_color()[:3]) == METHOD_COLOURS["qmix"]
    md = assert_written(tables, figs)
    assert "**Scale: smoke**" in md and "moving average over 5 evaluations" in md


def test_curves_report_labels_sight_ranges_when_runs_mix_them(tmp_path, published, figures):
    series = (("qmix", None), ("qmix_da", None), ("qmix_da", 0.0))
    runs = [
        make_run(tmp_path, algo, "5m_vs_6m", s, 0.5, sight=sight) for algo, sight in series for s in range(2)
    ]
    table = curves_report(
        runs, published, "paper", "PAPER", "Fig. 7", *outputs(tmp_path / "out", "fig7"), smooth_window=1
    )
    assert list(table["algo"]) == ["qmix (sight 9)", "qmix_da (sight 0)", "qmix_da (sight 9)"]
    # Table 1 has 5m_vs_6m at sight 0 only: the sight-9 rows have no published value and say so
    assert table["published_win_rate"].isna().tolist() == [True, False, True]
    assert table["published_source"].tolist()[::2] == ["not printed", "not printed"]
    md = (tmp_path / "out" / "fig7.md").read_text()
    assert "**Scale: paper**" in md and "SCALE — not comparable" not in md
    assert "| 5m_vs_6m | qmix (sight 9) | 50.0 [50.0, 50.0] | 2 | not printed |  |" in md
    # one method at two sight ranges: one colour, two line styles
    lines = {ln.get_label(): ln for ln in figures[0].axes[0].get_lines()}
    assert lines["qmix_da (sight 0)"].get_color() == lines["qmix_da (sight 9)"].get_color()
    assert lines["qmix_da (sight 0)"].get_linestyle() != lines["qmix_da (sight 9)"].get_linestyle()


# -------------------------------------------------------------------------------- sight sweep
def test_sight_sweep_groups_runs_by_their_sight_range(tmp_path, published):
    runs = []
    for algo, base in (("qmix", 0.1), ("qmix_da", 0.5)):
        for sight, bonus in ((0.0, 0.0), (3.0, 0.2), (None, 0.4)):
            for seed in range(3):
                runs.append(
                    make_run(tmp_path / "runs", algo, "3s5z", seed, base + bonus + 0.1 * seed, sight=sight)
                )
    tables, figs = outputs(tmp_path / "out", "fig5c")
    table = sight_sweep_report(runs, published, "smoke", "SMOKE", tables, figs)

    assert list(table["algo"]) == ["qmix"] * 3 + ["qmix_da"] * 3
    assert list(table["sight_range"]) == [0.0, 3.0, 9.0] * 2  # null sight reads as 9
    np.testing.assert_allclose(table["win_rate_median"], [20, 40, 60, 60, 80, 100])
    np.testing.assert_allclose(table["win_rate_q25"], [15, 35, 55, 55, 75, 95])
    assert (table["n_seeds"] == 3).all()
    # Table 1 is at sight range 0 only
    np.testing.assert_allclose(table["published_win_rate"], [90.2, np.nan, np.nan, 93.3, np.nan, np.nan])
    assert table["difference"].iloc[3] == pytest.approx(60.0 - 93.3)
    assert "**Scale: smoke**" in assert_written(tables, figs)


# -------------------------------------------------------------------------- lossy decomposition
def test_lossy_decomposition_draws_the_expert_curve_and_value_distributions(tmp_path, published, figures):
    ramp = np.linspace(0.0, 1.0, len(STEPS))
    expert_levels = {(9.0, 0): 0.6, (9.0, 1): 0.8, (9.0, 2): 1.0, (0.0, 0): 0.7, (0.0, 1): 0.9, (0.0, 2): 0.5}
    runs = []
    for (sight, seed), level in expert_levels.items():
        won = 0.5 + 0.1 * seed if sight == 9.0 else 0.1 * seed
        values = {"learner": [sight + seed, sight + seed + 1.0], "expert": [10.0, 12.0]}
        runs.append(
            make_run(
                tmp_path / "runs",
                "qmix_da",
                "3s5z",
                seed,
                won,
                sight=sight,
                expert=level * ramp,
                values=values,
            )
        )
    tables, figs = outputs(tmp_path / "out", "fig3")
    table = lossy_decomposition_report(runs, published, "smoke", "SMOKE", tables, figs).set_index("series")

    assert list(table.index) == ["sight view 0", "sight view 9", "target_mean"]
    assert table["win_rate_median"].tolist() == pytest.approx([10.0, 60.0, 75.0])  # experts: last of 0.5..1.0
    assert table.loc["target_mean", "agents"] == "expert" and np.isnan(
        table.loc["target_mean", "sight_range"]
    )
    assert table["sight_range"].iloc[:2].tolist() == [0.0, 9.0]
    assert table["action_value_mean"].tolist() == pytest.approx([1.5, 10.5, 11.0])
    assert table["n_action_values"].tolist() == [6, 6, 12] and table["n_runs"].tolist() == [3, 3, 6]
    # the sight-0 learners are Table 1's qmix-DA cell; the experts have no published value
    assert table.loc["sight view 0", "published_win_rate"] == 93.3
    assert table.loc[["sight view 9", "target_mean"], "published_win_rate"].isna().all()
    (fig,) = figures
    expected = (
        pd.Series(100.0 * np.mean(list(expert_levels.values())) * ramp).rolling(5, min_periods=1).mean()
    )
    np.testing.assert_allclose(line(fig, "target_mean"), expected)
    assert {"sight view 0", "sight view 9"} <= {ln.get_label() for ln in fig.axes[0].get_lines()}
    assert len(fig.axes[1].patches) + len(fig.axes[1].collections) > 0  # the value distributions
    md = assert_written(tables, figs)
    assert "**Scale: smoke**" in md and "target_mean" in md


def test_lossy_decomposition_needs_the_action_values(tmp_path, published):
    run = make_run(tmp_path, "qmix_da", "3s5z", 0, 0.5, expert=np.ones(len(STEPS)))
    with pytest.raises(RunDataError, match="action_values.parquet: missing"):
        lossy_decomposition_report([run], published, "smoke", "", *outputs(tmp_path, "x"))
