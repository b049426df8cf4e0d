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
    assert {("train",), ("bench",), ("bench", "run"), ("bench", "train"), ("bench", "env")} <= set(SUBCOMMANDS)


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
    assert row["env_steps"] >= 200 and row["env_steps_per_s"] > 0 and row["updates_per_s"] > 0


@pytest.mark.parametrize("args, words", [
    (["me_igm/nosuch", "--env", "matrix:me_igm", "--algo", "qmix"], ["nosuch", "table1_qmix"]),
    (["me_igm/table1_qmix", "--env", "matrix:me_igm", "--algo", "vdn"], ["vdn", "matrix:me_igm qmix"]),
])
def test_bench_run_names_the_valid_choices(args, words, capsys):
    assert main(["bench", "run", *args, "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert all(word in err for word in words), err
