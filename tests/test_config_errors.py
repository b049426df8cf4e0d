"""Bad workflow configuration stops Snakemake while it parses, before any job: the error names the
file and key path, what is wrong and the valid choices.

Most cases call the checks directly (fast); the last tests run `snakemake -n` on a copy of the
workflow with one file corrupted, or with bad `--config` values.
"""

from __future__ import annotations

import copy
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml
from test_workflow import REPO, copy_workflow, snakemake

from marlrepro.config import read_settings
from marlrepro.config_schema import check_schema, load_checked
from marlrepro.env_catalog import check_env
from marlrepro.errors import ConfigError, did_you_mean, located
from marlrepro.experiments import plan_paper, scale_from_dict

SCHEMAS = REPO / "workflow" / "schemas"
ALGOS = {path.stem: read_settings(path) for path in (REPO / "config" / "algos").glob("*.yaml")}
SCALES = tuple(sorted(path.stem for path in (REPO / "config" / "scales").glob("*.yaml")))
WORKFLOW = {"scale": "smoke", "seeds": None, "pack_size": None, "device": "auto", "backend": "smax", "tracking_uri": ""}
SMOKE = scale_from_dict("smoke", yaml.safe_load((REPO / "config/scales/smoke.yaml").read_text()))


def error_of(check, *args) -> str:
    with pytest.raises(ConfigError) as err:
        check(*args)
    return str(err.value)


def assert_words(message: str, words: list[str]) -> None:
    missing = [word for word in words if word not in message]
    assert not missing, f"{missing} not in:\n{message}"


# ------------------------------------------------------------------------- --config values
@pytest.mark.parametrize(
    "overrides, words",
    [
        ({"seeds": "abc"}, ["--config: seeds: expected an integer or null, got str 'abc'"]),
        ({"seeds": ["0", "1"]}, ["seeds: expected an integer or null, got list ['0', '1']"]),
        ({"seeds": 2.5}, ["seeds: expected an integer or null, got float 2.5"]),
        ({"seeds": 0}, ["seeds: must be >= 1, got 0"]),
        ({"device": "gpu"}, ["device: unknown value 'gpu'; valid choices are: auto, cpu, cuda"]),
        ({"backend": "smac"}, ["backend: unknown value 'smac' (did you mean 'smax'?); valid choices are: sc2, smax"]),
        ({"tracking_uri": 3}, ["tracking_uri: expected a string or null, got int 3"]),
        ({"scale": 7}, ["scale: expected a string, got int 7"]),
        ({"pack_size": 0}, ["pack_size: must be >= 1, got 0"]),
        ({"pack_size": "4"}, ["pack_size: expected an integer or null, got str '4'"]),
        ({"nonsense": 1}, ["--config: nonsense: unknown key 'nonsense'; valid choices are: backend, device, jax_cache, pack_size, scale"]),
        ({"seed": 3}, ["seed: unknown key 'seed' (did you mean 'seeds'?)"]),
    ],
)  # fmt: skip
def test_bad_config_values(overrides, words):
    assert_words(error_of(check_schema, overrides, SCHEMAS / "config.schema.yaml", "--config"), words)


def test_every_bad_value_is_reported_at_once_one_line_each():
    message = error_of(check_schema, {"seeds": "abc", "device": "gpu", "x": 1}, SCHEMAS / "config.schema.yaml", "c")
    assert message.splitlines() == [
        "c: device: unknown value 'gpu'; valid choices are: auto, cpu, cuda",
        "c: seeds: expected an integer or null, got str 'abc'",
        "c: x: unknown key 'x'; valid choices are: backend, device, jax_cache, pack_size, scale, seeds, tracking_uri",
    ]


# ------------------------------------------------------------------------------ schemas
def paper_grid() -> dict:
    return copy.deepcopy(yaml.safe_load((REPO / "config/igm_da.yaml").read_text()))


def edit(data: dict, path: str, value) -> dict:
    """Set ``data[a][b]...`` for ``path`` 'a.b...' (list indices as numbers); None deletes."""
    *parents, leaf = [int(part) if part.isdigit() else part for part in path.split(".")]
    node = data
    for part in parents:
        node = node[part]
    if value is None:
        del node[leaf]
    else:
        node[leaf] = value
    return data


@pytest.mark.parametrize(
    "path, value, words",
    [
        ("titel", "t", ["f: titel: unknown key 'titel' (did you mean 'title'?)", "experiments, title",
                        "(or a key matching ^x-)"]),
        ("experiments.sight0.seed", 5, ["f: experiments.sight0.seed: unknown key 'seed' (did you mean 'seeds'?)",
                                        "algo_settings, algos, collect_demos, demos_from, description, envs, expert_choice, expert_from, scales, seeds, settings, sweep"]),
        ("experiments.sight0.scales.smoke.seed", 1, ["experiments.sight0.scales.smoke.seed: unknown key 'seed'",
                                                     "algo_settings, algos, collect_demos, envs, resources, seeds, settings, skip, sweep_values"]),
        ("experiments.sight0.scales.smoke.resources", {"runtim": 5},
         ["experiments.sight0.scales.smoke.resources.runtim: unknown key 'runtim' (did you mean 'runtime'?)"]),
        ("experiments.sight0.envs.2", "MMM2", ["f: experiments.sight0.envs[2]: 'MMM2' does not match",
                                               "(backend:scenario, e.g. smax:3m)"]),
        ("experiments.sight0.seeds", "five", ["experiments.sight0.seeds: expected an integer, got str 'five'"]),
        ("experiments.sight0.algos", [], ["experiments.sight0.algos: [] should be non-empty"]),
        ("experiments.sight0.description", None, ["experiments.sight0: missing key description"]),
        ("experiments.Sight-0", {}, ["f: experiments: key 'Sight-0' does not match '^[a-z0-9_]+$'"]),
        ("x-frozenlake.episode", 9, ["x-frozenlake.episode: unknown key 'episode' (did you mean 'episodes'?)"]),
        ("x-frozenlake.scales.smoke.seeds", 0, ["x-frozenlake.scales.smoke.seeds: must be >= 1, got 0"]),
    ],
)  # fmt: skip
def test_bad_paper_grid_keys_and_values(path, value, words):
    message = error_of(check_schema, edit(paper_grid(), path, value), SCHEMAS / "paper.schema.yaml", "f")
    assert_words(message, words)


@pytest.mark.parametrize(
    "file, path, value, words",
    [
        ("scales/smoke.yaml", "threads", "two", ["f: threads: expected an integer, got str 'two'"]),
        ("scales/smoke.yaml", "resources.mem", 1, ["resources.mem: unknown key 'mem'", "mem_mb, runtime"]),
        ("scales/smoke.yaml", "device", "gpu", ["f: device: unknown value 'gpu'; valid choices are: auto, cpu, cuda"]),
        ("published/igm_da.yaml", "source", "our runs", ["f: source: 'our runs' does not match 'published'"]),
        ("published/igm_da.yaml", "table1.methods.qmix.win_rate.0", 101, ["table1.methods.qmix.win_rate[0]: 101"]),
        ("published/igm_da.yaml", "table1.map", [], ["table1.map: unknown key 'map' (did you mean 'maps'?)"]),
        ("published/me_igm.yaml", "tables.table1.methods.qmix.q_tot.0.0", "x",
         ["tables.table1.methods.qmix.q_tot[0][0]: expected a number, got str 'x'"]),
    ],
)  # fmt: skip
def test_bad_scale_and_published_files(file, path, value, words):
    data = edit(yaml.safe_load((REPO / "config" / file).read_text()), path, value)
    schema = "scale" if file.startswith("scales/") else "published"
    assert_words(error_of(check_schema, data, SCHEMAS / f"{schema}.schema.yaml", "f"), words)


def test_unreadable_files_are_named(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("experiments: [1, 2\n")
    assert_words(error_of(load_checked, bad, SCHEMAS / "paper.schema.yaml"), [f"{bad}: not valid YAML"])
    bad.write_text("- a list\n")
    assert_words(error_of(load_checked, bad, SCHEMAS / "paper.schema.yaml"), [f"{bad}: expected a mapping"])
    assert_words(error_of(load_checked, tmp_path / "none.yaml", SCHEMAS / "paper.schema.yaml"), ["no such file"])


# ------------------------------------------------------------------------- algorithm files
@pytest.mark.parametrize(
    "text, words",
    [
        ("algo: qmixx\n", ["a.yaml: algo: unknown value 'qmixx' (did you mean 'qmix'?)",
                           "ddpg, dmix, fop, hasac, iiq, ippo, iql, iqvdn, joint_dqn, magail, mappo, masqil, mifq, qmix, qplex, vdn"]),
        ("mixer: {num_kernels: 4}\n", ["a.yaml: mixer.num_kernels: unknown key 'num_kernels'",
                                       "(did you mean 'num_kernel'?)"]),
        ("learner: {lr: fast}\n", ["a.yaml: learner.lr: expected a number, got str 'fast'"]),
        ("learner: 3\n", ["a.yaml: learner: expected a mapping"]),
        ("lerner: {lr: 1}\n", ["a.yaml: lerner: unknown key 'lerner' (did you mean 'learner'?)", "exploration"]),
    ],
)  # fmt: skip
def test_bad_algorithm_files(tmp_path, text, words):
    (tmp_path / "a.yaml").write_text(text)
    assert_words(error_of(read_settings, tmp_path / "a.yaml"), words)


# ----------------------------------------------------------------------- experiment plans
def experiment(**fields) -> dict:
    spec = {"description": "d", "algos": ["qmix"], "envs": ["smax:3m"], "seeds": 2, "settings": {}, "scales": {}}
    return {"title": "t", "experiments": {"exp": {**spec, **fields}}}


def plan(data: dict, scale=SMOKE) -> None:
    plan_paper("p", data, scale, WORKFLOW, SCALES, ALGOS)


W = "config/p.yaml: experiments.exp"


@pytest.mark.parametrize(
    "fields, words",
    [
        # names: algorithms (config/algos/*.yaml), envs (every backend), scales and their subsets
        ({"algos": ["qmix", "qplexx"]}, [f"{W}.algos[1]: unknown algorithm 'qplexx' (did you mean 'qplex'?)",
                                         "ddpg, ddpg_central, dmix, dmix_da, fop, hasac, iiq, ippo, iql, iqvdn, joint_dqn, maddpg, magail, mappo, mappo_expert, masqil, me_qmix, me_qmix_mlp, me_qplex, mifq, one_at_a_time, qmix, qmix_bc, qmix_da, qmix_entropy, qplex, qplex_da, vdn"]),
        ({"envs": ["smax:3m", "smax:9zz"]}, [f"{W}.envs[1]: unknown smax scenario '9zz'", "3m, 3s5z, 3s_vs_5z"]),
        ({"envs": ["smax:MMM3"]}, ["unknown smax scenario 'MMM3' (did you mean 'MMM2'?)"]),
        ({"envs": ["smacv2:protoss_5_vs_6"]}, ["unknown smacv2 scenario 'protoss_5_vs_6'", "protoss_5_vs_5"]),
        ({"envs": ["smax_stock:2s4z"]}, ["unknown smax_stock scenario '2s4z' (did you mean '2s3z'?)", "27m_vs_30m"]),
        ({"envs": ["sc2:3m_vs_4m"]}, ["unknown sc2 scenario '3m_vs_4m'", "MMM2", "zerg_20_vs_23"]),
        ({"envs": ["matrix:me_igmm"]}, ["unknown matrix scenario 'me_igmm' (did you mean 'me_igm'?)", "monotonic"]),
        ({"envs": ["mpe:simple_spred"]}, ["unknown mpe scenario 'simple_spred' (did you mean 'simple_spread'?)"]),
        ({"envs": ["starcraft:3m"]}, [f"{W}.envs[0]: unknown backend 'starcraft'",
                                      "jaxmpe, matrix, miner, mpe, overcooked, sc2, smacv2, smax, smax_stock"]),
        ({"scales": {"smok": {"seeds": 1}}}, [f"{W}.scales.smok: unknown scale 'smok' (did you mean 'smoke'?)"]),
        ({"scales": {"smoke": {"algos": ["vdn"]}}}, [f"{W}.scales.smoke.algos[0]: 'vdn' is not one of the "
                                                     "experiment's algos; its algos: qmix"]),
        # train settings: keys and types at every level, at every scale (not only the one planned)
        ({"settings": {"learner": {"lrr": 1}}}, [f"{W}.settings.learner.lrr: unknown key 'lrr' (did you mean 'lr'?)",
                                                 "batch_size, buffer_dtype, buffer_on_host, buffer_size"]),
        ({"settings": {"lerner": {"lr": 1}}}, [f"{W}.settings.lerner: unknown key 'lerner' (did you mean 'learner'?)"]),
        ({"settings": {"run": {"t_max": "big"}}}, [f"{W}.settings.run.t_max: expected an integer, got str 'big'"]),
        ({"settings": {"learner": {"optimizer": "sgd"}}}, [f"{W}.settings.learner.optimizer: unknown value 'sgd'",
                                                           "adam, rmsprop"]),
        ({"settings": {"learner": {"double_q": 3}}}, ["learner.double_q: expected true/false, got int 3"]),
        ({"settings": {"agent": 64}}, [f"{W}.settings.agent: expected a mapping"]),
        ({"scales": {"paper": {"settings": {"run": {"t_maxx": 1}}}}},
         [f"{W}.scales.paper.settings.run.t_maxx: unknown key 't_maxx' (did you mean 't_max'?)"]),
        ({"settings": {"run": {"seed": 3}}}, [f"{W}.settings: 'run.seed' is decided by the workflow"]),
        # each planned run, merged: env options and the rules across fields
        ({"settings": {"env": {"options": {"sight_rang": 0}}}},
         [f"{W} at scale smoke (qmix on smax:3m): env.options.sight_rang (smax:3m): unknown option 'sight_rang' "
          "(did you mean 'sight_range'?)", "full_sight_obs, reward"]),
        ({"envs": ["matrix:me_igm"], "settings": {"env": {"options": {"sight_range": 0}}}},
         ["(qmix on matrix:me_igm): env.options.sight_range (matrix:me_igm): unknown option", "payoff"]),
        ({"settings": {"env": {"options": {"sight_range": "far"}}}},
         ["(qmix on smax:3m): env.options.sight_range: expected float for smax:3m, got str 'far'"]),
        ({"algos": ["dmix"], "settings": {"learner": {"td_lambda": 0.6}}},
         [f"{W} at scale smoke (dmix on smax:3m): learner.td_lambda: dmix learns from one-step"]),
        ({"algos": ["qmix_da"], "settings": {"env": {"options": {"full_sight_obs": False}}}},
         ["(qmix_da on smax:3m): imitation.expert_input: 'full_obs' needs env.options.full_sight_obs=true"]),
        ({"envs": ["matrix:me_igm"], "settings": {"run": {"rollout": "fused"}}},
         ["(qmix on matrix:me_igm): run.rollout: 'fused' needs a JAX backend"]),
        ({"scales": {"smoke": {"settings": {"learner": {"buffer_size": 4}}}}},
         ["(qmix on smax:3m): learner.buffer_size (4) must be >= learner.batch_size (128)"]),
        ({"settings": {"run": {"t_max": 0}}}, ["(qmix on smax:3m): run.t_max: must be >= 1, got 0"]),
        ({"algos": ["mappo"], "envs": ["matrix:me_igm"]},
         ["(mappo on matrix:me_igm): ppo.critic_input: 'agent_state' reorders the per-ally blocks",
          "valid choices here: state, obs"]),
        ({"algos": ["mappo"], "settings": {"ppo": {"huber_delta": 0}}},
         ["(mappo on smax:3m): ppo.huber_delta: must be > 0 (or null: a squared error), got 0"]),
    ],
)  # fmt: skip
def test_bad_experiments_name_the_key_and_the_choices(fields, words):
    assert_words(error_of(plan, experiment(**fields)), words)


def test_runs_are_checked_only_at_the_planned_scale():
    """A paper-only algorithm setting that breaks a run is not a smoke-scale error, and the reverse."""
    data = experiment(algos=["qmix", "dmix"], scales={"smoke": {"algos": ["qmix"]}},
                      settings={"learner": {"td_lambda": 0.6}})  # fmt: skip
    plan(data)  # dmix does not run at smoke scale
    paper = scale_from_dict("paper", yaml.safe_load((REPO / "config/scales/paper.yaml").read_text()))
    assert_words(error_of(plan, data, paper), ["at scale paper (dmix on smax:3m): learner.td_lambda"])


def test_shipped_grids_plan_at_every_scale():
    for name in SCALES:
        scale = scale_from_dict(name, load_checked(REPO / f"config/scales/{name}.yaml", SCHEMAS / "scale.schema.yaml"))
        demos = load_checked(REPO / "config/demos.yaml", SCHEMAS / "demos.schema.yaml")
        for paper in ("me_igm", "vd", "igm_da", "mifq"):
            data = load_checked(REPO / f"config/{paper}.yaml", SCHEMAS / "paper.schema.yaml")
            assert plan_paper(paper, data, scale, {**WORKFLOW, "scale": name}, SCALES, ALGOS, demos)


# ----------------------------------------------------------------------------- helpers
def test_env_catalog_checks_name_and_options_like_the_backend():
    assert check_env("smax:3m", {"sight_range": 0})["sight_range"] == 0.0
    assert_words(error_of(check_env, "3m", {}), ["env.name: expected 'backend:scenario' (e.g. smax:3m), got '3m'"])
    assert_words(error_of(check_env, "mpe:simple_spread", {"max_cycles": True}), ["expected int", "got bool True"])


def test_did_you_mean_and_located():
    assert did_you_mean("qmixx", ["qmix", "vdn"]) == " (did you mean 'qmix'?)"
    assert did_you_mean("gpu", ["auto", "cpu", "cuda"]) == ""  # not close enough to suggest
    with pytest.raises(ConfigError, match=r"^f\.yaml: a: b: bad$"), located("f.yaml"), located("a"):
        raise ConfigError("b: bad")


# -------------------------------------------------------------------- snakemake -n, end to end
# case -> (file, text, its replacement, words of the error)
BAD_FILES = {
    "unknown-map": ("config/igm_da.yaml", '"smax:MMM2", "smax:8m"', '"smax:MMM2", "smax:8mm"',
                    ["config/igm_da.yaml: experiments.sight0.envs[3]: unknown smax scenario '8mm' (did you mean '8m'?)",
                     "3m, 3s5z, 3s_vs_5z, 5m_vs_6m, 8m, 8m_vs_9m, MMM2"]),
    "unknown-algo": ("config/vd.yaml", "algos: [iql, vdn, qmix]", "algos: [iql, vdn, qmixx]",
                     ["config/vd.yaml: experiments.smax_curves.algos[2]: unknown algorithm 'qmixx' "
                      "(did you mean 'qmix'?)",
                      "ddpg, ddpg_central, dmix, dmix_da, fop, hasac, iiq, ippo, iql, iqvdn, joint_dqn, maddpg, magail, mappo, mappo_expert, masqil, me_qmix, me_qmix_mlp, me_qplex, mifq, one_at_a_time, qmix, qmix_bc, qmix_da, qmix_entropy, qplex, qplex_da, vdn (config/algos/)"]),
    "mifq-unknown-method": ("config/mifq.yaml", "[bc, iiq, iqvdn, masqil, magail, mifq]", "[bc, iiq, iqvdn, masqil, magail, mifqq]",
                            [("config/mifq.yaml: experiments.table1_smacv2.algos[5]: unknown algorithm 'mifqq' "
                              "(did you mean 'mifq'?)")]),
    "mifq-unknown-task": ("config/mifq.yaml", '["miner:easy_2_vs_2", "miner:medium_2_vs_2", "miner:hard_2_vs_2"]\n    seeds: 4',
                          '["miner:easy_2_vs_2", "miner:medium_2_vs_2", "miner:hardest_2_vs_2"]\n    seeds: 4',
                          ["config/mifq.yaml: experiments.table1_miner.envs[2]: unknown miner scenario 'hardest_2_vs_2'",
                           "easy_2_vs_2, hard_2_vs_2, medium_2_vs_2"]),
    "setting-key": ("config/me_igm.yaml", "        lr: 0.001", "        lrr: 0.001",
                    ["config/me_igm.yaml: experiments.table1_qmix.settings.learner.lrr: unknown key 'lrr' "
                     "(did you mean 'lr'?)"]),
    "env-option": ("config/igm_da.yaml", "options: {sight_range: 0}}", "options: {sight_rang: 0}}",
                   ["config/igm_da.yaml: experiments.sight0 at scale paper (qmix on smax:3s5z): "
                    "env.options.sight_rang (smax:3s5z): unknown option 'sight_rang' (did you mean 'sight_range'?)"]),
    "scale-key": ("config/scales/smoke.yaml", "threads: 1", "thread: 1",
                  ["config/scales/smoke.yaml: thread: unknown key 'thread' (did you mean 'threads'?)",
                   "config/scales/smoke.yaml: missing key threads"]),
    "algo-file-key": ("config/algos/qplex.yaml", "  num_kernel: 4", "  num_kernels: 4",
                      ["config/algos/qplex.yaml: mixer.num_kernels: unknown key 'num_kernels' "
                       "(did you mean 'num_kernel'?)"]),
    "published-key": ("config/published/me_igm.yaml", "        greedy_payoff: 8", "        greedy_payof: 8",
                      ["config/published/me_igm.yaml: tables.table1.methods.me_qmix.greedy_payof: unknown key"]),
    "config-file-type": ("config/config.yaml", "seeds: null", "seeds: abc",
                         ["config/config.yaml or --config: seeds: expected an integer or null, got str 'abc'"]),
}  # fmt: skip
# case -> (--config arguments, words of the error)
BAD_OVERRIDES = {
    "config-values": (["seeds=abc", "device=gpu", "tracking_uri=3", "nonsense=1"],
                      ["seeds: expected an integer or null, got str 'abc'", "device: unknown value 'gpu'",
                       "tracking_uri: expected a string or null, got int 3", "nonsense: unknown key 'nonsense'"]),
    "config-scale": (["scale=smok"], ["config/config.yaml or --config: scale: unknown scale 'smok' "
                                      "(did you mean 'smoke'?); valid choices are: paper, smoke"]),
}  # fmt: skip


@pytest.fixture(scope="module")
def dry_runs(tmp_path_factory) -> dict[str, tuple[Path, subprocess.CompletedProcess]]:
    """case -> (workdir, result) of `snakemake -n` on a copy of the workflow with that case's bad
    file or --config values. The runs go side by side: each mostly waits while Snakemake starts."""
    jobs = {}
    for case, (file, old, new, _) in BAD_FILES.items():
        root = copy_workflow(tmp_path_factory.mktemp(case))
        text = (root / file).read_text()
        assert old in text, (file, old)
        (root / file).write_text(text.replace(old, new, 1))
        jobs[case] = (root, ["-n"])
    for case, (overrides, _) in BAD_OVERRIDES.items():
        jobs[case] = (copy_workflow(tmp_path_factory.mktemp(case)), ["-n", "--config", *overrides])
    with ThreadPoolExecutor(max_workers=5) as pool:
        results = {case: pool.submit(snakemake, root, *args) for case, (root, args) in jobs.items()}
    return {case: (jobs[case][0], result.result()) for case, result in results.items()}


@pytest.mark.parametrize("case", [*BAD_FILES, *BAD_OVERRIDES])
def test_dry_run_stops_before_any_job(dry_runs, case):
    """Snakemake fails while parsing, with a short message naming the key and the choices, and runs
    no job."""
    workdir, result = dry_runs[case]
    words = BAD_FILES[case][-1] if case in BAD_FILES else BAD_OVERRIDES[case][-1]
    assert result.returncode != 0, result.stdout
    assert_words(result.stdout, ["WorkflowError", *words])
    assert "Failed validating" not in result.stdout and "Traceback" not in result.stdout, result.stdout
    assert len(result.stdout) < 1500, result.stdout
    assert not (workdir / "results").exists()
