"""CESMA's experiments as a workflow (config/cesma.yaml, workflow/rules/cesma.smk): centralised
experts that keep their best checkpoint, exported per run, DAgger jobs that depend on their own
seed's exported expert (expert_from), the grid's checks, Figures 4 to 8 on SYNTHETIC runs (Figure 9's
plan here, its report in tests/test_cesma_loss.py), and the
claims' readings (config/published/cesma.yaml) on synthetic tables.

The DAG tests are dry runs (`snakemake -n -p`) on a copy of the workflow; the smoke build itself runs
in tests/test_dag_smoke.py.
"""

from __future__ import annotations

import copy
import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from test_claims import DOMAINS
from test_mifq_workflow import jobs, paper_jobs, sets
from test_workflow import ALGOS, REPO, WORKFLOW, copy_workflow, job_counts, snakemake, write_final

from marlrepro.config_schema import load_checked
from marlrepro.errors import ConfigError
from marlrepro.experiments import best_expert_index, plan_paper, scale_from_dict
from marlrepro.report.cesma import cesma_report
from marlrepro.report.cesma_plan import CESMA, EXPERT, MADDPG, Setting
from marlrepro.report.claims import FAILS, HOLDS, NO_ROWS, NOT_BUILT, NOT_JUDGED, judge, parse_claims

SCHEMAS = REPO / "workflow/schemas"
GRID = load_checked(REPO / "config/cesma.yaml", SCHEMAS / "paper.schema.yaml")
SETTINGS = ["simple_spread", "simple_spread_hetero", "simple_spread_6", "simple_spread_hetero_6",
            "simple_speaker_listener", "simple_reference", "simple_reference_3a5l"]
SEEDS = 3  # appendix A: three runs
# the decentralisation of each setting: Algorithm 2 (learned communication) where agents speak
SPEAKING = ("simple_speaker_listener", "simple_reference", "simple_reference_3a5l")
DECENTRALISE = {s: "dagger_comm" if s in SPEAKING else "dagger" for s in SETTINGS}
# Figures 7 and 8's experiments: (experiment, algo, setting, expert experiment or None)
FIG78 = {"experts_joint_dqn": ("joint_dqn", "simple_spread_hetero", None),
         "experts_central_vdn": ("central_vdn", "simple_spread_hetero", None),
         "experts_one_at_a_time": ("one_at_a_time", "simple_spread_6", None),
         "cesma_joint_dqn": ("dagger", "simple_spread_hetero", "experts_joint_dqn"),
         "cesma_central_vdn": ("dagger", "simple_spread_hetero", "experts_central_vdn"),
         "cesma_one_at_a_time": ("dagger_weighted", "simple_spread_6", "experts_one_at_a_time"),
         "cesma_per_agent": ("dagger_per_agent", "simple_spread_hetero", "experts_nav3")}
# Figure 4's experiments on SMAC 3s5z (SMAX): (experiment, algo, expert experiment or None); five seeds
FIG4 = {"experts_smac": ("central_vdn_rnn", None), "cesma_smac": ("dagger_rnn", "experts_smac"),
        "baselines_smac": ("iql", None)}
SMAC_SEEDS = 5  # §6.1: "five independent runs"
BEST_SMAC_EXPERT = "results/experts/cesma/experts_smac/smax-3s5z/central_vdn_rnn/best"  # §6.1: the best expert run


def experiment_of(job: dict) -> str:
    """The experiment of a train job (its run directory: results/runs/cesma/<experiment>/...)."""
    return re.search(r"results/runs/cesma/(\w+)/", job["output"][0])[1]


def plan(data: dict, at: str = "paper") -> dict:
    scale = scale_from_dict(at, load_checked(REPO / f"config/scales/{at}.yaml", SCHEMAS / "scale.schema.yaml"))
    return plan_paper("cesma", data, scale, {**WORKFLOW, "scale": at}, ("paper", "smoke", "validation"), ALGOS)


# ------------------------------------------------------------------------------- the DAG
@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return copy_workflow(tmp_path_factory.mktemp("cesma"))


def test_smoke_plans_one_tiny_chain(workdir):
    result = snakemake(workdir, "-n", "-p", "--config", "scale=smoke", "--", "cesma")
    assert result.returncode == 0, result.stdout
    # Figures 7 and 8 add 3 tiny train jobs: the exponential DQN expert, its DAgger, per-agent DAgger
    # Figure 4's 3s5z is skipped at smoke: its figure job reads no run and draws the panel "not planned"
    assert job_counts(result.stdout) == {"train": 6, "export_expert": 2, "cesma_fig4": 1, "cesma_fig5": 1,
                                         "cesma_fig6": 1, "cesma_fig7": 1, "cesma_fig8": 1, "cesma_fig9": 1,
                                         "cesma_claims": 1,
                                         "cesma": 1, "total": 16}
    planned = jobs(result.stdout)
    trains = {experiment_of(j): j for j in planned if j["rule"] == "train"}
    assert sorted(trains) == ["baselines_nav", "cesma_joint_dqn", "cesma_nav3", "cesma_per_agent", "experts_joint_dqn",
                              "experts_nav3"]
    assert all(int(sets(j["shell"])["run.t_max"]) <= 100 for j in trains.values())  # tiny
    assert sets(trains["experts_joint_dqn"]["shell"])["env.name"] == "jaxmpe:simple_spread_hetero"
    assert sets(trains["cesma_joint_dqn"]["shell"])["dagger.expert"].endswith(
        "experts_joint_dqn/jaxmpe-simple_spread_hetero/joint_dqn/seed0/policy.zip")
    assert "config/algos/dagger_per_agent.yaml" in trains["cesma_per_agent"]["shell"]
    assert sets(trains["cesma_per_agent"]["shell"])["dagger.expert"] == sets(trains["cesma_nav3"]["shell"])["dagger.expert"]
    figures = {j["rule"]: {f for f in j["input"] if f.endswith("/final.json")} for j in planned}
    assert figures["cesma_fig7"] == {trains[e]["output"][0] for e in ("experts_joint_dqn", "cesma_joint_dqn")}
    assert figures["cesma_fig8"] == {trains[e]["output"][0] for e in ("experts_nav3", "cesma_nav3", "cesma_per_agent")}
    assert figures["cesma_fig9"] == {trains["cesma_nav3"]["output"][0]}  # no training of its own
    assert figures["cesma_fig4"] == set()
    trains = {re.search(r"--config config/algos/(\w+)\.yaml", j["shell"])[1]: j for e, j in trains.items() if e not in FIG78}
    assert sorted(trains) == ["dagger", "ddpg_central", "maddpg"]
    assert all(sets(j["shell"])["env.name"] == "jaxmpe:simple_spread" for j in trains.values())
    assert sets(trains["ddpg_central"]["shell"])["run.keep_best"] == "true"
    [export] = [j for j in planned if j["rule"] == "export_expert" and "/experts_nav3/" in j["input"][0]]
    assert "--checkpoint best" in export["shell"] and export["input"] == [
        "results/runs/cesma/experts_nav3/jaxmpe-simple_spread/ddpg_central/seed0/final.json"]
    # DAgger reads the exported expert: an input of its job, and its dagger.expert
    assert export["output"][0] in trains["dagger"]["input"]
    assert sets(trains["dagger"]["shell"])["dagger.expert"] == export["output"][0]


@pytest.fixture(scope="module", params=[4, 2])
def paper_plan(request, workdir) -> tuple[int, list[dict]]:
    """(pack_size, jobs) of ``snakemake -n -p cesma`` at paper scale."""
    return request.param, paper_jobs(workdir, "cesma", request.param)


def test_paper_scale_plans_experts_exports_dagger_and_baselines_in_packs(paper_plan):
    pack_size, planned = paper_plan
    trains = [j for j in planned if (j["rule"] == "train" or j["rule"].startswith("train_pack"))
              and experiment_of(j) not in FIG78 | FIG4]
    cells: dict[tuple[str, str], int] = {}
    for job in trains:
        algo = re.search(r"--config config/algos/(\w+)\.yaml", job["shell"])[1]
        key = (algo, sets(job["shell"])["env.name"].split(":", 1)[1])
        cells[key] = cells.get(key, 0) + 1
    expected = [(algo, s) for s in SETTINGS for algo in ("ddpg_central", DECENTRALISE[s], "maddpg", "ddpg")]
    assert sorted(cells) == sorted(expected)
    assert set(cells.values()) == {math.ceil(SEEDS / pack_size)}  # ceil(seeds / pack_size) packs per cell
    exports = {j["output"][0] for j in planned if j["rule"] == "export_expert"}
    assert len(exports) == len(SETTINGS) * SEEDS + 3 * SEEDS + SMAC_SEEDS  # Figure 7's DQN experts, Figure 4's
    exports = {export for export in exports if "/ddpg_central/" in export}
    for job in trains:
        values = sets(job["shell"])
        if not re.search(r"dagger(_comm)?\.yaml", job["shell"]):
            assert "dagger.expert" not in values
            continue
        seeds = [int(s) for s in re.search(r"--pack run\.seed=([\d,]+)", job["shell"])[1].split(",")] \
            if "--pack" in job["shell"] else [int(values["run.seed"])]
        scenario = values["env.name"].split(":", 1)[1]
        # each seed learns from the expert of its own seed on its own task, an input of its job
        policies = [p for p in job["input"] if p.endswith("/policy.zip")]
        assert len(policies) == len(seeds) and set(policies) <= exports
        for seed, policy in zip(seeds, sorted(policies), strict=True):
            assert re.search(rf"/experts_\w+/jaxmpe-{scenario}/ddpg_central/seed{seed}/policy\.zip$", policy)
        assert values["dagger.expert"].replace("{run.seed}", str(seeds[0])) == sorted(policies)[0]
    # Figure 5 reads every expert, DAgger and MADDPG run; Figure 6 independent DDPG's too
    figures = {j["rule"]: {f for f in j["input"] if f.endswith("/final.json")} for j in planned
               if j["rule"] in ("cesma_fig5", "cesma_fig6")}
    finals = {algo: {out for j in trains if f"algos/{algo}.yaml" in j["shell"] for out in j["output"]
                     if out.endswith("/final.json")} for algo in ("ddpg_central", "dagger", "dagger_comm", "maddpg", "ddpg")}
    finals["decentralised"] = finals.pop("dagger") | finals.pop("dagger_comm")
    assert all(len(files) == len(SETTINGS) * SEEDS for files in finals.values())
    assert figures["cesma_fig5"] == finals["ddpg_central"] | finals["decentralised"] | finals["maddpg"]
    assert figures["cesma_fig6"] == figures["cesma_fig5"] | finals["ddpg"]
    assert {j["rule"] for j in planned} >= {"cesma_fig5", "cesma_fig6", "cesma_fig7", "cesma_fig8", "cesma_claims", "cesma"}


def test_paper_scale_plans_figures_7_and_8_with_their_experts(paper_plan):
    pack_size, planned = paper_plan
    trains = [j for j in planned if (j["rule"] == "train" or j["rule"].startswith("train_pack"))]
    by_experiment: dict[str, list[dict]] = {}
    for job in trains:
        by_experiment.setdefault(experiment_of(job), []).append(job)
    finals = {e: {out for j in jobs_ for out in j["output"] if out.endswith("/final.json")}
              for e, jobs_ in by_experiment.items()}
    for experiment, (algo, scenario, expert) in FIG78.items():
        assert all(f"config/algos/{algo}.yaml" in j["shell"] for j in by_experiment[experiment])
        scenarios = {sets(j["shell"])["env.name"].split(":", 1)[1] for j in by_experiment[experiment]}
        assert scenario in scenarios and len(finals[experiment]) == SEEDS * len(scenarios)
        for job in by_experiment[experiment] if expert else ():
            # each student job reads its own seeds' exported experts of its expert experiment
            policies = [p for p in job["input"] if p.endswith("/policy.zip")]
            assert policies and all(f"/{expert}/" in p for p in policies)
    figures = {j["rule"]: {f for f in j["input"] if f.endswith("/final.json")} for j in planned
               if j["rule"] in ("cesma_fig7", "cesma_fig8")}
    assert figures["cesma_fig7"] == set().union(*(finals[e] for e in FIG78 if e != "cesma_per_agent"))
    # Figure 8: the per-agent datasets against cesma_nav3's shared-dataset runs of the same experts
    assert figures["cesma_fig8"] == finals["cesma_per_agent"] | finals["cesma_nav3"] | finals["experts_nav3"]
    # Figure 9: cesma_nav3's runs alone, both tasks, every seed (no training of its own)
    [fig9] = [{f for f in j["input"] if f.endswith("/final.json")} for j in planned if j["rule"] == "cesma_fig9"]
    assert fig9 == finals["cesma_nav3"] and len(fig9) == 2 * SEEDS


def test_paper_scale_plans_figure_4_on_smac_3s5z(paper_plan):
    """Figure 4: five seeds of the recurrent expert (kept at its best, exported), of its recurrent
    students and of IQL, all on smax:3s5z; every student seed reads the best expert run's policy
    (§6.1), which select_best_expert picks from the five exports; cesma_fig4 reads every run and the
    choice."""
    pack_size, planned = paper_plan
    trains = [j for j in planned if (j["rule"] == "train" or j["rule"].startswith("train_pack"))
              and experiment_of(j) in FIG4]
    finals: dict[str, set[str]] = {}
    for job in trains:
        experiment = experiment_of(job)
        algo, expert = FIG4[experiment]
        values = sets(job["shell"])
        assert f"config/algos/{algo}.yaml" in job["shell"] and values["env.name"] == "smax:3s5z"
        assert (values.get("run.keep_best") == "true") == (experiment == "experts_smac")
        policies = [p for p in job["input"] if p.endswith("/policy.zip")]
        assert policies == ([f"{BEST_SMAC_EXPERT}/policy.zip"] if expert else [])
        assert values.get("dagger.expert") == (f"{BEST_SMAC_EXPERT}/policy.zip" if expert else None)
        finals.setdefault(experiment, set()).update(out for out in job["output"] if out.endswith("/final.json"))
    assert {e: len(f) for e, f in finals.items()} == {e: SMAC_SEEDS for e in FIG4}
    [select] = [j for j in planned if j["rule"] == "select_best_expert"]
    assert select["output"] == [f"{BEST_SMAC_EXPERT}/policy.zip", f"{BEST_SMAC_EXPERT}/choice.json"]
    assert set(select["input"]) == finals["experts_smac"] | {
        f"results/experts/cesma/experts_smac/smax-3s5z/central_vdn_rnn/seed{s}/policy.zip" for s in range(SMAC_SEEDS)}
    [figure] = [j for j in planned if j["rule"] == "cesma_fig4"]
    assert {f for f in figure["input"] if f.endswith("/final.json")} == set().union(*finals.values())
    assert f"{BEST_SMAC_EXPERT}/choice.json" in figure["input"]
    [everything] = [j for j in planned if j["rule"] == "cesma"]
    assert "results/tables/cesma_fig4.csv" in everything["input"]


def test_the_best_expert_is_the_highest_win_rate_then_return_and_expert_choice_is_checked():
    """expert_choice best: the run of the highest best-evaluation win rate, then return, the lowest
    seed of equal ones; the choice needs expert_from and one of its values."""
    def final(seed: int, won: float, ret: float) -> dict:
        return {"seed": seed, "best": {"test_won_mean": won, "test_return_mean": ret}}

    assert best_expert_index([final(0, 0.5, 10.0), final(1, 0.8, 5.0), final(2, 0.8, 9.0)]) == 2
    assert best_expert_index([final(0, 0.8, 9.0), final(1, 0.8, 9.0)]) == 0
    with pytest.raises(ConfigError, match="no best evaluation"):
        best_expert_index([{"seed": 0}])
    data = copy.deepcopy(GRID)
    data["experiments"]["cesma_smac"]["expert_choice"] = "first"
    with pytest.raises(ConfigError, match="expert_choice: 'first'; valid choices: seed, best"):
        plan(data)
    data = copy.deepcopy(GRID)
    data["experiments"]["baselines_smac"]["expert_choice"] = "best"
    with pytest.raises(ConfigError, match="expert_choice: chooses among the runs of expert_from"):
        plan(data)
    data = copy.deepcopy(GRID)
    data["experiments"]["experts_smac"]["seeds"] = 2  # fewer experts than students: the best of two serves all
    assert all(run.expert_policy == f"{BEST_SMAC_EXPERT}/policy.zip" for run in plan(data)["cesma_smac"].runs())


def test_expert_from_is_checked():
    data = copy.deepcopy(GRID)
    data["experiments"]["cesma_nav3"]["expert_from"] = "experts_nav"
    with pytest.raises(ConfigError, match="no experiment 'experts_nav'.*experts_nav3"):
        plan(data)
    data = copy.deepcopy(GRID)
    del data["experiments"]["cesma_nav3"]["expert_from"]
    with pytest.raises(ConfigError, match="dagger learn from an expert's policy; set expert_from"):
        plan(data)
    data = copy.deepcopy(GRID)
    data["experiments"]["experts_nav3"]["seeds"] = 2  # DAgger's third seed has no expert
    with pytest.raises(ConfigError, match="seed 2 has no expert in experts_nav3"):
        plan(data)
    data = copy.deepcopy(GRID)
    data["experiments"]["experts_nav3"]["scales"]["smoke"] = {"skip": True}
    with pytest.raises(ConfigError, match="experts_nav3 is skipped at scale smoke"):
        plan(data, "smoke")
    data = copy.deepcopy(GRID)
    data["experiments"]["cesma_nav3"]["settings"]["dagger"] = {"expert": "x.zip"}
    with pytest.raises(ConfigError, match="'dagger.expert' is decided by the workflow"):
        plan(data)


def test_grid_sets_the_papers_values():
    experiments = plan(GRID)
    for name, exp in experiments.items():
        if name in FIG4:  # SMAC 3s5z: five seeds, SMAX's own episodes and reward
            assert exp.seeds == tuple(range(SMAC_SEEDS)) and exp.envs == ("smax:3s5z",)
            continue
        assert exp.seeds == tuple(range(SEEDS))
        for algo in exp.algos:
            settings = exp.settings_of(algo)
            assert settings["env.options.shared_reward"] is True and settings["env.options.max_cycles"] == 25
            spread = all(env.split(":", 1)[1].startswith("simple_spread") for env in exp.envs)
            assert settings.get("env.options.collision_penalty", False) is spread
    assert experiments["experts_nav6"].settings["agent.hidden_dim"] == 240
    assert experiments["experts_comm"].settings["agent.hidden_dim"] == 95
    assert experiments["experts_nav3"].keep_best and not experiments["baselines_nav"].keep_best
    assert experiments["baselines_nav"].settings["agent.hidden_dim"] == 128
    assert experiments["cesma_comm"].expert_from == ("experts_comm", "ddpg_central")


# ------------------------------------------------------------------------------- the figures
def synthetic_run(run_dir: Path, algo: str, seed: int, curve: list[tuple[int, float]], best: float | None = None,
                  env: str = "jaxmpe:simple_spread", metric: str = "test_return_mean") -> str:
    """A run directory with final.json, metrics.parquet (``metric`` along ``curve``) and config.yaml."""
    write_final(run_dir, algo=algo, env=env, seed=seed, t_env=curve[-1][0], backend=env.split(":", 1)[0],
                **{metric: curve[-1][1]}, **({"best": {metric: best}} if best is not None else {}))
    pd.DataFrame(curve, columns=["t_env", metric]).to_parquet(run_dir / "metrics.parquet")
    (run_dir / "config.yaml").write_text(yaml.safe_dump({"run": {"eval_interval": 100}}))
    return str(run_dir)


@pytest.fixture
def setting(tmp_path) -> Setting:
    """Three seeds: experts trained 1000 steps to about -10 (best -10), students reach -10.2 in 500
    more, MADDPG reaches -12 at 2000 steps."""
    experts, students, maddpg = [], [], []
    for seed in range(SEEDS):
        noise = 0.1 * seed
        experts.append(synthetic_run(tmp_path / f"expert{seed}", "ddpg_central", seed,
                                     [(0, -40.0), (500, -20.0), (1000, -10.0 - noise)], best=-10.0))
        students.append(synthetic_run(tmp_path / f"dagger{seed}", "dagger", seed,
                                      [(0, -40.0), (200, -15.0), (500, -10.2 - noise)]))
        maddpg.append(synthetic_run(tmp_path / f"maddpg{seed}", "maddpg", seed,
                                    [(0, -40.0), (1000, -20.0), (2000, -12.0 - noise)]))
    return Setting("simple_spread", students, experts, {MADDPG: maddpg})


@pytest.mark.parametrize("chained", [True, False])
def test_figures_chain_the_expert_and_its_students_on_the_samples_axis(setting, tmp_path, chained):
    paths = [tmp_path / f"fig.{ext}" for ext in ("csv", "md", "html")]
    figures = [tmp_path / f"fig.{ext}" for ext in ("png", "pdf")]
    table = cesma_report([setting], "t", chained, None, "paper", "paper scale", paths, figures).set_index("series")
    assert list(table.index) == [EXPERT, CESMA, MADDPG]
    assert table.loc[EXPERT, "exported_median"] == -10.0 and np.isnan(table.loc[CESMA, "exported_median"])
    assert table.loc[CESMA, "final_median"] == pytest.approx(-10.3)
    assert table.loc[CESMA, "final_min"] == pytest.approx(-10.4) and table.loc[CESMA, "final_max"] == -10.2
    assert table.loc[CESMA, "gap_to_expert"] == pytest.approx(0.03)
    # Figure 5 counts the expert's 1000 samples before the students' own 500
    assert table.loc[CESMA, "samples_median"] == (1500 if chained else 500)
    # MADDPG's final median (-12.1): the students' median curve (on a grid of 100) first reaches it
    # 400 steps into decentralisation (-11.87 there, -13.4 at 300), after the expert's 1000 in Figure 5
    assert table.loc[CESMA, "samples_to_maddpg"] == (1400 if chained else 400)
    assert table.loc[MADDPG, "samples_to_maddpg"] == 2000
    assert np.isnan(table.loc[EXPERT, "samples_to_maddpg"]) != chained  # Figure 6 draws no expert curve
    assert pd.read_csv(paths[0]).shape[0] == 3 and all(path.stat().st_size > 0 for path in figures)
    assert "simple_spread" in paths[1].read_text() and "min, max" in paths[1].read_text()


def report_files(tmp_path: Path, name: str) -> tuple[list[Path], list[Path]]:
    return ([tmp_path / f"{name}.{ext}" for ext in ("csv", "md", "html")],
            [tmp_path / f"{name}.{ext}" for ext in ("png", "pdf")])


def test_figure_7_names_each_experts_series_and_judges_its_claims(setting, tmp_path):
    """Figure 7: one chained panel per expert with its own series names; a panel without runs is
    drawn "not planned"; the ledger reads the claims from the table."""
    labels = {"joint": ("CESMA (exponential DQN)", "exponential DQN expert"),
              "vdn": ("CESMA (centralised VDN)", "centralised VDN expert")}
    panels = [Setting("simple_spread_hetero", setting.students, setting.experts, {}, *labels[key]) for key in labels]
    tables, figures = report_files(tmp_path, "fig7")
    table = cesma_report(panels, "t", True, None, "paper", "paper scale", tables, figures,
                         not_planned=["simple_spread_6: CESMA (one-at-a-time expert)"])
    assert list(table["series"]) == ["exponential DQN expert", "CESMA (exponential DQN)", "centralised VDN expert",
                                     "CESMA (centralised VDN)"]
    rows = table.set_index("series")
    assert rows.loc["exponential DQN expert", "exported_median"] == -10.0
    assert rows.loc["CESMA (centralised VDN)", "gap_to_expert"] == pytest.approx(0.03)
    assert all(path.stat().st_size > 0 for path in figures)
    read = pd.read_csv(tables[0])  # as the ledger reads it
    assert judge(CLAIMS["fig7_dqn_experts_decentralised"], {"cesma_fig7": read}).verdict == HOLDS
    # the one-at-a-time panel not built: its claim is not judged rather than failing
    assert judge(CLAIMS["fig7_one_at_a_time_above_expert"], {"cesma_fig7": read}).verdict == NOT_JUDGED
    above = fig_table({("simple_spread_6", "CESMA (one-at-a-time expert)"): {"gap_to_expert": -0.1}})
    assert judge(CLAIMS["fig7_one_at_a_time_above_expert"], {"cesma_fig7": above}).verdict == HOLDS
    far = read.assign(gap_to_expert=read["gap_to_expert"].where(read["series"] != "CESMA (centralised VDN)", 0.2))
    assert judge(CLAIMS["fig7_dqn_experts_decentralised"], {"cesma_fig7": far}).verdict == FAILS


def test_figure_8_draws_per_agent_datasets_against_the_shared_one(setting, tmp_path):
    """Figure 8: the per-agent datasets' students and the shared dataset's, both as curves, with
    their gaps to the same exported expert."""
    per_agent = [synthetic_run(tmp_path / f"per_agent{seed}", "dagger_per_agent", seed,
                               [(0, -40.0), (200, -16.0), (500, -10.5 - 0.1 * seed)]) for seed in range(SEEDS)]
    panel = Setting("simple_spread_hetero", per_agent, setting.experts, {CESMA: setting.students},
                    "CESMA (per-agent datasets)")
    tables, figures = report_files(tmp_path, "fig8")
    table = cesma_report([panel], "t", False, None, "paper", "paper scale", tables, figures, levels=False)
    rows = table.set_index("series")
    assert list(rows.index) == [EXPERT, "CESMA (per-agent datasets)", CESMA]
    assert rows.loc["CESMA (per-agent datasets)", "gap_to_expert"] == pytest.approx(0.06)
    assert rows.loc[CESMA, "gap_to_expert"] == pytest.approx(0.03)
    assert all(path.stat().st_size > 0 for path in figures)
    claim = CLAIMS["fig8_per_agent_datasets_same"]
    assert judge(claim, {"cesma_fig8": pd.read_csv(tables[0])}).verdict == HOLDS
    apart = fig_table({("simple_spread_hetero", CESMA): {"gap_to_expert": 0.0},
                       ("simple_spread_hetero", "CESMA (per-agent datasets)"): {"gap_to_expert": 0.2}})
    assert judge(claim, {"cesma_fig8": apart}).verdict == FAILS


def smac_run(run_dir: Path, algo: str, seed: int, curve: list[tuple[int, float]], best: float | None = None) -> str:
    """A synthetic 3s5z run: its test win rate (``test_won_mean``) along ``curve``."""
    return synthetic_run(run_dir, algo, seed, curve, best, env="smax:3s5z", metric="test_won_mean")


def test_figure_4_chains_the_smac_expert_and_its_students_against_iql_on_the_win_rate(tmp_path):
    """Figure 4 (win rate): the five experts' curves, then the students' after the chosen best
    expert's samples, against IQL's curve; the exported level is the chosen run's; the claims read
    the table (the students 10 % short of it, above IQL); a scale that plans no 3s5z run writes an
    empty table and a "not planned" panel."""
    experts = [smac_run(tmp_path / f"expert{s}", "central_vdn_rnn", s, [(0, 0.0), (500, 0.6), (1000, 0.9)], best=0.95)
               for s in range(SMAC_SEEDS)]
    students = [smac_run(tmp_path / f"students{s}", "dagger_rnn", s, [(0, 0.1), (200, 0.8), (500, 0.88 + 0.01 * s)])
                for s in range(SMAC_SEEDS)]
    iql = [smac_run(tmp_path / f"iql{s}", "iql", s, [(0, 0.0), (1000, 0.1), (2000, 0.2 + 0.01 * s)])
           for s in range(SMAC_SEEDS)]
    # every student imitates the best expert run (seed 3: trained 1200 steps, best 0.97)
    experts[3] = smac_run(tmp_path / "expert3", "central_vdn_rnn", 3, [(0, 0.0), (600, 0.6), (1200, 0.97)], best=0.97)
    choice = tmp_path / "choice.json"
    choice.write_text(json.dumps({"run_dir": experts[3], "seed": 3, "best": {"test_won_mean": 0.97}}))
    tables, figures = report_files(tmp_path, "fig4")
    table = cesma_report([Setting("3s5z", students, experts, {"IQL": iql}, choice=str(choice))], "t", True, None,
                         "paper", "paper scale", tables, figures, metric="test_won_mean")
    rows = table.set_index("series")
    assert list(rows.index) == [EXPERT, CESMA, "IQL"] and set(table["metric"]) == {"test_won_mean"}
    assert rows.loc[EXPERT, "n_seeds"] == SMAC_SEEDS and rows.loc[EXPERT, "exported_median"] == 0.97
    assert rows.loc[CESMA, "samples_median"] == 1700 and rows.loc[CESMA, "final_median"] == pytest.approx(0.90)
    assert rows.loc[CESMA, "gap_to_expert"] == pytest.approx((0.97 - 0.90) / 0.97)
    assert all(path.stat().st_size > 0 for path in figures)
    read = pd.read_csv(tables[0])
    for claim in ("fig4_decentralised_win_rate", "fig4_above_iql"):
        assert judge(CLAIMS[claim], {"cesma_fig4": read}).verdict == HOLDS, claim
    short = read.assign(gap_to_expert=0.3)
    assert judge(CLAIMS["fig4_decentralised_win_rate"], {"cesma_fig4": short}).verdict == FAILS
    tables, figures = report_files(tmp_path, "smoke")
    empty = cesma_report([], "t", True, None, "smoke", "smoke scale", tables, figures, metric="test_won_mean",
                         not_planned=["3s5z: CESMA and IQL"])
    assert empty.empty and all(path.stat().st_size > 0 for path in figures)
    verdict = judge(CLAIMS["fig4_above_iql"], {"cesma_fig4": pd.read_csv(tables[0])})
    assert verdict.verdict == NOT_JUDGED and NO_ROWS in verdict.evidence


# ------------------------------------------------------------------------------- the claims
CLAIMS = {claim.id: claim for claim in parse_claims(
    "cesma", load_checked(REPO / "config/published/cesma.yaml", SCHEMAS / "published.schema.yaml"),
    "config/published/cesma.yaml", DOMAINS)}


def fig_table(rows: dict[tuple[str, str], dict], scale: str = "paper") -> pd.DataFrame:
    return pd.DataFrame([{"setting": s, "series": series, "scale": scale, **values}
                         for (s, series), values in rows.items()])


def test_every_figure_has_claims_with_a_reading_and_unbuilt_figures_are_not_judged():
    figures = {target for claim in CLAIMS.values() for target in claim.targets}
    assert figures == {f"cesma_fig{n}" for n in range(4, 10)}
    assert all(claim.reading for claim in CLAIMS.values())
    verdict = judge(CLAIMS["fig4_above_iql"], {"cesma_fig4": None})
    assert verdict.verdict == NOT_JUDGED and verdict.evidence.startswith(NOT_BUILT)


def test_reach_the_expert_holds_within_its_tolerance_and_fails_beyond():
    claim = CLAIMS["fig5_reach_expert"]
    near = fig_table({("simple_spread", CESMA): {"gap_to_expert": 0.03}, ("simple_spread_hetero", CESMA): {"gap_to_expert": -0.01}})
    far = fig_table({("simple_spread", CESMA): {"gap_to_expert": 0.03}, ("simple_spread_hetero", CESMA): {"gap_to_expert": 0.2}})
    assert judge(claim, {"cesma_fig5": near}).verdict == HOLDS
    assert judge(claim, {"cesma_fig5": far}).verdict == FAILS
    assert judge(claim, {"cesma_fig5": fig_table({("simple_spread", CESMA): {"gap_to_expert": 0.0}}, "smoke")}).verdict \
        == NOT_JUDGED


def test_sample_efficiency_fails_when_the_students_never_reach_maddpg():
    claim = CLAIMS["fig5_sample_efficient"]
    rows = {("simple_spread", CESMA): {"samples_to_maddpg": 1.2e6}, ("simple_spread", MADDPG): {"samples_to_maddpg": 1.5e6}}
    assert judge(claim, {"cesma_fig5": fig_table(rows)}).verdict == HOLDS
    rows[("simple_spread", CESMA)] = {"samples_to_maddpg": math.inf}  # never reached
    table = pd.read_csv(pd.io.common.StringIO(fig_table(rows).to_csv(index=False)))  # as the ledger reads the csv
    assert judge(claim, {"cesma_fig5": table}).verdict == FAILS


def test_independent_ddpg_degenerate_on_communication():
    claim = CLAIMS["fig6_ddpg_degenerate_communication"]
    levels = {"independent DDPG": -60.0, MADDPG: -30.0, CESMA: -20.0}
    rows = {(s, series): {"final_median": value} for s in ("simple_speaker_listener", "simple_reference")
            for series, value in levels.items()}
    assert judge(claim, {"cesma_fig6": fig_table(rows)}).verdict == HOLDS
    rows[("simple_reference", "independent DDPG")] = {"final_median": -25.0}  # above MADDPG there
    assert judge(claim, {"cesma_fig6": fig_table(rows)}).verdict == FAILS


def test_the_ledger_and_the_figures_share_the_published_file():
    published = json.loads(json.dumps(yaml.safe_load((REPO / "config/published/cesma.yaml").read_text())))
    assert set(published["figures"]) == {"fig4", "fig5", "fig6", "fig7", "fig8", "fig9"}
    series = {label for fig in published["figures"].values() for label in fig["claims"]}
    assert {EXPERT, CESMA, MADDPG} <= series
