"""Packs of runs: how the seeds of a cell are split, the `marlrepro train --pack` command line and
its expansion into member runs, and the memory a pack needs. The workflow's packs (the dry runs)
are tested in tests/test_workflow.py; training a pack belongs to marlrepro.train.train_pack."""

from __future__ import annotations

import dataclasses
import math
import shlex
from pathlib import Path

import pytest
import torch

from marlrepro import memory
from marlrepro.buffer import Episodes
from marlrepro.cli import main
from marlrepro.config import load_config
from marlrepro.envs.base import EnvSpec
from marlrepro.errors import ConfigError
from marlrepro.experiments import Experiment, seed_packs
from marlrepro.pack_plan import expand_pack

REPO = Path(__file__).resolve().parents[1]
QMIX = str(REPO / "config" / "algos" / "qmix.yaml")
MATRIX = ["env.name=matrix:me_igm", "run.progress=false"]


# ---------------------------------------------------------------------------------- seed packs
@pytest.mark.parametrize("count", range(13))
@pytest.mark.parametrize("pack_size", range(1, 7))
def test_seed_packs_split_the_seeds_in_ceil_count_over_pack_size_packs(count, pack_size):
    seeds = tuple(range(10, 10 + count))
    packs = seed_packs(seeds, pack_size)
    assert len(packs) == math.ceil(count / pack_size)
    assert sum(packs, ()) == seeds  # consecutive, in order, each seed once
    assert all(len(pack) == pack_size for pack in packs[:-1]) and all(1 <= len(pack) <= pack_size for pack in packs)
    # more seeds later keep the full packs as they were
    full = count // pack_size
    assert seed_packs(tuple(range(10, 10 + count + pack_size)), pack_size)[:full] == packs[:full]


def test_seed_packs_examples():
    assert seed_packs((0, 1, 2, 3, 4), 4) == [(0, 1, 2, 3), (4,)]
    assert seed_packs((0, 1, 2), 2) == [(0, 1), (2,)]
    assert seed_packs((0, 1, 2), 1) == [(0,), (1,), (2,)]


def experiment(seeds: int) -> Experiment:
    return Experiment(paper="me_igm", name="table1_qmix", description="d", algos=("qmix", "vdn"),
                      envs=("matrix:me_igm",), seeds=tuple(range(seeds)), scale="paper", device="cpu",
                      settings={"run.t_max": 500, "learner.batch_size": 4}, runtime_min=5, mem_mb=100)  # fmt: skip


def test_a_pack_command_expands_to_the_members_own_commands():
    """Every member of a pack loads exactly the config of its own one-run command, and writes its
    own run directory."""
    exp = experiment(5)
    packs = exp.packs(4)
    assert [(p.members[0].algo, p.seeds) for p in packs] == [
        ("qmix", (0, 1, 2, 3)), ("qmix", (4,)), ("vdn", (0, 1, 2, 3)), ("vdn", (4,))]  # fmt: skip
    assert [run for pack in packs for run in pack.members] == exp.runs()
    pack = packs[2]
    assert pack.pack_argument() == "run.seed=0,1,2,3"
    assert pack.out_template == "results/runs/me_igm/table1_qmix/matrix-me_igm/vdn/seed{run.seed}"
    algo = str(REPO / "config/algos/vdn.yaml")
    sets = shlex.split(pack.set_arguments())[1::2]
    assert not any(s.startswith("run.seed=") for s in sets)
    members = expand_pack([algo], sets, pack.out_template, pack.pack_argument())
    for member, run in zip(members, pack.members, strict=True):
        assert str(member.run_dir) == run.run_dir
        assert member.config == load_config([algo], shlex.split(run.set_arguments())[1::2])
        assert member.config.tracking.run_name == f"me_igm/table1_qmix/matrix-me_igm/vdn/seed{run.seed}"


# ------------------------------------------------------------------------------ --pack expansion
def test_expand_pack_fills_the_placeholder_in_out_and_set_values(tmp_path):
    out = str(tmp_path / "lr{learner.lr}")
    members = expand_pack([QMIX], [*MATRIX, "tracking.run_name=sweep/lr{learner.lr}"], out, "learner.lr=1e-3, 5e-4")
    assert [m.config.learner.lr for m in members] == [1e-3, 5e-4]
    assert [m.run_dir for m in members] == [tmp_path / "lr1e-3", tmp_path / "lr5e-4"]
    assert [m.config.tracking.run_name for m in members] == ["sweep/lr1e-3", "sweep/lr5e-4"]
    # one value needs no placeholder: the pack is one run in --out
    [solo] = expand_pack([QMIX], MATRIX, str(tmp_path / "one"), "run.seed=7")
    assert solo.config.run.seed == 7 and solo.run_dir == tmp_path / "one"


@pytest.mark.parametrize(
    "overrides, out, pack, words",
    [
        (MATRIX, "r/s{run.sed}", "run.sed=0,1",
         ["--pack run.sed: unknown key 'sed' (did you mean 'seed'?); valid choices are:", "seed"]),
        (MATRIX, "r/s{run.seed}", "run.seed=0,a", ["--pack run.seed: expected an integer, got str 'a'"]),
        (MATRIX, "r/s{run.seed}", "run.device=cpu,tpu", ["--pack run.device: unknown value 'tpu'", "auto, cpu, cuda"]),
        (MATRIX, "r/s", "run.seed=0,1",
         ["--out 'r/s': must contain the placeholder {run.seed} when --pack gives 2 values"]),
        (MATRIX, "r/s{run.sed}", "run.seed=0,1", ["--out 'r/s{run.sed}': must contain the placeholder {run.seed}"]),
        (MATRIX, "r/{run.seed}/{run.sed}", "run.seed=0,1",
         ["unknown placeholder {run.sed}; the only placeholder is {run.seed}, the key of --pack"]),
        (MATRIX, "r/s{run.seed}", "run.seed", ["--pack 'run.seed': expected KEY=V1,V2,..."]),
        (MATRIX, "r/s{run.seed}", "run.seed=0,,1", ["--pack 'run.seed=0,,1': empty value at position 2"]),
        (MATRIX, "r/s{run.seed}", "run.seed=0,1,0", ["--pack run.seed: value '0' is given twice"]),
        (MATRIX, "r/{tracking.run_name}", "tracking.run_name=a/b,a/b/",
         ["the runs tracking.run_name=a/b and tracking.run_name=a/b/ would both write to r/a/b"]),
        ([*MATRIX, "learner.lrr=1"], "r/s{run.seed}", "run.seed=0,1",
         ["--pack run.seed=0: learner.lrr: unknown key 'lrr' (did you mean 'lr'?)"]),
        (MATRIX, "r/s{env.options.payoff}", "env.options.payoff=1,2",
         ["--pack env.options.payoff=1: env.options.payoff: expected list for matrix:me_igm, got int 1"]),
    ],
)  # fmt: skip
def test_expand_pack_rejects_bad_packs_with_a_clear_message(overrides, out, pack, words):
    with pytest.raises(ConfigError) as err:
        expand_pack([QMIX], overrides, out, pack)
    assert all(word in str(err.value) for word in words), err.value


# ----------------------------------------------------------------------------------- the CLI
@pytest.fixture
def captured_packs(monkeypatch) -> list:
    """Replace marlrepro.train.train_pack by a stand-in that records the members it is given."""
    calls: list = []

    def fake_train_pack(members):
        calls.append(members)
        return [{"t_env": 100, "test_return_mean": 1.0, "test_won_mean": 0.5} for _ in members]

    monkeypatch.setattr("marlrepro.train.train_pack", fake_train_pack)
    return calls


def test_train_with_pack_hands_the_members_to_train_pack(captured_packs, tmp_path):
    out = str(tmp_path / "seed{run.seed}")
    args = ["train", "--config", QMIX, "--set", "env.name=matrix:me_igm",
            "--set", "tracking.run_name=t/seed{run.seed}", "--pack", "run.seed=0,1,2", "--out", out]  # fmt: skip
    assert main(args) == 0
    [members] = captured_packs
    assert [(m.config.run.seed, m.run_dir, m.config.tracking.run_name) for m in members] == [
        (seed, tmp_path / f"seed{seed}", f"t/seed{seed}") for seed in range(3)]  # fmt: skip
    assert {m.config.env.name for m in members} == {"matrix:me_igm"}
    # nothing but each run's own log is written before training
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()) == [
        f"seed{seed}/train.log" for seed in range(3)]


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--pack", "run.seed=0,1", "--out", "r/s"], ["must contain the placeholder {run.seed}"]),
        (["--pack", "run.seed=0,1", "--pack", "learner.lr=0.1,0.2", "--out", "r/{run.seed}"],
         ["--pack: given 2 times (run.seed=0,1, learner.lr=0.1,0.2); a pack varies one key"]),
    ],
)  # fmt: skip
def test_train_rejects_a_bad_pack_before_training(captured_packs, capsys, extra, words):
    assert main(["train", "--config", QMIX, "--set", "env.name=matrix:me_igm", *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("marlrepro: error: ") and all(word in err for word in words), err
    assert captured_packs == []


# ------------------------------------------------------------------------------------- memory
SPECS = [
    EnvSpec("smax:MMM2", n_agents=10, obs_dim=176, state_dim=322, n_actions=17, episode_limit=180, full_obs_dim=176),
    EnvSpec("smax:8m", n_agents=8, obs_dim=80, state_dim=168, n_actions=13, episode_limit=120),
    EnvSpec("matrix:me_igm", n_agents=2, obs_dim=1, state_dim=1, n_actions=3, episode_limit=1),
    EnvSpec("odd", n_agents=3, obs_dim=7, state_dim=5, n_actions=9, episode_limit=13, full_obs_dim=11),
]


def train_config(*overrides: str):
    return load_config([QMIX], [*MATRIX, *overrides])


@pytest.mark.parametrize("spec", SPECS, ids=lambda spec: spec.name)
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_episode_bytes_equal_the_buffers_allocation(spec, dtype):
    config = train_config(f"learner.buffer_dtype={dtype}")
    storage = Episodes.empty(3, spec, torch.device("cpu"), getattr(torch, dtype))
    allocated = sum(t.element_size() * t.nelement() for t in storage.tensors().values())
    assert memory.episode_bytes(spec, config.learner) * 3 == allocated
    assert memory.buffer_bytes(spec, config) == memory.episode_bytes(spec, config.learner) * 5000


def test_mmm2_with_full_sight_observations_takes_14_gb_in_float32_and_7_in_float16():
    """The numbers the scale files and memory.py's docstring quote."""
    float32, float16 = (memory.buffer_bytes(SPECS[0], train_config(f"learner.buffer_dtype={d}")) / 1e9
                        for d in ("float32", "float16"))  # fmt: skip
    assert (round(float32, 1), round(float16, 1)) == (14.1, 7.2)


def test_pack_bytes_add_every_runs_buffer_and_overhead():
    small, large = train_config("learner.buffer_size=1000"), train_config()
    spec = SPECS[0]
    expected = sum(memory.buffer_bytes(spec, c) + memory.run_overhead_bytes(spec, c) for c in (small, large))
    assert memory.pack_bytes(spec, [small, large]) == expected
    assert memory.pack_bytes(spec, [large] * 4) == 4 * memory.pack_bytes(spec, [large])
    assert memory.RUN_FIXED_BYTES < memory.run_overhead_bytes(spec, large) < memory.buffer_bytes(spec, large) / 4


def test_length_buckets_add_the_static_batches_of_the_shorter_graphs():
    """K bucket lengths keep one CUDA graph each, with a static batch of its length: the
    estimate grows by (K - 1) / 2 full float32 batches."""
    spec, one, four = SPECS[0], train_config(), train_config("run.length_buckets=4")
    batch = one.learner.batch_size * memory.episode_bytes(spec, dataclasses.replace(one.learner, buffer_dtype="float32"))
    extra = memory.run_overhead_bytes(spec, four) - memory.run_overhead_bytes(spec, one)
    assert extra == pytest.approx(1.5 * batch, abs=1)


def test_a_pack_that_fits_passes():
    configs = [train_config()] * 4
    needed = memory.pack_bytes(SPECS[0], configs)
    memory.check_pack_fits(SPECS[0], configs, "cuda", free=math.ceil(needed / memory.USABLE_FRACTION) + 1)
    memory.check_pack_fits(SPECS[2], configs, "cpu")  # the matrix game's buffers fit any host


def test_a_pack_too_large_for_the_gpu_fails_naming_the_sizes():
    configs = [train_config()] * 4  # MMM2, 5000 episodes in float32: 14.1 GB each
    with pytest.raises(ConfigError) as err:
        memory.check_pack_fits(SPECS[0], configs, "cuda", free=40 * 10**9)
    message = str(err.value)
    for words in ("smax:MMM2: a pack of 4 runs needs", "on cuda, which has 40.0 GB free (36.0 GB usable",
                  "replay buffers of 14.1 GB per run (56.6 GB in all)", "at most 2 of these runs fit",
                  "--config pack_size=2", "learner.buffer_size (now 5000 episodes)", "learner.buffer_dtype=float16",
                  "learner.buffer_on_host=true"):  # fmt: skip
        assert words in message, message
    total = memory.pack_bytes(SPECS[0], configs) / 1e9
    assert f"needs {total:.1f} GB" in message


def test_a_run_too_large_for_the_host_fails_without_gpu_advice():
    configs = [train_config("learner.buffer_dtype=float16"), train_config("learner.buffer_dtype=float16",
                                                                            "learner.buffer_size=2000")]
    with pytest.raises(ConfigError) as err:
        memory.check_pack_fits(SPECS[0], configs, "cpu", free=10**9)
    message = str(err.value)
    assert "a pack of 2 runs needs" in message and "on cpu, which has 1.0 GB host memory available" in message
    assert "replay buffers of 2.9 GB to 7.2 GB per run" in message and "Not even one run fits" in message
    assert "learner.buffer_size (now 2000, 5000 episodes)" in message
    assert "pack_size" not in message and "float16" not in message and "buffer_on_host" not in message
