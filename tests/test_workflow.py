"""The Snakemake workflow layer: the DAG at both scales, config validation, experiment planning,
and the aggregation code on synthetic run directories.

Every run directory built here is SYNTHETIC (hand-written final.json / metrics.parquet in a temp
dir) and exists only to check the aggregation arithmetic; the full smoke run of the DAG lives
elsewhere. Snakemake itself runs on a copy of the workflow files in a temp dir, so results/ of
the checkout are never touched.
"""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from marlrepro.config import load_config, parse_override, read_settings
from marlrepro.config_schema import check_schema, load_checked
from marlrepro.errors import ConfigError
from marlrepro.experiments import (
    Run,
    Sweep,
    format_value,
    plan_paper,
    resolve_env,
    scale_from_dict,
    sweep_members,
)
from marlrepro.pack_plan import PackMember, expand_pack
from marlrepro.report.build import learning_curve_report, matrix_game_report
from marlrepro.report.curves import align_curves, curve_band
from marlrepro.report.published import load_published, matrix_game
from marlrepro.report.runs import RunDataError, read_final
from marlrepro.train import method_name

REPO = Path(__file__).resolve().parents[1]
PUBLISHED_ME_IGM = REPO / "config" / "published" / "me_igm.yaml"
PAYOFF = [[8.0, -12.0, -12.0], [-12.0, 0.0, 0.0], [-12.0, 0.0, 0.0]]
# The training cells (maps x algos) and seeds of every experiment, in this order: ME-IGM
# table1_qmix, table1_fop, table1_me_qmix, table2_protoss, table2_terran, table2_zerg, table3,
# table4 and the figures' experiments, vd smax_curves, then IGM-DA's sight0, bc, sight3, sight6 and sight9 (config/igm_da.yaml;
# smoke runs subsets of maps, algos and seeds; validation runs ME-QMIX and QMIX on the three 5v5
# SMACv2 scenarios and the ablations at 1M steps, sight0's qmix pair on four maps and bc on MMM2, with 3 seeds, the rest as at paper scale).
ME_IGM_SMACV2 = {"smoke": [(1 * 8, 1), (1 * 1, 1), (1 * 1, 1), (1 * 1, 1), (1 * 1, 1)],
                 "paper": [(5 * 8, 3), (5 * 8, 3), (5 * 8, 3), (3 * 3, 4), (3 * 2, 4)],
                 "validation": [(1 * 2, 3), (1 * 2, 3), (1 * 2, 3), (3 * 3, 4), (3 * 2, 4)]}
# ME-IGM's figures: fig2_fop_gap, fig4_overcooked (layouts x algos; smoke: ME-QMIX only; validation: cramped room only),
# fig5_long_anneal, then one experiment per value of the fig6_temperature_lr and fig6_target_entropy scans (smoke: one each)
ME_IGM_FIGURES = {"smoke": [(1 * 1, 1), (2 * 1, 1), (1 * 1, 1), (1 * 1, 1), (1 * 1, 1)],
                  "paper": [(1 * 1, 5), (2 * 4, 3), (1 * 1, 3), *[(1 * 1, 3)] * 4, *[(1 * 1, 3)] * 3],
                  "validation": [(1 * 1, 3), (1 * 2, 3), (1 * 1, 3), *[(1 * 1, 3)] * 4, *[(1 * 1, 3)] * 3]}
CELLS = {"smoke": [(1 * 1, 3), (1 * 1, 2), (1 * 1, 2), *ME_IGM_SMACV2["smoke"], *ME_IGM_FIGURES["smoke"],
                   (1 * 3, 2), (2 * 3, 2), (1 * 1, 2), (1 * 2, 1), (1 * 2, 1), (1 * 2, 2)],
         "paper": [(1 * 1, 5), (1 * 1, 5), (1 * 1, 5), *ME_IGM_SMACV2["paper"], *ME_IGM_FIGURES["paper"],
                   (1 * 3, 5), (6 * 6, 5), (2 * 1, 5), (1 * 2, 5), (1 * 2, 5), (2 * 2, 5)],
         "validation": [(1 * 1, 5), (1 * 1, 5), (1 * 1, 5), *ME_IGM_SMACV2["validation"], *ME_IGM_FIGURES["validation"],
                        (1 * 3, 5), (4 * 2, 3), (1 * 1, 3), (1 * 2, 5), (1 * 2, 5), (2 * 2, 5)]}
IGM_DA = slice(-5, None)
PACK_SIZES = {"smoke": 2, "paper": 4, "validation": 4}  # config/scales/*.yaml
IGM_DA_TARGETS = ("table1", "fig3", "fig4", "fig5ab", "fig5c", "fig6", "fig7")
# MIFQ (config/mifq.yaml): one MAPPO expert per task, one seed, never packed nor multiplied by
# config.yaml's seeds (experts_smacv2, experts_miner, experts_mpe: 6 + 3 + 3 tasks; smoke: MPE spread
# alone); Table 1's cells (tasks x bc, iiq, iqvdn, masqil, magail, mifq) of table1_smacv2, table1_miner
# and table1_mpe: 4 seeds (validation 3; smoke: MPE spread alone, one seed); at paper scale only, the
# demo-count scans demos_smacv2 and demos_miner (tasks x iiq, iqvdn, masqil, magail, mifq x 5 counts, 4 seeds)
# and demos_mpe (tasks x iiq, masqil, magail, mifq x 7 counts, 4 seeds)
MIFQ_TASKS = {"smoke": 1, "paper": 12, "validation": 12}
MIFQ_CELLS = {"smoke": [(1 * 6, 1)],
              "paper": [(6 * 6, 4), (3 * 6, 4), (3 * 6, 4), (6 * 5 * 5, 4), (3 * 5 * 5, 4), (3 * 4 * 7, 4)],
              "validation": [(6 * 6, 3), (3 * 6, 3), (3 * 6, 3)]}
# CESMA (config/cesma.yaml): per MPE setting (7 at paper scale) a centralised expert, its DAgger and
# MADDPG and independent DDPG, 3 seeds; smoke: simple_spread's expert, DAgger and MADDPG, one seed;
# validation: simple_spread's and speaker-listener's expert, DAgger and MADDPG. Every expert run is
# exported (export_expert). Figures 7 and 8: three DQN experts and their DAgger, and the per-agent
# DAgger on 2 settings, 3 seeds; smoke: the exponential DQN expert, its DAgger and one per-agent DAgger.
# Figure 4 (SMAC 3s5z, paper scale only): the recurrent expert, its students and IQL, 5 seeds.
CESMA_CELLS = {"smoke": [(3, 1), (3, 1)], "paper": [(7 + 7 + 7 * 2, 3), (3 + 3 + 2, 3), (3, 5)],
               "validation": [(2 * 3, 3)]}
CESMA_EXPERTS = {"smoke": 1 + 1, "paper": 7 * 3 + 3 * 3 + 5, "validation": 2 * 3}


def expected_train_jobs(scale: str, pack_size: int | None = None, seeds: int | None = None,
                        experiments: slice = slice(None), mifq: bool = True, cesma: bool = True) -> int:
    """Training jobs of the DAG at ``scale``: each cell's seeds (or ``seeds``) in
    ceil(seeds / pack_size) packs; ``pack_size`` 1 counts the runs. ``mifq``: with MIFQ's experts
    (one job each) and Table 1's cells; ``cesma``: with CESMA's cells."""
    pack_size = pack_size or PACK_SIZES[scale]
    cells = [*CELLS[scale][experiments], *(MIFQ_CELLS[scale] if mifq else []), *(CESMA_CELLS[scale] if cesma else [])]
    return sum(n * math.ceil((seeds or k) / pack_size) for n, k in cells) + (MIFQ_TASKS[scale] if mifq else 0)

# ----------------------------------------------------------------------------------- snakemake
def copy_workflow(root: Path) -> Path:
    """Copy the workflow files (Snakefile, workflow/, config/, envs/, slurm/) into ``root``."""
    shutil.copy(REPO / "Snakefile", root)
    for folder in ("workflow", "config", "envs", "slurm"):
        shutil.copytree(REPO / folder, root / folder)
    return root


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """A copy of the workflow files in a temp dir."""
    return copy_workflow(tmp_path_factory.mktemp("workflow"))


def snakemake(workdir: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """Run snakemake in ``workdir`` (marlrepro importable from this checkout); output merged."""
    pythonpath = os.pathsep.join(p for p in (str(REPO / "src"), os.environ.get("PYTHONPATH")) if p)
    return subprocess.run(
        [sys.executable, "-m", "snakemake", *args],
        cwd=workdir, env={**os.environ, "PYTHONPATH": pythonpath, **env},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300,
    )  # fmt: skip


def job_counts(output: str) -> dict[str, int]:
    """The 'Job stats' table of a dry run: rule -> number of jobs."""
    stats = output.split("Job stats:", 1)[1].split("\n\n", 1)[0]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", stats, re.MULTILINE)}


def train_commands(output: str) -> list[list[str]]:
    """The ``marlrepro train`` argument lists printed by ``snakemake -n -p``."""
    commands = []
    for line in output.splitlines():
        if line.strip().startswith("marlrepro train") or "Shell command: marlrepro train" in line:
            tokens = shlex.split(line.split("marlrepro train", 1)[1])
            commands.append(tokens[: tokens.index(">")])
    return commands


def train_jobs(output: str) -> list[tuple[str, list[str], list[str]]]:
    """(rule, output files, ``marlrepro train`` arguments) of every training job of ``snakemake -n -p``."""
    jobs = []
    for block in re.split(r"^(?=(?:local)?rule \w+:$)", output, flags=re.MULTILINE)[1:]:
        rule = block.split(":", 1)[0].split()[-1]
        if rule.startswith("train"):
            outputs = re.search(r"^\s+output: (.*)$", block, re.MULTILINE)[1].split(", ")
            [command] = train_commands(block)
            jobs.append((rule, outputs, command))
    return jobs


def train_arguments(tokens: list[str]) -> tuple[str, list[str], str | None, str]:
    """(--config, the --set values, the --pack value or None, --out) of ``marlrepro train``
    arguments, which must come in the contract's order: --config, --set..., [--pack], --out."""
    assert tokens[0] == "--config" and re.fullmatch(r"config/algos/[a-z_]+\.yaml", tokens[1]), tokens
    assert tokens[-2] == "--out", tokens
    sets, pack = tokens[2:-2], None
    if sets[-2:-1] == ["--pack"]:
        sets, pack = sets[:-2], sets[-1]
    assert sets[::2] == ["--set"] * (len(sets) // 2), tokens
    return tokens[1], sets[1::2], pack, tokens[-1]


def planned_runs(output: str) -> dict[str, object]:
    """Run directory -> the config ``marlrepro train`` loads for it, of every run that a dry run
    plans, alone or in a pack (expanded as the command line expands ``--pack``)."""
    runs = {}
    for tokens in train_commands(output):
        config_file, sets, pack, out = train_arguments(tokens)
        if pack is None:
            runs[out] = load_config([REPO / config_file], sets)
        else:
            runs.update({str(m.run_dir): m.config for m in expand_pack([REPO / config_file], sets, out, pack)})
    return runs


@pytest.fixture(scope="module", params=["smoke", "paper", "validation"])
def dry_run(request, workdir) -> tuple[str, str]:
    """(scale, output) of ``snakemake -n -p --config scale=<scale>``."""
    result = snakemake(workdir, "-n", "-p", "--config", f"scale={request.param}")
    assert result.returncode == 0, result.stdout
    return request.param, result.stdout


def test_dry_run_lists_every_rule_at_every_scale(dry_run):
    scale, output = dry_run
    counts = job_counts(output)
    assert sum(n for rule, n in counts.items() if rule.startswith("train")) == expected_train_jobs(scale)
    assert counts["me_igm_table1_qmix"] == counts["me_igm_table1_fop"] == counts["me_igm_table1_me_qmix"] == 1
    assert counts["me_igm_table1"] == counts["me_igm_table2"] == counts["me_igm_table3"] == counts["me_igm_table4"] == 1
    assert all(counts[f"me_igm_fig{n}"] == 1 for n in (2, 4, 5, 6))
    assert counts["vd_smax_curves"] == 1 and counts["all"] == 1
    assert all(counts[f"igm_da_{target}"] == 1 for target in IGM_DA_TARGETS)
    assert counts["igm_da_claims"] == counts["me_igm_claims"] == counts["mifq_claims"] == 1  # all takes every ledger
    assert counts["mifq_table1"] == counts["mifq_fig2"] == counts["mifq_fig3"] == 1  # fig3 at every scale
    assert counts["collect_demos"] == MIFQ_TASKS[scale]
    assert counts["export_expert"] == MIFQ_TASKS[scale] + CESMA_EXPERTS[scale]  # and every CESMA expert run
    assert counts["cesma_fig5"] == counts["cesma_fig6"] == counts["cesma_claims"] == 1
    # Figure 4 at every scale (smoke and validation plan no 3s5z run: its panel reads "not planned");
    # its students' best expert is picked once, at paper scale
    assert counts["cesma_fig4"] == 1 and counts.get("select_best_expert", 0) == (scale == "paper")
    # Figures 7 and 8: at paper and smoke scale (validation plans none of their runs)
    assert counts.get("cesma_fig7", 0) == counts.get("cesma_fig8", 0) == (scale != "validation")
    assert counts["cesma_fig9"] == 1  # on cesma_nav3's runs, planned at every scale


def test_igm_da_target_lists_every_igm_da_result(workdir):
    result = snakemake(workdir, "-n", "igm_da", "--config", "scale=smoke")
    assert result.returncode == 0, result.stdout
    counts = job_counts(result.stdout)
    assert all(counts[f"igm_da_{target}"] == 1 for target in IGM_DA_TARGETS) and counts["igm_da"] == 1
    assert sum(n for rule, n in counts.items() if rule.startswith("train")) == expected_train_jobs(
        "smoke", experiments=IGM_DA, mifq=False, cesma=False)


def test_train_commands_have_the_contract_shape_and_load(dry_run):
    """Each job is `marlrepro train --config config/algos/<algo>.yaml --set ... --out <run dir>`, or
    for a pack `... --pack run.seed=<its seeds> --out <run dir with {run.seed}>`, and its arguments
    load with the real config loader (so no setting in config/ is a typo)."""
    scale, output = dry_run
    jobs = train_jobs(output)
    assert len(jobs) == expected_train_jobs(scale)
    for rule, outputs, tokens in jobs:
        config_file, sets, pack, out = train_arguments(tokens)
        assert f"tracking.tags.scale={scale}" in sets and "run.progress=false" in sets
        if pack is None:
            assert rule == "train"
            members = [PackMember(load_config([REPO / config_file], sets), Path(out))]
        else:
            members = expand_pack([REPO / config_file], sets, out, pack)
            seeds = [m.config.run.seed for m in members]
            assert len(seeds) > 1 and pack == f"run.seed={','.join(map(str, seeds))}"
            assert rule == f"train_pack_seeds{seeds[0]}to{seeds[-1]}" and seeds == list(range(seeds[0], seeds[-1] + 1))
        for member in members:
            config = member.config
            assert str(member.run_dir) == (
                f"results/runs/{config.tracking.tags['paper']}/{config.tracking.tags['experiment']}/"
                f"{config.env.name.replace(':', '-')}/{Path(config_file).stem}/seed{config.run.seed}"
            )
            assert config.tracking.run_name == str(member.run_dir).removeprefix("results/runs/")
            assert config.run.device == ("cpu" if scale == "smoke" else "auto")
        assert sorted(outputs) == sorted(f"{m.run_dir}/{name}" for m in members
                                         for name in ("final.json", "metrics.parquet", "config.yaml"))


def test_validation_scale_trains_the_documented_igm_da_runs(dry_run):
    """docs/validation.md's runs: sight0's qmix pair on 8m, 5m_vs_6m, 8m_vs_9m and MMM2, and bc
    (Fig. 5a's BC beside sight0's DAgger) on MMM2, 3 seeds, 300k steps, appendix D otherwise (both
    methods' agents read the available actions), float16 buffers; the paper-scale sight0 runs keep
    2M steps and float32."""
    scale, output = dry_run
    configs = list(planned_runs(output).values())
    sight0 = [c for c in configs if c.tracking.tags["experiment"] == "sight0"]
    bc = [c for c in configs if c.tracking.tags["experiment"] == "bc"]
    if scale == "validation":
        assert {(c.env.name, c.algo if c.imitation.mode == "none" else "qmix_da", c.run.seed) for c in sight0} == {
            (f"smax:{m}", a, s) for m in ("8m", "5m_vs_6m", "8m_vs_9m", "MMM2") for a in ("qmix", "qmix_da")
            for s in range(3)}
        assert {(c.env.name, c.imitation.mode, c.run.seed) for c in bc} == {("smax:MMM2", "bc", s) for s in range(3)}
        assert {(c.run.t_max, c.learner.buffer_dtype, c.learner.batch_size, c.learner.lr, c.agent.obs_avail_actions)
                for c in sight0 + bc} == {(300_000, "float16", 32, 0.0005, True)}
    elif scale == "paper":
        assert {(c.run.t_max, c.learner.buffer_dtype) for c in sight0} == {(2_000_000, "float32")}


def test_matrix_game_runs_use_the_published_setting(dry_run):
    """QMIX explores uniformly (ε fixed at 1), 8 envs and batches of 32; ME-QMIX has no ε-greedy
    (its softmax policies explore), with the released code's 4 envs and batches of 128 episodes;
    FOP mixes its policies with ε annealed from 1 to 0.05 (its code's selector), on one environment."""
    scale, output = dry_run
    matrix = [c for c in planned_runs(output).values() if c.env.name == "matrix:me_igm"]
    by_method = {method: [c for c in matrix if method_name(c) == method] for method in ("qmix", "me_qmix", "fop")}
    assert sum(map(len, by_method.values())) == len(matrix)
    for method, runs in by_method.items():
        smoke_seeds = 3 if method == "qmix" else 2  # QMIX's third seed: a pack and a lone run (tests/test_slurm.py)
        assert sorted(c.run.seed for c in runs) == list(range(smoke_seeds if scale == "smoke" else 5)), method
    smoke_budgets = {"qmix": 2000, "me_qmix": 400, "fop": 300}
    for method, runs in by_method.items():
        for c in runs:
            assert c.run.t_max == (smoke_budgets[method] if scale == "smoke" else 50_000)
            if method == "fop":
                assert (c.env.num_envs, c.learner.batch_size, c.learner.td_lambda) == (1, 32, 0.4)
                assert (c.exploration.epsilon_start, c.exploration.epsilon_finish) == (1.0, 0.05)
                continue
            explore = 1.0 if method == "qmix" else 0.0
            assert c.algo == "qmix" and c.exploration.epsilon_finish == explore and c.learner.td_lambda == 0.0
            assert (c.env.num_envs, c.learner.batch_size) == ((8, 32) if method == "qmix" else (4, 128))


def test_unknown_scale_stops_the_workflow_with_the_choices(workdir):
    result = snakemake(workdir, "-n", "--config", "scale=huge")
    assert result.returncode != 0
    assert "scale: unknown scale 'huge'; valid choices are: paper, smoke, validation" in result.stdout, result.stdout


@pytest.mark.parametrize(
    "schema, data, words",
    [
        ("config", {"scale": "smoke", "device": "tpu"}, ["f: device: unknown value 'tpu'", "auto, cpu, cuda"]),
        ("config", {"backend": "starcraft"}, ["f: backend: unknown value 'starcraft'", "sc2, smax"]),
        ("config", {"seeds": 0}, ["f: seeds: must be >= 1, got 0"]),
        ("config", {"colour": "blue"}, ["f: colour: unknown key 'colour'", "backend, device, jax_cache, pack_size, scale, seeds"]),
        ("config", {"pack_size": 0}, ["f: pack_size: must be >= 1, got 0"]),
        ("paper", {"title": "t", "experiments": {"e": {"description": "d", "algos": ["qmix"], "envs": ["3m"], "seeds": 1}}},
         ["f: experiments.e.envs[0]: '3m' does not match", "(backend:scenario, e.g. smax:3m)"]),
        ("paper", {"title": "t", "experiments": {"e": {"description": "d", "algos": ["qmix"], "envs": ["smax:3m"]}}},
         ["f: experiments.e: missing key seeds"]),
        ("scale", {**yaml.safe_load((REPO / "config/scales/smoke.yaml").read_text()), "thread": 2},
         ["f: thread: unknown key 'thread' (did you mean 'threads'?)"]),
        ("scale", {k: v for k, v in yaml.safe_load((REPO / "config/scales/paper.yaml").read_text()).items()
                   if k != "pack_size"}, ["f: missing key pack_size"]),
    ],
)  # fmt: skip
def test_schemas_reject_bad_files_with_a_clear_message(schema, data, words):
    with pytest.raises(ConfigError) as err:
        check_schema(data, REPO / f"workflow/schemas/{schema}.schema.yaml", "f")
    assert all(word in str(err.value) for word in words), err.value


@pytest.mark.parametrize(
    "path, schema",
    [("config/scales/smoke.yaml", "scale"), ("config/scales/paper.yaml", "scale"),
     ("config/scales/validation.yaml", "scale"), ("config/me_igm.yaml", "paper"),
     ("config/vd.yaml", "paper"), ("config/igm_da.yaml", "paper"), ("config/mifq.yaml", "paper"),
     ("config/published/me_igm.yaml", "published"), ("config/published/igm_da.yaml", "published"),
     ("config/published/mifq.yaml", "published"), ("config/demos.yaml", "demos"), ("config/cesma.yaml", "paper"),
     ("config/published/cesma.yaml", "published")],
)  # fmt: skip
def test_shipped_config_files_pass_their_schemas(path, schema):
    load_checked(REPO / path, REPO / f"workflow/schemas/{schema}.schema.yaml")


def test_config_yaml_passes_its_schema_and_gets_the_defaults():
    config = check_schema(yaml.safe_load((REPO / "config/config.yaml").read_text()),
                          REPO / "workflow/schemas/config.schema.yaml", "config/config.yaml")  # fmt: skip
    assert config == {"scale": "paper", "seeds": None, "pack_size": None, "device": "auto", "backend": "smax",
                      "tracking_uri": "sqlite:///results/mlflow.db", "jax_cache": "results/cache/jax"}  # fmt: skip
    assert check_schema({}, REPO / "workflow/schemas/config.schema.yaml", "--config") == config


def test_seeds_and_device_override_every_experiment(workdir):
    result = snakemake(workdir, "-n", "-p", "--config", "scale=paper", "seeds=2", "device=cpu")
    assert result.returncode == 0, result.stdout
    counts = job_counts(result.stdout)
    # MIFQ's experts keep their one seed: one-run jobs
    assert counts["train_pack_seeds0to1"] == expected_train_jobs("paper", seeds=2) - MIFQ_TASKS["paper"]
    assert counts["train"] == MIFQ_TASKS["paper"]
    assert all("run.device=cpu" in t for t in train_commands(result.stdout))


def test_slurm_profile_submits_training_with_a_gpu(workdir):
    """`--profile slurm` parses, takes the partition from the environment, and asks for one GPU
    per paper-scale training job, a pack of runs or one run (tests/test_slurm.py has the rest of
    the profile's tests)."""
    result = snakemake(
        workdir, "-n", "--profile", "slurm", "--config", "scale=paper", MARLREPRO_SLURM_PARTITION="gpuq"
    )
    assert result.returncode == 0, result.stdout
    train = [line for line in result.stdout.splitlines() if "gpu=" in line]
    assert len(train) == expected_train_jobs("paper") + MIFQ_TASKS["paper"]  # and MIFQ's demo collections
    assert all("slurm_partition=gpuq" in line and "gpu=1" in line for line in train)
    profile = yaml.safe_load((REPO / "slurm" / "profile.yaml").read_text())
    assert profile["executor"] == "slurm" and not (REPO / "profiles" / "default").exists()


# --------------------------------------------------------------------------------------- packs
RUN_FILES = ("final.json", "metrics.parquet", "config.yaml")


@pytest.fixture(scope="module")
def validation_plans(workdir) -> dict[int, str]:
    """pack_size -> output of ``snakemake -n -p`` of igm_da_validation (sight0 and bc: 9 cells of 3
    seeds) at the validation scale."""
    plans = {}
    for pack_size in (1, 2, 3):
        result = snakemake(workdir, "-n", "-p", "--config", "scale=validation", f"pack_size={pack_size}", "--",
                           "igm_da_validation")  # fmt: skip
        assert result.returncode == 0, result.stdout
        plans[pack_size] = result.stdout
    return plans


@pytest.mark.parametrize("pack_size", [1, 2, 3])
def test_each_cell_trains_in_ceil_seeds_over_pack_size_jobs(validation_plans, pack_size):
    """3 seeds a cell: three one-run jobs at pack_size 1, packs (0, 1) and (2,) at 2, one pack at 3.
    Every run's files are outputs of exactly one job, and each member of a pack gets exactly the
    config of its own one-run command."""
    jobs = train_jobs(validation_plans[pack_size])
    packs: dict[tuple[str, ...], list[tuple[int, ...]]] = {}
    for rule, outputs, _ in jobs:
        cell = {tuple(out.split("/")[2:6]) for out in outputs}
        seeds = tuple(sorted({int(re.search(r"/seed(\d+)/", out)[1]) for out in outputs}))
        assert len(cell) == 1 and rule == ("train" if len(seeds) == 1 else f"train_pack_seeds{seeds[0]}to{seeds[-1]}")
        packs.setdefault(cell.pop(), []).append(seeds)
    expected = {1: [(0,), (1,), (2,)], 2: [(0, 1), (2,)], 3: [(0, 1, 2)]}[pack_size]
    assert len(packs) == 9 and all(sorted(seeds) == expected for seeds in packs.values())
    assert len(jobs) == 9 * math.ceil(3 / pack_size)

    produced = [out for _, outputs, _ in jobs for out in outputs]
    runs = planned_runs(validation_plans[pack_size])
    assert len(runs) == 27 and sorted(produced) == sorted(f"{run}/{name}" for run in runs for name in RUN_FILES)
    assert runs == planned_runs(validation_plans[1])


def test_pack_size_one_plans_each_run_as_its_own_command(validation_plans):
    """At pack_size 1 every job is rule `train` with the one-run command line of before packs:
    `marlrepro train --config config/algos/<algo>.yaml <Run.set_arguments()> --out <run dir>`."""
    scale = scale_from_dict("validation", load_checked(REPO / "config/scales/validation.yaml",
                                                       REPO / "workflow/schemas/scale.schema.yaml"))  # fmt: skip
    workflow = {**WORKFLOW, "scale": "validation"}
    plan = plan_paper("igm_da", load_checked(REPO / "config/igm_da.yaml", REPO / "workflow/schemas/paper.schema.yaml"),
                      scale, workflow, ["smoke", "paper", "validation"], ALGOS)  # fmt: skip
    runs = plan["sight0"].runs() + plan["bc"].runs()
    expected = sorted(f"marlrepro train --config config/algos/{run.algo}.yaml {run.set_arguments()} "
                      f"--out {run.run_dir} > results/logs/train/{run.run_dir.removeprefix('results/runs/')}.log 2>&1"
                      for run in runs)
    output = validation_plans[1]
    printed = sorted(line.removeprefix("Shell command: ") for line in output.splitlines() if "marlrepro train" in line)
    assert printed == expected
    assert {rule for rule, _, _ in train_jobs(output)} == {"train"}


def test_one_run_plans_its_pack_or_runs_alone(workdir):
    """Asking for one run's file plans the pack that trains it (one GPU, the memory of its three
    runs, the runtime of one); with pack_size=1 the run is trained alone."""
    target = "results/runs/igm_da/sight0/smax-8m/qmix/seed1/final.json"
    packed = snakemake(workdir, "-n", "-p", "--config", "scale=validation", "--", target)
    assert packed.returncode == 0, packed.stdout
    [(rule, outputs, tokens)] = train_jobs(packed.stdout)
    assert rule == "train_pack_seeds0to2" and target in outputs and len(outputs) == 9
    assert train_arguments(tokens)[2:] == ("run.seed=0,1,2", "results/runs/igm_da/sight0/smax-8m/qmix/seed{run.seed}")
    resources = re.search(r"^\s+resources: (.*)$", packed.stdout, re.MULTILINE)[1].split(", ")
    assert {"gpu=1", "runtime=120", "mem_mb=48000"} <= set(resources), resources
    alone = snakemake(workdir, "-n", "-p", "--config", "scale=validation", "pack_size=1", "--", target)
    assert alone.returncode == 0, alone.stdout
    [(rule, outputs, tokens)] = train_jobs(alone.stdout)
    assert rule == "train" and outputs == [target, target.replace("final.json", "metrics.parquet"),
                                           target.replace("final.json", "config.yaml")]  # fmt: skip
    assert train_arguments(tokens)[2:] == (None, "results/runs/igm_da/sight0/smax-8m/qmix/seed1")


def test_environment_yml_mirrors_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    missing = sorted(set(project["dependencies"]) - set(pip))
    assert not missing, f"environment.yml lacks {missing}"
    assert "-e .[test]" in pip


# ------------------------------------------------------------------------ experiment planning
SCALE = scale_from_dict(
    "smoke",
    {"description": "tiny", "device": "cpu", "threads": 1, "retries": 0, "pack_size": 2,
     "resources": {"runtime": 5, "mem_mb": 100}, "settings": {"run": {"eval_episodes": 4, "t_max": 99}}},
)  # fmt: skip
SCALE_PAPER = scale_from_dict(
    "paper",
    {"description": "all", "device": "cpu", "threads": 1, "retries": 0, "pack_size": 4,
     "resources": {"runtime": 5, "mem_mb": 100}, "settings": {}},
)  # fmt: skip
WORKFLOW = {"scale": "smoke", "seeds": None, "pack_size": None, "device": "auto", "backend": "smax", "tracking_uri": ""}
ALGOS = {path.stem: read_settings(path) for path in (REPO / "config" / "algos").glob("*.yaml")}


def grid(**experiment) -> dict:
    spec = {"description": "d", "algos": ["qmix"], "envs": ["smax:3m"], "seeds": 5, "settings": {}, "scales": {}}
    return {"title": "t", "experiments": {"exp": {**spec, **experiment}}}


def test_settings_merge_paper_then_scale_then_experiment_at_scale():
    data = grid(
        settings={"run": {"t_max": 1000, "eval_interval": 10}, "learner": {"lr": 0.5}},
        scales={"smoke": {"seeds": 2, "settings": {"run": {"t_max": 7}}, "resources": {"runtime": 9}}},
    )
    exp = plan_paper("p", data, SCALE, WORKFLOW, ["smoke", "paper"], ALGOS)["exp"]
    assert exp.settings == {"run.t_max": 7, "run.eval_interval": 10, "run.eval_episodes": 4, "learner.lr": 0.5}
    assert exp.seeds == (0, 1) and exp.device == "cpu" and (exp.runtime_min, exp.mem_mb) == (9, 100)
    assert [r.run_dir for r in exp.runs()] == ["results/runs/p/exp/smax-3m/qmix/seed0", "results/runs/p/exp/smax-3m/qmix/seed1"]


def test_workflow_config_overrides_seeds_device_and_backend():
    config = {**WORKFLOW, "seeds": 3, "device": "cuda", "backend": "sc2"}
    exp = plan_paper("p", grid(envs=["smax:3m", "matrix:me_igm"]), SCALE, config, ["smoke"], ALGOS)["exp"]
    assert exp.seeds == (0, 1, 2) and exp.device == "cuda" and exp.envs == ("sc2:3m", "matrix:me_igm")
    with pytest.raises(ConfigError, match="smax, sc2"):
        resolve_env("smax:3m", "starcraft")


@pytest.mark.parametrize("settings", [{"run": {"seed": 3}}, {"env": {"name": "smax:8m"}}, {"tracking": {"tags": {"a": "b"}}}])
def test_experiments_cannot_set_the_workflow_keys(settings):
    with pytest.raises(ConfigError, match="decided by the workflow"):
        plan_paper("p", grid(settings=settings), SCALE, WORKFLOW, ["smoke"], ALGOS)


def test_overrides_for_an_unknown_scale_are_rejected():
    with pytest.raises(ConfigError, match=r"scales.smok: unknown scale 'smok' \(did you mean 'smoke'\?\).*paper, smoke"):
        plan_paper("p", grid(scales={"smok": {"seeds": 1}}), SCALE, WORKFLOW, ["paper", "smoke"], ALGOS)


def test_a_sweep_plans_one_experiment_per_value_with_the_value_set_last():
    data = grid(algos=["qmix", "me_qmix"], settings={"max_entropy": {"temperature_lr": 0.5}},
                algo_settings={"me_qmix": {"learner": {"batch_size": 7}}},
                sweep={"key": "max_entropy.temperature_lr", "values": [0.01, 0.3, 1]},
                scales={"smoke": {"sweep_values": [0.3, 1], "settings": {"learner": {"batch_size": 3}}}})
    plan = plan_paper("p", data, SCALE, WORKFLOW, ["smoke"], ALGOS)
    assert list(plan) == ["exp-0.3", "exp-1"]
    for name, value in (("exp-0.3", 0.3), ("exp-1", 1)):
        exp = plan[name]
        assert exp.sweep == Sweep("exp", "max_entropy.temperature_lr", value)
        assert sweep_members(plan, "exp") == [plan["exp-0.3"], plan["exp-1"]]
        runs = {run.algo: run for run in exp.runs() if run.seed == 0}
        assert runs["qmix"].settings["max_entropy.temperature_lr"] == value
        assert runs["qmix"].run_dir == f"results/runs/p/{name}/smax-3m/qmix/seed0"
        # algo_settings sit between the experiment's settings and the scale's: the scale wins
        assert runs["me_qmix"].settings["learner.batch_size"] == 3 and runs["qmix"].settings["learner.batch_size"] == 3
    paper = plan_paper("p", data, SCALE_PAPER, {**WORKFLOW, "scale": "paper"}, ["smoke", "paper"], ALGOS)
    me_qmix = next(run for run in paper["exp-0.01"].runs() if run.algo == "me_qmix")
    assert me_qmix.settings["learner.batch_size"] == 7 and "learner.batch_size" not in paper["exp-0.01"].settings


def test_a_scales_algo_settings_apply_to_that_algo_last():
    """A slow learner's smoke budget (ME-IGM's HASAC): the scale's algo_settings win over every
    other layer, for that algo alone, at that scale alone."""
    data = grid(algos=["qmix", "me_qmix"], algo_settings={"me_qmix": {"learner": {"batch_size": 7}}},
                scales={"smoke": {"settings": {"learner": {"batch_size": 3}},
                                  "algo_settings": {"qmix": {"learner": {"updates_per_rollout": 2}},
                                                    "me_qmix": {"learner": {"batch_size": 5}}}}})
    runs = {run.algo: run for run in plan_paper("p", data, SCALE, WORKFLOW, ["smoke"], ALGOS)["exp"].runs()}
    assert runs["qmix"].settings["learner.updates_per_rollout"] == 2 and runs["qmix"].settings["learner.batch_size"] == 3
    assert runs["me_qmix"].settings["learner.batch_size"] == 5
    assert "learner.updates_per_rollout" not in runs["me_qmix"].settings
    paper = plan_paper("p", data, SCALE_PAPER, {**WORKFLOW, "scale": "paper"}, ["smoke", "paper"], ALGOS)["exp"]
    assert all("learner.updates_per_rollout" not in run.settings for run in paper.runs())
    # another scale's algo_settings are checked too, as its settings are
    bad = grid(scales={"paper": {"algo_settings": {"qmix": {"learner": {"lrr": 0.1}}}}})
    with pytest.raises(ConfigError, match=r"scales\.paper\.algo_settings\.qmix\.learner\.lrr"):
        plan_paper("p", bad, SCALE, WORKFLOW, ["smoke", "paper"], ALGOS)


def test_a_sweep_sets_its_paired_keys_in_step_with_its_values():
    """MIFQ's demo-count scan on MPE: each count sets a batch within it (sweep.paired), after every
    other layer; a scale's subset of the values keeps each value's partner."""
    data = grid(algos=["qmix"], settings={"learner": {"batch_size": 32}},
                sweep={"key": "learner.lr", "values": [0.1, 0.2, 0.3], "paired": {"learner.batch_size": [4, 8, 16]}},
                scales={"smoke": {"sweep_values": [0.3, 0.1]}})
    plan = plan_paper("p", data, SCALE, WORKFLOW, ["smoke"], ALGOS)
    assert list(plan) == ["exp-0.3", "exp-0.1"]
    for name, lr, batch in (("exp-0.3", 0.3, 16), ("exp-0.1", 0.1, 4)):
        assert plan[name].sweep == Sweep("exp", "learner.lr", lr, {"learner.batch_size": batch})
        assert {(r.settings["learner.lr"], r.settings["learner.batch_size"]) for r in plan[name].runs()} == {(lr, batch)}


@pytest.mark.parametrize(("change", "words"), [
    ({"sweep": {"key": "learner.lr", "values": [0.1, 0.2], "paired": {"learner.batch_size": [4]}}},
     r"sweep.paired.learner.batch_size: expected another key than learner.lr, with one value per value of it \(2: 0.1, 0.2\)"),
    ({"sweep": {"key": "learner.lr", "values": [0.1, 0.2], "paired": {"learner.lr": [0.3, 0.4]}}},
     "sweep.paired.learner.lr: expected another key than learner.lr"),
    ({"sweep": {"key": "learner.lr", "values": [0.1, 0.2], "paired": {"learner.batch_sise": [4, 8]}}}, "batch_sise"),
    ({"sweep": {"key": "max_entropy.temperature_lrr", "values": [1, 2]}}, "temperature_lrr"),
    ({"sweep": {"key": "learner.lr", "values": ["fast", 0.1]}}, "learner.lr"),
    ({"sweep": {"key": "run.seed", "values": [1, 2]}}, "decided by the workflow"),
    ({"sweep": {"key": "learner.lr", "values": [0.1, 0.2]}, "scales": {"smoke": {"sweep_values": [0.3]}}},
     "sweep_values\\[0\\]: 0.3 is not one of the sweep's values: 0.1, 0.2"),
    ({"scales": {"smoke": {"sweep_values": [0.3]}}}, "has no sweep"),
    ({"algo_settings": {"vdn": {"learner": {"lr": 0.1}}}}, "algo_settings.vdn: not one of the experiment's algos"),
    ({"algo_settings": {"qmix": {"learner": {"lrr": 0.1}}}}, "algo_settings.qmix.learner.lrr"),
    ({"scales": {"smoke": {"algo_settings": {"vdn": {"learner": {"lr": 0.1}}}}}},
     "scales.smoke.algo_settings.vdn: not one of the experiment's algos"),
    ({"scales": {"smoke": {"algo_settings": {"qmix": {"learner": {"lrr": 0.1}}}}}},
     "scales.smoke.algo_settings.qmix.learner.lrr"),
])
def test_bad_sweeps_and_algo_settings_fail_with_the_field(change, words):
    with pytest.raises(ConfigError, match=words):
        plan_paper("p", grid(**change), SCALE, WORKFLOW, ["smoke"], ALGOS)


@pytest.mark.parametrize(
    "value", ["smax:3m", "true", "", "me_igm/table1/seed0", 0.001, 2_000_000, False, 10.0, [[8, -12], [-12, 0]]]
)
def test_set_values_round_trip_through_the_cli_parser(value):
    assert parse_override(f"key={format_value(value)}")["key"] == value


def test_set_arguments_are_shell_safe():
    run = Run("p", "e", "matrix:me_igm", "qmix", 0, "smoke", "cpu", {"env.options.payoff": [[1, 2], [3, 4]]})
    tokens = shlex.split(run.set_arguments())
    assert tokens[:2] == ["--set", "env.options.payoff=[[1, 2], [3, 4]]"]
    assert "tracking.run_name=p/e/matrix-me_igm/qmix/seed0" in tokens


# ------------------------------------------------------------- aggregation on SYNTHETIC runs
def write_final(run_dir: Path, **fields) -> None:
    """A synthetic final.json with every contract key (values irrelevant unless given)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    final = {"algo": "qmix", "env": "matrix:me_igm", "seed": 0, "t_env": 2000, "updates": 10,
             "test_return_mean": 0.0, "test_won_mean": 0.0, "wall_time_s": 1.0, "env_steps_per_s": 1.0,
             "backend": "matrix", "tags": {}, **fields}  # fmt: skip
    (run_dir / "final.json").write_text(json.dumps(final))


def synthetic_matrix_run(root: Path, seed: int, joint_q: np.ndarray, greedy: list[int]) -> Path:
    run_dir = root / f"seed{seed}"
    write_final(
        run_dir, seed=seed, payoff=PAYOFF, joint_q=joint_q.tolist(), greedy_joint_action=greedy,
        greedy_payoff=PAYOFF[greedy[0]][greedy[1]], optimal_payoff=8.0,
    )  # fmt: skip
    return run_dir


def test_published_me_igm_table_is_the_paper_table():
    table = matrix_game(PUBLISHED_ME_IGM, "table1")
    assert table.source == "ME-IGM paper, Tables 1-4 and Figures 2, 4-6 (published)" and table.cite == "ME-IGM Table 1"
    assert table.actions == ("A", "B", "C")
    np.testing.assert_array_equal(table.payoff, PAYOFF)
    qmix = table.methods["qmix"]
    np.testing.assert_array_equal(qmix.q_tot, [[-8.5] * 3, [-8.5, 0.2, 0.2], [-8.5, 0.2, 0.2]])
    assert qmix.greedy_joint_action == ("B", "B") and qmix.greedy_payoff == 0.0
    assert table.methods["me_qmix"].greedy_joint_action == ("A", "A")
    assert table.methods["fop"].policies["agent2_columns"] == (0.21, 0.39, 0.40)


@pytest.mark.parametrize(
    "text, words",
    [
        ("source: my runs\n", ["source", "published"]),
        ('source: "x (published)"\ntables: {t: {cite: c, actions: [A, B], payoff: [[1, 2]], methods: {}}}\n',
         ["payoff", "2x2"]),
    ],
)  # fmt: skip
def test_published_files_are_checked(tmp_path, text, words):
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        matrix_game(path, "t") if "tables" in text else load_published(path)
    assert all(word in str(err.value) for word in words)


def test_matrix_game_table_beside_the_published_row(tmp_path):
    q0 = np.array([[-8.0, -8.0, -8.0], [-8.0, 0.1, 0.3], [-8.0, 0.2, 0.1]])
    q1 = np.array([[6.0, -10.0, -10.0], [-10.0, 0.0, 0.0], [-10.0, 0.0, 0.0]])
    q2 = np.array([[-9.0, -9.0, -9.0], [-9.0, 0.5, 0.4], [-9.0, 0.3, 0.2]])
    runs = [synthetic_matrix_run(tmp_path, 1, q1, [0, 0]), synthetic_matrix_run(tmp_path, 0, q0, [1, 2]),
            synthetic_matrix_run(tmp_path, 2, q2, [1, 1])]  # fmt: skip
    out = tmp_path / "out"
    paths = [out / "t.csv", out / "t.md", out / "t.html", out / "f.png", out / "f.pdf"]
    table = matrix_game_report(runs, PUBLISHED_ME_IGM, "table1", "qmix", "smoke", "SMOKE: tiny", paths[:3], paths[3:])

    table = table.set_index("quantity")
    assert list(table.index) == [f"Q_tot({a}, {b})" for a in "ABC" for b in "ABC"] + ["greedy payoff"]
    # Q_tot(A, A) over seeds 0, 1, 2: -8, 6, -9 -> median -8, quartiles -8.5 / -1
    assert table.loc["Q_tot(A, A)", ["value_median", "value_q25", "value_q75"]].tolist() == [-8.0, -8.5, -1.0]
    assert table.loc["Q_tot(A, A)", "published_value"] == -8.5
    assert table.loc["Q_tot(A, A)", "difference"] == pytest.approx(0.5)
    assert table.loc["Q_tot(B, C)", "per_seed"] == "0.30, 0.00, 0.40"  # seed order
    greedy = table.loc["greedy payoff"]
    assert greedy["per_seed"] == "(B, C) 0, (A, A) 8, (B, B) 0"
    assert (greedy["value_median"], greedy["value_q75"], greedy["published_value"]) == (0.0, 4.0, 0.0)
    assert (table["n_seeds"] == 3).all() and set(table["scale"]) == {"smoke"} and set(table["backend"]) == {"matrix"}
    csv = pd.read_csv(paths[0])
    assert {"value_median", "published_value", "difference"} <= set(csv.columns) and len(csv) == 10
    md = paths[1].read_text()
    assert "**Scale: smoke** (SMOKE: tiny). Backend: matrix." in md and "> **SMOKE SCALE" in md
    assert "| Q_tot(A, A) | -8.00 [-8.50, -1.00] | 3 | -8.50 | +0.50 | -8.00, 6.00, -9.00 |" in md
    assert "| greedy payoff | 0.00 [0.00, 4.00] | 3 | 0.00 (B, B) | +0.00 |" in md
    assert "published (ME-IGM Table 1)" in paths[2].read_text()
    assert paths[3].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and paths[4].read_bytes()[:5] == b"%PDF-"
    assert not list(out.glob(".*"))  # no temporary files left behind


def test_matrix_game_table_refuses_another_game(tmp_path):
    run = tmp_path / "seed0"
    write_final(run, payoff=[[1.0, 0.0], [0.0, 1.0]], joint_q=[[1.0, 0.0], [0.0, 1.0]],
                greedy_joint_action=[0, 0], greedy_payoff=1.0, optimal_payoff=1.0)  # fmt: skip
    with pytest.raises(RunDataError, match="differs from the published game"):
        matrix_game_report([run], PUBLISHED_ME_IGM, "table1", "qmix", "smoke", "", ("a.csv", "a.md"), ())


def test_missing_run_outputs_name_the_file(tmp_path):
    with pytest.raises(RunDataError, match="final.json: missing"):
        read_final(tmp_path)
    write_final(tmp_path)
    with pytest.raises(RunDataError, match="missing keys.*joint_q"):
        read_final(tmp_path, ["joint_q"])


def curves_frame(values: dict[tuple[str, int], list[tuple[int, float]]]) -> pd.DataFrame:
    """(algo, seed) -> [(t_env, value), ...] as the long frame align_curves takes."""
    return pd.DataFrame(
        [{"algo": a, "seed": s, "t_env": t, "value": v} for (a, s), points in values.items() for t, v in points]
    )


def test_curve_band_is_median_and_quartiles_over_seeds():
    # at t=1000 the four seeds read 0, 1, 2, 3: median 1.5, quartiles 0.75 and 2.25 (linear)
    frame = curves_frame({("qmix", s): [(0, 0.0), (1000, float(s))] for s in range(4)})
    band = curve_band(align_curves(frame, 1000))
    assert band.to_dict("records")[1] == {"algo": "qmix", "t_env": 1000, "median": 1.5, "q25": 0.75, "q75": 2.25, "n_seeds": 4}
    rng = np.random.default_rng(0)
    values = rng.random((5, 6))
    frame = curves_frame({("vdn", s): list(zip(range(0, 6000, 1000), values[s], strict=True)) for s in range(5)})
    band = curve_band(align_curves(frame, 1000))
    np.testing.assert_allclose(band["median"], np.median(values, axis=0))
    np.testing.assert_allclose(band["q25"], np.percentile(values, 25, axis=0))
    np.testing.assert_allclose(band["q75"], np.percentile(values, 75, axis=0))


def test_curves_are_interpolated_onto_the_grid_and_cut_to_the_common_range():
    # seeds evaluate at slightly different steps; value = t / 1000 interpolates exactly
    frame = curves_frame({
        ("iql", 0): [(0, 0.0), (1016, 1.016), (2040, 2.040), (3100, 3.1)],
        ("iql", 1): [(0, 0.0), (1008, 1.008), (2056, 2.056)],
    })  # fmt: skip
    band = curve_band(align_curves(frame, 1000))
    assert list(band["t_env"]) == [0, 1000, 2000]  # 3000: seed 1 never got there
    np.testing.assert_allclose(band["median"], [0.0, 1.0, 2.0])


def test_learning_curve_report_on_synthetic_runs(tmp_path):
    runs = []
    for algo, level in (("iql", 0.1), ("qmix", 0.5)):
        for seed in range(3):
            run_dir = tmp_path / algo / f"seed{seed}"
            final_won = level + 0.1 * seed
            write_final(run_dir, algo=algo, seed=seed, env="smax:3m", backend="smax", t_env=2000 + seed, test_won_mean=final_won)
            (run_dir / "config.yaml").write_text(yaml.safe_dump({"run": {"eval_interval": 500}}))
            steps = [0, 510, 1003, 1550, 2000 + seed]
            metrics = pd.DataFrame({"t_env": steps, "test_won_mean": np.linspace(0.0, final_won, len(steps))})
            metrics.to_parquet(run_dir / "metrics.parquet")
            runs.append(run_dir)
    out = tmp_path / "out"
    table = learning_curve_report(runs, "test_won_mean", "test win rate", "smoke", "SMOKE",
                                  (out / "c.csv", out / "c.md"), (out / "c.png", out / "c.pdf"))  # fmt: skip
    assert list(table["algo"]) == ["iql", "qmix"] and list(table["n_seeds"]) == [3, 3]
    np.testing.assert_allclose(table["test_won_mean_median"], [0.2, 0.6])
    np.testing.assert_allclose(table["test_won_mean_q25"], [0.15, 0.55])
    np.testing.assert_allclose(table["test_won_mean_q75"], [0.25, 0.65])
    assert list(table["t_env_min"]) == [2000, 2000] and set(table["scale"]) == {"smoke"}
    # no paper publishes the foundation experiment: the table says so instead of comparing
    assert table["published_test_won_mean"].isna().all() and table["difference"].isna().all()
    md = (out / "c.md").read_text()
    assert "**Scale: smoke**" in md and "| iql | 2000 | 0.20 [0.15, 0.25] | 3 | none: not a paper's result |  |" in md
    assert all((out / name).stat().st_size > 1000 for name in ("c.png", "c.pdf"))
