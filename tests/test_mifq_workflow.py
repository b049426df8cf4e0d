"""MIFQ's experiments as a workflow (config/mifq.yaml, workflow/rules/mifq.smk): experts that keep
their best checkpoint, exported and played into one demo file per task by DAG steps, imitation jobs
that depend on their task's file, the grid's checks, the tables' expert rows, and Figure 3 (box plots
by number of demonstrations) on SYNTHETIC runs.

The DAG tests are dry runs (`snakemake -n -p`) on a copy of the workflow; the smoke build itself runs
in tests/test_dag_smoke.py.
"""

from __future__ import annotations

import copy
import json
import math
import re
import shlex
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from matplotlib.image import imread
from test_workflow import (
    ALGOS,
    REPO,
    WORKFLOW,
    copy_workflow,
    job_counts,
    snakemake,
    write_final,
)

from marlrepro.checkpoint import BEST_FILE
from marlrepro.cli import main
from marlrepro.config import load_config
from marlrepro.config_schema import load_checked
from marlrepro.envs import make
from marlrepro.errors import ConfigError
from marlrepro.experiments import plan_paper, scale_from_dict, sweep_members
from marlrepro.policy_file import evaluate_policy, load_policy, read_policy_file
from marlrepro.report.claims import TABLE_FORMATS
from marlrepro.report.curve_panels import Panel, panel_rows
from marlrepro.report.demo_counts import (
    NOT_PLANNED,
    count_rows,
    demo_count,
    demo_count_figure,
    demo_counts_report,
    seed_scores,
)
from marlrepro.report.published import score_table
from marlrepro.report.score_table import score_rows
from marlrepro.train import PackMember, train_pack

SCHEMAS = REPO / "workflow/schemas"
GRID = load_checked(REPO / "config/mifq.yaml", SCHEMAS / "paper.schema.yaml")
DEMOS = load_checked(REPO / "config/demos.yaml", SCHEMAS / "demos.schema.yaml")
SCALE_NAMES = ("paper", "smoke", "validation")
TASKS = {"smacv2": ["protoss_5_vs_5", "protoss_10_vs_10", "terran_5_vs_5", "terran_10_vs_10", "zerg_5_vs_5",
                    "zerg_10_vs_10"],
         "miner": ["easy_2_vs_2", "medium_2_vs_2", "hard_2_vs_2"],
         "mpe": ["simple_spread", "simple_reference", "simple_speaker_listener"]}  # fmt: skip
METHODS = ("bc", "iiq", "iqvdn", "masqil", "magail", "mifq")
BY_COUNT = ("iiq", "iqvdn", "masqil", "magail", "mifq")  # the appendix's demo-count tables (3-14) and Figure 3
SCAN = (128, 256, 512, 1024, 2048)  # demos_smacv2 and demos_miner; 4096 is Table 1's
BY_COUNT_MPE = ("iiq", "masqil", "magail", "mifq")  # MPE's demo-count tables (15-21) print no IQVDN
SCAN_MPE = (1, 2, 4, 8, 16, 32, 64)  # demos_mpe; 128 is Table 1's
BACKENDS = {"smacv2": "smacv2", "miner": "miner", "mpe": "jaxmpe"}  # each family's backend (MPE: the JAX MPE)
COUNTS = {"smacv2": 4096, "miner": 4096, "jaxmpe": 128}  # Table 1's demonstrations (§5.4), config/demos.yaml's caps


def scale(name: str):
    return scale_from_dict(name, load_checked(REPO / f"config/scales/{name}.yaml", SCHEMAS / "scale.schema.yaml"))


def plan(data: dict, at: str = "paper") -> dict:
    return plan_paper("mifq", data, scale(at), {**WORKFLOW, "scale": at}, SCALE_NAMES, ALGOS, DEMOS)


# ------------------------------------------------------------------------------- the DAG
def jobs(output: str) -> list[dict]:
    """Every job of ``snakemake -n -p``: rule, input and output files, shell command."""
    found = []
    for block in re.split(r"^(?=(?:local)?rule \w+:$)", output, flags=re.MULTILINE)[1:]:
        fields = {m[1]: m[2] for m in re.finditer(r"^\s+(input|output): (.*)$", block, re.MULTILINE)}
        shell = re.search(r"^(?:Shell command: |\s*)(marlrepro .*)$", block, re.MULTILINE)
        found.append({"rule": block.split(":", 1)[0].split()[-1], "input": fields.get("input", "").split(", "),
                      "output": fields.get("output", "").split(", "), "shell": shell[1] if shell else ""})
    return found


def sets(shell: str) -> dict[str, str]:
    """The --set key=value of a ``marlrepro train`` command."""
    tokens = shlex.split(shell.split(" > ", 1)[0])
    return dict(tokens[i + 1].split("=", 1) for i, t in enumerate(tokens) if t == "--set")


def paper_jobs(workdir: Path, target: str, pack_size: int) -> list[dict]:
    """The jobs of ``snakemake -n -p TARGET`` at paper scale, ``pack_size`` runs per pack."""
    result = snakemake(workdir, "-n", "-p", "--config", "scale=paper", f"pack_size={pack_size}", "--", target)
    assert result.returncode == 0, result.stdout
    return jobs(result.stdout)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return copy_workflow(tmp_path_factory.mktemp("mifq"))


@pytest.fixture(scope="module", params=[4, 3])
def paper_plan(request, workdir) -> tuple[int, list[dict]]:
    """(pack_size, jobs) of ``snakemake -n -p mifq`` at paper scale."""
    return request.param, paper_jobs(workdir, "mifq", request.param)


def test_paper_scale_plans_an_expert_and_a_demo_file_per_task_then_packs_per_cell(paper_plan):
    pack_size, planned = paper_plan
    tasks = [f"{BACKENDS[family]}:{task}" for family, names in TASKS.items() for task in names]
    experts = [j for j in planned if j["rule"] == "train" and "mappo_expert" in j["shell"]]
    assert sorted(sets(j["shell"])["env.name"] for j in experts) == sorted(tasks)
    for job in experts:  # MAPPO with mappo_expert.yaml, one seed, keeping its best evaluation
        assert "--config config/algos/mappo_expert.yaml" in job["shell"] and "--pack" not in job["shell"]
        assert sets(job["shell"])["run.keep_best"] == "true" and sets(job["shell"])["run.seed"] == "0"
    exports = {j["output"][0]: j for j in planned if j["rule"] == "export_expert"}
    collects = [j for j in planned if j["rule"] == "collect_demos"]
    assert len(exports) == len(collects) == 12
    demo_files = {}
    for job in collects:
        [policy, settings] = job["input"]
        backend, task = re.search(r"/experts_(\w+)/(\w+)-(\w+)/", policy).group(2, 3)
        assert settings == "config/demos.yaml" and "--checkpoint best" in exports[policy]["shell"]
        assert f"--episodes {COUNTS[backend]} " in job["shell"] and "--summary " in job["shell"]
        demo_files[f"{backend}:{task}"] = job["output"][0]
    assert sorted(demo_files) == sorted(tasks) and all(f.endswith("/demos.zip") for f in demo_files.values())
    imitation = [j for j in planned if j["rule"].startswith("train_pack") or (
        j["rule"] == "train" and "mappo_expert" not in j["shell"])]
    cells: dict[tuple[str, str, int], int] = {}
    for job in imitation:
        values = sets(job["shell"])
        algo = re.search(r"--config config/algos/(\w+)\.yaml", job["shell"])[1]
        env, count = values["env.name"], int(values["demos.count"])
        cells[(env, algo, count)] = cells.get((env, algo, count), 0) + 1
        # every imitation job reads its task's demo file: an input of the job, and its demos.path
        assert demo_files[env] in job["input"] and values["demos.path"] == demo_files[env]
        # a demonstration batch within the count (MPE's 1 ... 64: all of them; Table 2's 128 otherwise)
        assert int(values.get("demos.batch_size", 128)) == min(128, count)
    table1 = [(task, m, COUNTS[task.split(":")[0]]) for task in tasks for m in METHODS]
    scans = [(task, m, n) for task in tasks if not task.startswith("jaxmpe:") for m in BY_COUNT for n in SCAN]
    mpe_scans = [(task, m, n) for task in tasks if task.startswith("jaxmpe:") for m in BY_COUNT_MPE for n in SCAN_MPE]
    assert sorted(cells) == sorted(table1 + scans + mpe_scans)
    assert set(cells.values()) == {math.ceil(4 / pack_size)}
    tables = {j["rule"] for j in planned if re.fullmatch(r"mifq_table\d+", j["rule"])}
    assert tables == {f"mifq_table{n}" for n in (1, *range(3, 23))}
    # Figure 3: every seed of SMACv2's and Gold Miner's cells by count, Table 1's runs at 4096, BC's not
    [fig3] = [j for j in planned if j["rule"] == "mifq_fig3"]
    finals = {f for f in fig3["input"] if f.endswith("/final.json")}
    expected = {f"results/runs/mifq/{'table1' if n == 4096 else 'demos'}_{task.split(':')[0]}{'' if n == 4096 else f'-{n}'}/"
                f"{task.replace(':', '-')}/{m}/seed{seed}/final.json"
                for task in tasks if not task.startswith("jaxmpe:") for m in BY_COUNT for n in (*SCAN, 4096)
                for seed in range(4)}  # fmt: skip
    assert finals == expected
    assert sum(f.endswith("/expert.json") for f in fig3["input"]) == 9


def test_smoke_plans_one_tiny_task_end_to_end(workdir):
    result = snakemake(workdir, "-n", "-p", "--config", "scale=smoke", "--", "mifq")
    assert result.returncode == 0, result.stdout
    # Table 18 (8 demonstrations on MPE) from Table 1's smoke runs, which learn from 8
    assert job_counts(result.stdout) == {"train": 7, "export_expert": 1, "collect_demos": 1, "mifq_table1": 1,
                                         "mifq_fig2": 1, "mifq_fig3": 1, "mifq_table18": 1, "mifq": 1, "total": 14}
    planned = jobs(result.stdout)
    [collect] = [j for j in planned if j["rule"] == "collect_demos"]
    assert "jaxmpe-simple_spread" in collect["output"][0]
    assert "--episodes 8 " in collect["shell"] and "--width 8 " in collect["shell"] and "--device cpu " in collect["shell"]
    for job in planned:
        if job["rule"] == "train":
            values = sets(job["shell"])
            assert values["env.name"] == "jaxmpe:simple_spread" and int(values["run.t_max"]) <= 600
            assert values.get("demos.count", "8") == "8"
    tables = {j["rule"]: j["input"] for j in planned if j["rule"].startswith("mifq_")}
    # Figure 3 plans no run at smoke: its only input is the published file (the figure marks every cell)
    assert tables.pop("mifq_fig3") == ["config/published/mifq.yaml"]
    assert all(collect["output"][1] in inputs for inputs in tables.values())  # expert.json: the expert's score


# -------------------------------------------------------------------------- the grid's checks
def edited(change) -> dict:
    data = copy.deepcopy(GRID)
    change(data["experiments"])
    return data


@pytest.mark.parametrize(("change", "words"), [
    (lambda e: e["table1_mpe"].__setitem__("algos", ["bc", "mifqq"]),
     ["experiments.table1_mpe.algos[1]: unknown algorithm 'mifqq' (did you mean 'mifq'?)"]),
    (lambda e: e["table1_miner"]["envs"].__setitem__(0, "miner:easy_3_vs_3"),
     ["experiments.table1_miner.envs[0]: unknown miner scenario 'easy_3_vs_3'", "easy_2_vs_2"]),
    (lambda e: e["table1_mpe"].__setitem__("demos_from", "experts_mp"),
     ["table1_mpe.demos_from: 'experts_mp' is not an experiment with collect_demos (did you mean 'experts_mpe'?)"]),
    (lambda e: e["table1_mpe"].pop("demos_from"), ["table1_mpe: bc, iiq, iqvdn, masqil, magail, mifq learn from demonstrations"]),
    (lambda e: e["experts_mpe"].__setitem__("demos_from", "experts_miner"),
     ["experts_mpe.demos_from: mappo_expert do not learn from demonstrations"]),
    (lambda e: e["table1_mpe"]["settings"]["demos"].__setitem__("count", 256),
     ["table1_mpe: bc on jaxmpe:simple_spread asks for demos.count=256 demonstrations; experts_mpe collects 128"]),
    (lambda e: e["experts_miner"].__setitem__("envs", ["miner:easy_2_vs_2"]),
     ["table1_miner: miner:medium_2_vs_2 has no expert in experts_miner at scale paper"]),
    (lambda e: e["experts_mpe"].__setitem__("seeds", 2), ["experts_mpe.seeds: an expert experiment", "seeds: 1"]),
    (lambda e: e["experts_mpe"].__setitem__("collect_demos", {"episodes": 129}),
     ["experts_mpe.collect_demos.episodes: 129 is more than the 128 demonstrations the paper collects on jaxmpe:"]),
    (lambda e: e["experts_mpe"]["scales"].__setitem__("paper", {"skip": True}),
     ["table1_mpe.demos_from: experts_mpe is skipped at scale paper"]),
    (lambda e: e["table1_mpe"]["settings"]["demos"].__setitem__("path", "my.zip"),
     ["table1_mpe.settings: 'demos.path' is decided by the workflow"]),
    (lambda e: e["demos_mpe"]["sweep"].pop("paired"),
     ["demos_mpe at scale paper, demos.count=1", "demos.batch_size", "use at most 1 (got 128)"]),
])  # fmt: skip
def test_a_bad_grid_fails_before_any_job_naming_the_key(change, words):
    with pytest.raises(ConfigError) as err:
        plan(edited(change))
    assert all(word in str(err.value) for word in words), err.value


def test_the_grid_plans_every_task_at_paper_and_validation_and_one_at_smoke():
    for at, seeds in (("paper", 4), ("validation", 3)):
        planned = plan(GRID, at)
        for family, tasks in TASKS.items():
            experts, table = planned[f"experts_{family}"], planned[f"table1_{family}"]
            envs = [f"{BACKENDS[family]}:{task}" for task in tasks]
            assert list(experts.envs) == list(table.envs) == envs and experts.seeds == (0,)
            assert experts.collect == dict.fromkeys(envs, COUNTS[BACKENDS[family]])
            assert table.algos == METHODS and len(table.seeds) == seeds and table.demos_from == f"experts_{family}"
    smoke = plan(GRID, "smoke")
    assert sorted(smoke) == ["experts_mpe", "table1_mpe"]  # the others: scales.smoke.skip
    assert smoke["experts_mpe"].collect == {"jaxmpe:simple_spread": 8}
    # Table 2's MPE column (lr 2e-5, 100k steps, a buffer that holds the whole run) and Table 1's 128
    mpe = plan(GRID)["table1_mpe"]
    assert {(a, mpe.settings_of(a)["learner.lr"], mpe.settings_of(a)["run.t_max"], mpe.settings_of(a)["demos.count"])
            for a in METHODS} == {(a, 2e-5, 100_000, 128) for a in METHODS}
    assert all(mpe.settings_of(a)["learner.buffer_size"] == 4000 for a in METHODS if a not in ("bc", "magail"))
    # MAGAIL: on-policy (its buffer is its rollout) with its critic on the global state on MPE and Miner
    assert mpe.settings_of("magail")["ppo.critic_input"] == "state"
    assert plan(GRID)["table1_miner"].settings_of("magail")["ppo.critic_input"] == "state"
    # Tables 15-21 at paper scale alone: Table 1's MPE settings, the count's demonstrations in each batch
    scan = sweep_members(plan(GRID), "demos_mpe")
    assert [exp.sweep.value for exp in scan] == list(SCAN_MPE) and all(exp.algos == BY_COUNT_MPE for exp in scan)
    for exp in scan:
        assert all(exp.settings_of(a)["demos.batch_size"] == exp.sweep.value and exp.settings_of(a)["learner.lr"] == 2e-5
                   for a in BY_COUNT_MPE)
    assert not any(sweep_members(plan(GRID, at), "demos_mpe") for at in ("smoke", "validation"))


# ------------------------------------------------------------------ experts keep their best
@pytest.fixture(scope="module")
def expert(tmp_path_factory) -> Path:
    """QMIX on the matrix game, keeping its best of five evaluations (run.keep_best)."""
    run_dir = tmp_path_factory.mktemp("expert") / "run"
    config = load_config(["config/algos/qmix.yaml"], [
        "env.name=matrix:me_igm", "env.num_envs=8", "learner.batch_size=8", "run.t_max=160", "run.eval_interval=40",
        "run.eval_episodes=8", "run.keep_best=true", "run.device=cpu", "run.progress=false", "tracking.uri=",
        "agent.hidden_dim=16"])  # fmt: skip
    train_pack([PackMember(config, run_dir)])
    return run_dir


def test_an_expert_keeps_its_best_evaluation_and_exports_it(expert, tmp_path):
    metrics = pd.read_parquet(expert / "metrics.parquet")
    best = metrics.sort_values(["test_won_mean", "test_return_mean"], ascending=False, kind="stable").iloc[0]
    final = json.loads((expert / "final.json").read_text())
    assert final["best"] == {"t_env": int(best["t_env"]), "test_return_mean": pytest.approx(best["test_return_mean"]),
                             "test_won_mean": pytest.approx(best["test_won_mean"])}
    state = torch.load(expert / BEST_FILE, weights_only=False)
    assert state["progress"]["t_env"] == final["best"]["t_env"] and state["evaluation"] == final["best"]
    policy = tmp_path / "policy.zip"
    assert main(["export-policy", str(expert), str(policy), "--checkpoint", "best"]) == 0
    manifest, _ = read_policy_file(policy)
    assert (manifest.checkpoint, manifest.t_env) == (BEST_FILE, final["best"]["t_env"])
    # the exported weights play the best evaluation again (a deterministic one-step game)
    assert evaluate_policy(load_policy(policy), make("matrix:me_igm", 8, 0, "cpu"))[0] == pytest.approx(
        final["best"]["test_return_mean"])
    summary = tmp_path / "expert.json"
    assert main(["collect-demos", str(policy), str(tmp_path / "demos.zip"), "--episodes", "4", "--width", "4",
                 "--config", str(REPO / "config/demos.yaml"), "--summary", str(summary)]) == 0
    record = json.loads(summary.read_text())
    assert record["algo"] == "expert" and record["env"] == "matrix:me_igm" and record["episodes"] == 4
    assert record["expert_checkpoint"] == BEST_FILE and record["test_return_mean"] == pytest.approx(
        final["best"]["test_return_mean"])


def test_a_run_without_keep_best_has_no_best_to_export(tmp_path, capsys):
    run_dir = tmp_path / "run"
    config = load_config(["config/algos/qmix.yaml"], [
        "env.name=matrix:me_igm", "env.num_envs=8", "learner.batch_size=8", "run.t_max=16", "run.eval_interval=8",
        "run.eval_episodes=8", "run.device=cpu", "run.progress=false", "tracking.uri=", "agent.hidden_dim=16"])
    train_pack([PackMember(config, run_dir)])
    assert "best" not in json.loads((run_dir / "final.json").read_text()) and not (run_dir / BEST_FILE).exists()
    assert main(["export-policy", str(run_dir), str(tmp_path / "p.zip"), "--checkpoint", "best"]) == 2
    assert "checkpoint/best.pt: no such checkpoint; a run with run.keep_best: true writes it" in capsys.readouterr().err


# ------------------------------------------------------------------------------ the tables
def test_table1_sets_the_expert_and_both_metrics_beside_the_paper():
    winrate, reward = score_table(REPO / "config/published/mifq.yaml", "table1_winrate"), score_table(
        REPO / "config/published/mifq.yaml", "table1_reward")
    built = ["expert", *METHODS]
    runs = [{"algo": "expert", "env": "miner:easy_2_vs_2", "seed": 0, "test_won_mean": 0.8, "test_return_mean": 9.0},
            *({"algo": "mifq", "env": "miner:easy_2_vs_2", "seed": s, "test_won_mean": w, "test_return_mean": 1.0}
              for s, w in enumerate((0.3, 0.5)))]  # fmt: skip
    table = score_rows(runs, winrate, built, "paper").set_index(["scenario", "method"])
    mifq = table.loc[("easy_2_vs_2", "mifq")]
    assert mifq["ours_mean"] == pytest.approx(40.0) and mifq["ours_of_expert"] == pytest.approx(0.5)
    assert mifq["published_of_expert"] == pytest.approx(45 / 82)
    assert table.loc[("easy_2_vs_2", "expert"), "ours_mean"] == pytest.approx(80.0)
    unbuilt = score_rows(runs, winrate, [m for m in built if m != "magail"], "paper").set_index(["scenario", "method"])
    assert unbuilt.loc[("easy_2_vs_2", "magail"), "status"] == "not built yet"  # a published row we do not build
    mpe = score_rows([{"algo": "bc", "env": "mpe:simple_spread", "seed": 0, "test_won_mean": 0.0,
                       "test_return_mean": -20.0}], reward, built, "paper").set_index(["scenario", "method"])
    assert mpe.loc[("simple_spread", "bc"), "ours_mean"] == -20.0  # MPE: the return, not a win rate


def test_a_panel_draws_its_expert_as_a_reference_row(tmp_path):
    reference = tmp_path / "expert.json"
    reference.write_text(json.dumps({"algo": "expert", "test_won_mean": 0.75, "test_return_mean": 3.0}))
    panel = Panel("easy_2_vs_2", "test_won_mean", "win rate", {"mifq": []}, (0.0, 1.0), {"expert": str(reference)})
    curves = pd.DataFrame({"algo": ["mifq"] * 2, "seed": [0, 0], "t_env": [0, 10], "value": [0.1, 0.3]})
    rows = panel_rows(panel, curves, None, "paper", "miner").set_index("series")
    assert rows.loc["expert (reference)", "final_median"] == 0.75 and rows.loc["mifq", "final_median"] == 0.3
    assert Panel.from_dict({"title": "t", "metric": "m", "ylabel": "y", "series": {}, "references": {"e": "f"}}
                           ).references == {"e": "f"}


# ----------------------------------------------------------------------------- Figure 3
APPENDIX_WIN_RATES = [f"table{n}" for n in range(3, 15)]  # SMACv2 (3-8) and Gold Miner (9-14), 128 ... 4096


def count_run(root: Path, env: str, algo: str, count: int, seed: int, won: float, backend: str) -> Path:
    """A SYNTHETIC run of ``algo`` on ``env`` trained on ``count`` demonstrations."""
    run_dir = root / f"{env.replace(':', '-')}-{count}" / algo / f"seed{seed}"
    write_final(run_dir, algo=algo, env=env, seed=seed, test_won_mean=won, backend=backend)
    (run_dir / "config.yaml").write_text(yaml.safe_dump({"algo": algo, "demos": {"count": count}}))
    return run_dir


@pytest.fixture
def count_runs(tmp_path) -> tuple[list[Path], Path]:
    """MIFQ and IIQ on protoss_5_vs_5 at 128 and 4096 demonstrations (2 seeds), MIFQ on Miner easy at
    4096 (1 seed), and protoss_5_vs_5's expert file; every other cell of Figure 3 not planned."""
    runs = [count_run(tmp_path, "smacv2:protoss_5_vs_5", algo, count, seed, won, "smacv2")
            for algo, count, wins in (("mifq", 128, (0.2, 0.4)), ("iiq", 128, (0.1, 0.1)), ("mifq", 4096, (0.6, 0.7)),
                                      ("iiq", 4096, (0.2, 0.3)))
            for seed, won in enumerate(wins)]  # fmt: skip
    runs.append(count_run(tmp_path, "miner:easy_2_vs_2", "mifq", 4096, 0, 0.5, "miner"))
    expert = tmp_path / "expert.json"
    expert.write_text(json.dumps({"algo": "expert", "env": "smacv2:protoss_5_vs_5", "seed": 0, "test_won_mean": 0.8,
                                  "test_return_mean": 1.0}))
    return runs, expert


def test_fig3_sets_every_cell_beside_its_appendix_table_and_marks_the_unplanned(count_runs, tmp_path):
    runs, expert = count_runs
    tables, figures = [tmp_path / f"fig3.{ext}" for ext in ("csv", "md", "html")], [tmp_path / "fig3.png"]
    demo_counts_report(runs, REPO / "config/published/mifq.yaml", APPENDIX_WIN_RATES, BY_COUNT, "paper", "the paper's",
                       tables, figures, [expert])  # fmt: skip
    table = pd.read_csv(tables[0])
    assert set(TABLE_FORMATS["mifq_fig3"].columns) <= set(table.columns)  # what the claim ledger reads
    assert len(table) == len(table.drop_duplicates(["scenario", "method", "demos"])) == 9 * 5 * 6
    cells = table.set_index(["scenario", "method", "demos"])
    mifq = cells.loc[("protoss_5_vs_5", "mifq", 128)]
    assert mifq["ours_mean"] == pytest.approx(30.0) and mifq["n_seeds"] == 2 and mifq["published_mean"] == 15.9  # Table 3
    assert mifq["ours_of_expert"] == pytest.approx(30 / 80) and mifq["status"] == "ours"
    assert cells.loc[("easy_2_vs_2", "mifq", 4096), "published_mean"] == 44.9  # Table 14
    assert cells.loc[("easy_2_vs_2", "mifq", 4096), "backend"] == "miner"  # one backend per family
    unplanned = cells.loc[("protoss_5_vs_5", "iqvdn", 128)]
    assert unplanned["status"] == NOT_PLANNED and unplanned["n_seeds"] == 0 and math.isnan(unplanned["ours_mean"])
    assert (table["status"] == "ours").sum() == 5
    assert "Backend: smacv2, miner" in tables[1].read_text() and NOT_PLANNED in tables[1].read_text()
    pixels = imread(figures[0])
    assert pixels[..., :3].std() > 0.05  # not a blank page


def test_fig3_draws_the_published_mean_on_each_box_and_not_planned_across_empty_counts(count_runs):
    runs, _ = count_runs
    finals = [(json.loads((run / "final.json").read_text()), demo_count(run)) for run in runs]
    published = [score_table(REPO / "config/published/mifq.yaml", key) for key in APPENDIX_WIN_RATES]
    table = count_rows(finals, [], published, BY_COUNT, "paper")
    fig = demo_count_figure(seed_scores(finals, "percent"), table, {}, BY_COUNT, "win rate (%)", (0.0, 100.0), "t")
    panels = {ax.get_title(): ax for ax in fig.axes}
    assert list(panels) == [*TASKS["smacv2"], *TASKS["miner"]]
    marks = {title: [t.get_text() for t in ax.texts].count(NOT_PLANNED) for title, ax in panels.items()}
    assert marks == {**dict.fromkeys(panels, 6), "protoss_5_vs_5": 4, "easy_2_vs_2": 5}
    protoss = panels["protoss_5_vs_5"]
    [diamonds] = protoss.collections
    assert len(diamonds.get_offsets()) == 6 * 5  # every cell's published mean, planned or not
    rows = {round(y, 6) for y in diamonds.get_offsets()[:, 1]}
    boxes = [patch.get_path().get_extents() for patch in protoss.patches]
    assert len(boxes) == 4 and all(round((box.y0 + box.y1) / 2, 6) in rows for box in boxes)  # each box on its row
    assert [label.get_text() for label in protoss.get_yticklabels()] == ["128", "256", "512", "1024", "2048", "4096"]
