"""The IGM-DA validation table (marlrepro.report.validation) from hand-made run directories: the
numbers it computes, its direction column, and the errors for runs that are missing or do not fit."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from marlrepro.cli import main
from marlrepro.io_utils import write_json, write_yaml
from marlrepro.report.runs import RunDataError
from marlrepro.report.validation import planned_run_dirs, validation_report

ROOT = Path(__file__).resolve().parents[1]
PUBLISHED = ROOT / "config/published/igm_da.yaml"
STEPS = [0, 10, 20, 30, 40, 50, 60]

# (map, method) -> per seed: the test win-rate curve (fractions, one per evaluation); the imitation
# methods' experts end at EXPERT_FINAL
CURVES = {
    ("8m", "qmix"): [[0, 0, 0.1, 0.2, 0.3, 0.4, 0.5], [0, 0, 0.2, 0.2, 0.2, 0.2, 0.2], [0, 0.6, 0.1, 0.1, 0.1, 0.1, 0.1]],
    ("8m", "qmix_da"): [[0, 0, 0.5, 0.5, 0.5, 0.5, 0.5], [0, 0.9, 0.3, 0.4, 0.5, 0.6, 0.7], [0, 0, 0.4, 0.4, 0.4, 0.4, 0.9]],
    ("MMM2", "qmix_bc"): [[0, 0, 0.3, 0.3, 0.3, 0.3, 0.3], [0, 0, 0.1, 0.1, 0.1, 0.1, 0.1]],
    ("MMM2", "qmix_da"): [[0, 0, 0.2, 0.2, 0.2, 0.2, 0.2], [0, 0, 0.4, 0.4, 0.4, 0.4, 0.4]],
}
EXPERT_FINAL = 0.75


def make_run(root: Path, map_name: str, method: str, seed: int, curve: list[float], scale: str = "validation",
             steps: list[int] = STEPS) -> Path:  # fmt: skip
    """A finished run directory as ``marlrepro train`` leaves it (final.json, config.yaml, metrics)."""
    run_dir = root / f"smax-{map_name}" / method / f"seed{seed}"
    run_dir.mkdir(parents=True)
    metrics = pd.DataFrame({"t_env": steps, "test_won_mean": curve[: len(steps)]})
    if method.endswith(("_da", "_bc")):
        metrics["test_expert_won_mean"] = [0.0] * (len(steps) - 1) + [EXPERT_FINAL]
    metrics.to_parquet(run_dir / "metrics.parquet", index=False)
    write_yaml(run_dir / "config.yaml", {"env": {"options": {"sight_range": 0}}, "run": {"eval_interval": 10}})
    write_json(run_dir / "final.json", {
        "algo": method, "env": f"smax:{map_name}", "seed": seed, "t_env": steps[-1] + seed, "updates": 5,
        "test_return_mean": 1.0, "test_won_mean": curve[len(steps) - 1], "wall_time_s": 1.0,
        "env_steps_per_s": 1.0, "backend": "smax", "tags": {"scale": scale},
    })  # fmt: skip
    return run_dir


@pytest.fixture
def runs(tmp_path) -> list[Path]:
    return [make_run(tmp_path / "runs", m, a, seed, curve) for (m, a), curves in CURVES.items()
            for seed, curve in enumerate(curves)]  # fmt: skip


def test_the_table_holds_the_end_points_of_the_runs(runs, tmp_path):
    paths = [tmp_path / "v.csv", tmp_path / "v.md"]
    table = validation_report(runs, PUBLISHED, "validation", "VALIDATION SCALE: short runs", paths)
    row = table.set_index(["map", "method"])
    qmix = row.loc[("8m", "qmix")]
    # per seed: last evaluations 50, 20, 10; last-5 means 30, 20, 10; best 50, 20, 60 (seed 2's 0.6
    # is its second evaluation, outside its last five)
    assert (qmix["final_median"], qmix["final_min"], qmix["final_max"]) == pytest.approx((20.0, 10.0, 50.0))
    assert (qmix["last5_median"], qmix["last5_min"], qmix["last5_max"]) == pytest.approx((20.0, 10.0, 30.0))
    assert (qmix["best_median"], qmix["best_min"], qmix["best_max"]) == pytest.approx((50.0, 20.0, 60.0))
    assert math.isnan(qmix["expert_final_median"]) and qmix["last5_per_seed"] == "30.0, 20.0, 10.0"
    assert (qmix["env_steps_min"], qmix["env_steps_max"], qmix["seeds"]) == (60, 62, 3)
    assert qmix["published_win_rate"] == 98.3 and qmix["direction"] == ""
    da = row.loc[("8m", "qmix_da")]  # last-5 means 50, 50, 50; finals 50, 70, 90; best 50, 90, 90
    assert (da["last5_median"], da["last5_min"], da["last5_max"]) == pytest.approx((50.0, 50.0, 50.0))
    assert (da["final_median"], da["best_median"], da["expert_final_median"]) == pytest.approx((70.0, 90.0, 75.0))
    assert da["published_win_rate"] == 99.2
    assert da["direction"] == "vs qmix: median above (50.0 > 20.0), all seeds above"
    # MMM2: the DAgger pair against behaviour cloning (Fig. 5(a)), last-5 means 20, 40 against 30, 10;
    # Table 1 has no BC row
    mmm2 = row.loc[("MMM2", "qmix_da")]
    assert mmm2["direction"] == "vs qmix_bc: median above (30.0 > 20.0), seeds overlap or below"
    assert mmm2["published_win_rate"] == 55.4 and math.isnan(row.loc[("MMM2", "qmix_bc"), "published_win_rate"])
    assert row.loc[("MMM2", "qmix_bc"), "expert_final_max"] == pytest.approx(75.0)
    pd.testing.assert_frame_equal(pd.read_csv(paths[0]).fillna({"direction": ""}), table, check_dtype=False)
    md = paths[1].read_text()
    assert "VALIDATION SCALE" in md and "mean of the last 5 evaluations" in md and "published (IGM-DA" in md
    assert "| 8m | qmix | 3 | 20.0 [10.0, 50.0] | 20.0 [10.0, 30.0] | 50.0 [20.0, 60.0] | — | 60–62 | 98.3 |" in md
    assert "| MMM2 | qmix_bc | 2 |" in md and "| not printed |" in md


def test_missing_runs_are_named(runs, tmp_path):
    (runs[1] / "final.json").unlink()
    absent = tmp_path / "runs/smax-8m_vs_9m/qmix/seed0"
    with pytest.raises(RunDataError, match="2 of 11 runs have not finished") as err:
        validation_report([*runs, absent], PUBLISHED, "validation", "d", [tmp_path / "v.csv"])
    assert str(runs[1]) in str(err.value) and str(absent) in str(err.value)
    assert not (tmp_path / "v.csv").exists()


def test_runs_of_another_scale_or_too_short_are_refused(runs, tmp_path):
    smoke = make_run(tmp_path / "smoke", "8m", "qmix", 0, CURVES[("8m", "qmix")][0], scale="smoke")
    with pytest.raises(RunDataError, match=r"not made at scale 'validation': .*smoke.*\(smoke\)"):
        validation_report([*runs, smoke], PUBLISHED, "validation", "d", [tmp_path / "v.csv"])
    short = make_run(tmp_path / "short", "8m", "qmix", 0, CURVES[("8m", "qmix")][0], steps=STEPS[:4])
    with pytest.raises(RunDataError, match="4 evaluations, the table needs at least 5"):
        validation_report([short], PUBLISHED, "validation", "d", [tmp_path / "v.csv"])


def test_the_command_reads_the_runs_the_scale_plans(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    code = main(["validation-table", str(tmp_path), "--experiments", "sight0", "--out", str(tmp_path / "v")])
    err = capsys.readouterr().err
    assert code == 2 and "runs have not finished" in err
    assert str(tmp_path / "igm_da/sight0/smax-8m/qmix/seed0") in err  # a run the validation scale plans
    assert main(["validation-table", str(tmp_path), "--experiments", "nosuch"]) == 2
    assert "valid choices: " in capsys.readouterr().err


def test_envs_restrict_the_table_to_the_maps_that_were_run(tmp_path, monkeypatch, capsys):
    """``--envs`` keeps only the planned runs on those maps; a map the scale does not plan is
    refused with the valid choices."""
    monkeypatch.chdir(ROOT)
    all_runs = planned_run_dirs(tmp_path, "igm_da", ["sight0", "bc"], "validation")
    some = planned_run_dirs(tmp_path, "igm_da", ["sight0", "bc"], "validation", ["smax:8m", "smax:8m_vs_9m"])
    assert some and set(some) < set(all_runs)
    assert {d.parts[-3] for d in some} == {"smax-8m", "smax-8m_vs_9m"}
    assert main(["validation-table", str(tmp_path), "--envs", "smax:3m"]) == 2
    err = capsys.readouterr().err
    assert "--envs" in err and "smax:8m_vs_9m" in err
