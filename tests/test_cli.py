"""The ``marlrepro`` command line: every subcommand has --help, and ``bench run`` measures a
planned run."""

from __future__ import annotations

import argparse
import json

import pytest

from marlrepro.cli import build_parser, main


def _subcommands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.append((*prefix, name))
                found += _subcommands(sub, (*prefix, name))
    return found


SUBCOMMANDS = _subcommands(build_parser())


def test_the_cli_has_its_subcommands():
    assert {("train",), ("bench",), ("bench", "run"), ("bench", "train"), ("bench", "env"),
            ("export-policy",)} <= set(SUBCOMMANDS)


@pytest.mark.parametrize("words", SUBCOMMANDS, ids=" ".join)
def test_every_subcommand_has_help(words, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*words, "--help"])
    assert exit_info.value.code == 0
    assert f"usage: marlrepro {' '.join(words)}" in capsys.readouterr().out


def test_bench_run_measures_a_planned_run_at_its_paper_settings(tmp_path):
    out = tmp_path / "bench.json"
    code = main(["bench", "run", "me_igm/table1_qmix", "--env", "matrix:me_igm", "--algo", "qmix",
                 "--device", "cpu", "--t-max", "600", "--set", "run.eval_interval=200",
                 "--set", "run.eval_episodes=8", "--set", "run.progress=false", "--out", str(out)])
    assert code == 0
    [row] = json.loads(out.read_text())
    assert row["env"] == "matrix:me_igm" and row["algo"] == "qmix" and row["device"] == "cpu"
    assert row["steady_env_steps"] >= 200 and row["env_steps_per_s"] > 0 and row["updates_per_s"] > 0


@pytest.mark.parametrize("args, words", [
    (["me_igm/nosuch", "--env", "matrix:me_igm", "--algo", "qmix"], ["nosuch", "table1_qmix"]),
    (["me_igm/table1_qmix", "--env", "matrix:me_igm", "--algo", "vdn"], ["vdn", "matrix:me_igm qmix"]),
])
def test_bench_run_names_the_valid_choices(args, words, capsys):
    assert main(["bench", "run", *args, "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert all(word in err for word in words), err


def test_bench_run_times_a_pack_of_seeds_as_one_row_per_pack_size(tmp_path):
    out = tmp_path / "bench.json"
    code = main(["bench", "run", "me_igm/table1_qmix", "--env", "matrix:me_igm", "--algo", "qmix",
                 "--device", "cpu", "--t-max", "600", "--set", "run.eval_interval=200", "--set", "run.eval_episodes=8",
                 "--set", "run.progress=false", "--pack-size", "1", "2", "--out", str(out)])
    assert code == 0
    alone, pack = json.loads(out.read_text())
    assert (alone["pack_size"], pack["pack_size"]) == (1, 2)
    assert pack["steady_env_steps"] == 2 * alone["steady_env_steps"]  # the same seed-0 run, and seed 1 beside it
    assert pack["env_steps_per_s_per_run"] == pytest.approx(pack["env_steps_per_s"] / 2)


def test_bench_train_leaves_the_start_up_out_of_its_steady_rate(tmp_path):
    """The steady rate spans the second to the last of eight evaluations (as the anchor's leaves
    its compilation out); the end-to-end rate counts every step from the start."""
    out = tmp_path / "bench.json"
    code = main(["bench", "train", "--set", "env.name=matrix:me_igm", "--set", "run.device=cpu",
                 "--set", "run.t_max=800", "--set", "env.num_envs=8", "--set", "run.progress=false",
                 "--pack-size", "2", "--out", str(out)])
    assert code == 0
    [row] = json.loads(out.read_text())
    assert row["env_steps"] == 2 * 800 and 0 < row["steady_env_steps"] < row["env_steps"]
    assert row["steady_env_steps"] == pytest.approx(row["env_steps_per_s"] * row["steady_seconds"])
    assert row["env_steps_per_s_with_startup"] == pytest.approx(row["env_steps"] / row["seconds"])


def test_bench_anchor_without_a_jaxmarl_checkout_says_what_to_give(tmp_path, capsys):
    assert main(["bench", "anchor", "--jaxmarl", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "baselines/QLearning/qmix_rnn.py" in err and "FLAIROx/JaxMARL checkout" in err


def test_bench_anchor_settings_are_the_scripts_own_with_the_overrides(tmp_path):
    from marlrepro.bench_anchor import ALG_CONFIG, PYMARL_SIZED, anchor_config
    from marlrepro.errors import ConfigError

    (tmp_path / ALG_CONFIG).parent.mkdir(parents=True)
    (tmp_path / ALG_CONFIG).write_text('"NUM_ENVS": 16\n"HIDDEN_SIZE": 512\n"LR": 0.00005\n"ENV_KWARGS": {}\n')
    config = anchor_config(tmp_path, "3s5z", 1000, [*PYMARL_SIZED, "LR=0.001"])
    assert (config["NUM_ENVS"], config["HIDDEN_SIZE"], config["NUM_EPOCHS"], config["LR"]) == (8, 64, 1, 0.001)
    assert (config["MAP_NAME"], config["TOTAL_TIMESTEPS"], config["TEST_DURING_TRAINING"]) == ("3s5z", 1000, False)
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        anchor_config(tmp_path, "3s5z", 1000, ["LR"])
    with pytest.raises(ConfigError, match="no baselines/QLearning/config/alg/ql_rnn_smax.yaml there"):
        anchor_config(tmp_path / "elsewhere", "3s5z", 1000, [])


def test_bench_anchor_names_a_package_its_script_needs(tmp_path, capsys):
    from marlrepro.bench_anchor import SCRIPT

    (tmp_path / SCRIPT).parent.mkdir(parents=True)
    (tmp_path / SCRIPT).write_text("import no_such_package_for_marlrepro\n")
    assert main(["bench", "anchor", "--jaxmarl", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "'no_such_package_for_marlrepro', which is not installed" in err and "pip install" in err
