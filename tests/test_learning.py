"""Learning tests on tiny problems with known answers."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from training_checks import run_and_check_training

from marlrepro.config import load_config
from marlrepro.envs import make
from marlrepro.matrix_analysis import joint_q_table
from marlrepro.pack_plan import PackMember
from marlrepro.report.published import matrix_game
from marlrepro.train import Trainer, train

ROOT = Path(__file__).resolve().parents[1]

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


ME_IGM_TABLE1 = matrix_game(ROOT / "config/published/me_igm.yaml", "table1")
# How far our Q_tot may lie from the published QMIX Q_tot in any cell. The published pattern: about
# -8.5 wherever an agent plays A (the optimum (A, A) included), about 0.2 in the (B, C) block. An
# untrained QMIX's Q_tot is nearly flat (all cells within about 0.5 of each other), so it cannot
# match: its (A, A) would have to lie about 8.7 below its (B, B).
QMIX_Q_TOT_TOLERANCE = 1.5


def matches_published_qmix(joint_q: list[list[float]]) -> bool:
    """Every cell of ``joint_q`` lies within :data:`QMIX_Q_TOT_TOLERANCE` of ME-IGM Table 1's QMIX."""
    published = ME_IGM_TABLE1.methods["qmix"].q_tot
    return bool(np.all(np.abs(np.asarray(joint_q) - published) < QMIX_Q_TOT_TOLERANCE))


@pytest.mark.slow
def test_qmix_learns_the_published_q_tot_of_the_me_igm_game(tmp_path):
    """ME-IGM Table 1: under uniform exploration QMIX's monotone Q_tot cannot express the
    non-monotonic payoff. It learns Q_tot(A, ·) = Q_tot(·, A) = -8.5 (the optimum (A, A) included:
    well below Q_tot(B, B)), a near-zero (B, C) block, and its greedy joint action lands in that
    block (payoff 0). The same learner before training matches none of this. Four seeds, trained
    as one pack: every one of them must learn the pattern (at 6000 steps one of four had not yet
    converged to it, 12000 steps bring all four within the tolerance)."""
    members = [PackMember(load_config(overrides=MATRIX + [
        "algo=qmix", "env.name=matrix:me_igm", "run.t_max=12000", "exploration.epsilon_finish=1.0",
        f"run.seed={seed}",
    ]), tmp_path / f"seed{seed}") for seed in range(4)]
    trainer = Trainer(members)
    first = trainer.envs[0].reset()
    for r in range(len(members)):
        untrained = joint_q_table(trainer.learners.module_for(r), first.obs[0], first.state[0],
                                  trainer.envs[0].payoff, 0)["joint_q"]
        assert not matches_published_qmix(untrained), untrained
    for final in run_and_check_training(trainer):
        q = np.asarray(final["joint_q"])
        assert matches_published_qmix(q), (final["seed"], q.round(2).tolist())
        assert q[0, 0] < q[1, 1] - 5.0 and abs(q[1, 1]) < 1.0  # the optimum (A, A) is undervalued
        assert final["greedy_payoff"] == 0.0 and 0 not in final["greedy_joint_action"]


@torch.no_grad()
def best_constant_policy_return(env_name: str, episodes: int, seed: int, **options) -> tuple[float, list[int]]:
    """The highest mean team return (and its joint action) over every constant joint action.

    Each agent repeats one of its available actions for the whole episode; every combination is
    played for ``episodes`` episodes (the same start states for all of them)."""
    env = make(env_name, num_envs=episodes, seed=seed, **options)
    avail = env.reset().avail_actions[0]  # [N, A]: padded actions are unavailable
    start = env.rng_state()
    best = (-math.inf, [])
    for joint in itertools.product(*(torch.nonzero(row).flatten().tolist() for row in avail)):
        env.set_rng_state(start)
        env.reset()
        actions = torch.tensor(joint).expand(episodes, -1)
        returns = sum(env.step(actions).reward for _ in range(env.spec.episode_limit))
        best = max(best, (float(returns.mean()), list(joint)))
    env.close()
    return best


@pytest.mark.slow
def test_mpe_speaker_listener_beats_every_constant_policy(tmp_path):
    """With the fully shared team reward, VDN must guide the listener better than any constant
    joint action does. The best constant policy is the listener standing still (no-op): every
    constant move drifts away from the landmarks. Beating it needs a listener that moves towards
    the goal (or at least towards the landmarks), i.e. a policy that depends on its observation.

    The game runs on the JAX MPE (``jaxmpe:``, equal to mpe2 step by step: tests/test_jax_mpe.py),
    which steps the constant policies' 48k steps and the rollouts in a fraction of mpe2's time.
    Budget: 15k steps with 16 updates per rollout and gamma 0.9 (the 25-step episodes need no
    longer horizon); at 30k steps and 4 updates per rollout VDN only reaches the standing-still
    return. The last two evaluations (10k and 15k steps) of seeds 0 and 1 lie 13 to 18.5 above the
    constant return (-38.0 from jaxmpe's start states; -33.1 from mpe2's, where they lay 10 to 15
    above), more than twice the margin asked for. IQL (once also tested here) does not beat
    standing still within this budget."""
    config = load_config(overrides=[
        "algo=vdn", "env.name=jaxmpe:simple_speaker_listener", "env.options.shared_reward=true",
        "env.num_envs=8", "run.device=cpu", "run.progress=false", "run.t_max=15000",
        "run.eval_interval=5000", "run.eval_episodes=64", "learner.batch_size=32", "learner.gamma=0.9",
        "learner.updates_per_rollout=16", "learner.target_update_interval=40", "learner.lr=5e-4",
        "exploration.epsilon_anneal_steps=10000",
    ])
    constant, joint = best_constant_policy_return("jaxmpe:simple_speaker_listener", 128, seed=12345, shared_reward=True)
    assert joint[1] == 0, joint  # the listener's no-op
    trainer = Trainer.solo(config, tmp_path)
    run_and_check_training(trainer)
    late = [row["test_return_mean"] for row in trainer.runs[0].progress.rows[-2:]]
    assert min(late) > constant + 5.0, (late, constant, joint)
