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
@pytest.mark.parametrize("algo", ["vdn", "qmix", "qplex", "dmix"])
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


@pytest.mark.slow
def test_qplex_reaches_the_optimum_of_the_me_igm_game(tmp_path):
    """QPLEX's duplex-dueling mixer represents any IGM-consistent Q_tot, so where QMIX fails
    (above) QPLEX's decentralised greedy joint action is the optimum (A, A) with payoff 8."""
    config = load_config(overrides=MATRIX + [
        "algo=qplex", "env.name=matrix:me_igm", "run.t_max=20000", "exploration.epsilon_finish=1.0",
    ])
    final = train(config, tmp_path)
    assert final["greedy_joint_action"] == [0, 0] and final["greedy_payoff"] == 8.0, final["joint_q"]
    assert abs(final["joint_q"][0][0] - 8.0) < 1.0  # and it values the optimum correctly


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["iql", "vdn"])
def test_mpe_speaker_listener_beats_a_random_policy(algo, tmp_path):
    """With the fully shared team reward, a few hundred episodes of IQL or VDN must already
    guide the listener better than uniformly random actions do."""
    from marlrepro.train import Trainer

    config = load_config(overrides=[
        f"algo={algo}", "env.name=mpe:simple_speaker_listener", "env.options.shared_reward=true",
        "env.num_envs=8", "run.device=cpu", "run.progress=false", "run.t_max=30000",
        "run.eval_interval=5000", "run.eval_episodes=64", "learner.batch_size=32",
        "learner.updates_per_rollout=4", "learner.target_update_interval=200", "learner.lr=5e-4",
        "exploration.epsilon_anneal_steps=10000",
    ])
    trainer = Trainer(config, tmp_path)
    random_returns = [float(trainer.runner.run(epsilon=1.0)[1].returns.mean()) for _ in range(16)]
    random_mean = sum(random_returns) / len(random_returns)
    trainer.run()
    late = [row["test_return_mean"] for row in trainer.progress.rows[-2:]]
    assert min(late) > random_mean + 3.0, (late, random_mean)
