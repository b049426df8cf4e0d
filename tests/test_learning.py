"""Learning tests on tiny problems with known answers."""

from __future__ import annotations

import pytest

from marlrepro.config import load_config
from marlrepro.train import train

MATRIX = [
    "run.device=cpu", "run.progress=false", "run.eval_episodes=8", "run.eval_interval=1000",
    "learner.td_lambda=0", "learner.batch_size=32", "learner.target_update_interval=50",
    "env.num_envs=8",
]


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["vdn", "qmix"])
def test_monotonic_matrix_game_reaches_the_optimum(algo, tmp_path):
    """On an additive game every monotonic factorisation can represent Q exactly, so the
    decentralised greedy joint action must be the optimum (payoff 5 at (1, 2))."""
    config = load_config(overrides=MATRIX + [
        f"algo={algo}", "env.name=matrix:monotonic", "run.t_max=4000",
        "exploration.epsilon_anneal_steps=2000",
    ])
    final = train(config, tmp_path)
    assert final["greedy_joint_action"] == [1, 2]
    assert final["greedy_payoff"] == final["optimal_payoff"] == 5.0
    assert final["test_won_mean"] == 1.0


@pytest.mark.slow
def test_qmix_misses_the_optimum_of_the_me_igm_game(tmp_path):
    """ME-IGM Table 1: under uniform exploration QMIX's monotone Q_tot cannot express the
    non-monotonic payoff, and its greedy joint action lands in the safe block (payoff 0)."""
    config = load_config(overrides=MATRIX + [
        "algo=qmix", "env.name=matrix:me_igm", "run.t_max=6000", "exploration.epsilon_finish=1.0",
    ])
    final = train(config, tmp_path)
    assert final["greedy_payoff"] == 0.0
    assert final["greedy_joint_action"][0] != 0 and final["greedy_joint_action"][1] != 0
    q = final["joint_q"]
    assert q[0][0] < q[1][1]  # the optimum (A, A) is undervalued
