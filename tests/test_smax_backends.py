"""The extended SMAX behind the batched interface: zero sight, the expert's view, and training on MMM2."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from training_checks import run_and_check_training

from marlrepro.config import load_config
from marlrepro.envs import make
from marlrepro.envs.smacx import make_extended_smax
from marlrepro.train import Trainer

OTHERS = make_extended_smax("MMM2").view.other_units  # the enemy and ally blocks of an observation


@pytest.fixture(scope="module")
def mmm2_blind() -> tuple:
    """20 steps of 4 MMM2 battles, allies at sight 0 with the full-sight view requested, all stopping.

    Returns the spec, the batches and the allies' summed health per battle ``[21, 4]`` after each
    reset or step (read from the simulator's state; MMM2 has no shields).
    """
    env = make("smax:MMM2", 4, 0, "cpu", sight_range=0.0, full_sight_obs=True)
    n = env.spec.n_agents

    def ally_health() -> np.ndarray:
        return np.asarray(env._states[0].state.unit_health[:, :n]).sum(axis=1)

    batches = [env.reset()]
    health = [ally_health()]
    stop = torch.full((4, n), 4)
    for _ in range(20):
        batches.append(env.step(stop))
        health.append(ally_health())
    env.close()
    return env.spec, batches, np.stack(health)


def test_mmm2_spec_uses_smac_limits_and_unit_counts(mmm2_blind):
    spec, _, _ = mmm2_blind
    assert (spec.name, spec.n_agents, spec.episode_limit) == ("smax:MMM2", 10, 180)
    assert spec.n_actions == 5 + 12  # 4 moves, stop, one target slot per enemy (SMAX has no no-op)


def test_zero_sight_hides_others_but_the_expert_view_sees_them(mmm2_blind):
    spec, batches, _ = mmm2_blind
    obs = torch.stack([b.obs for b in batches])
    full = torch.stack([b.full_obs for b in batches])
    assert full.shape == obs.shape and spec.full_obs_dim == spec.obs_dim
    assert obs[..., OTHERS].abs().sum() == 0, "allies at sight 0 see no other unit"
    assert full[..., OTHERS].abs().sum() > 0, "the expert's view does"
    own = torch.ones(spec.obs_dim, dtype=torch.bool)
    own[OTHERS] = False
    assert torch.equal(obs[..., own], full[..., own]), "move and own features are the same"


def test_blind_allies_still_get_shot(mmm2_blind):
    _, batches, health = mmm2_blind
    reward = torch.stack([b.reward for b in batches])
    done = torch.stack([b.terminated | b.truncated for b in batches])
    assert not done.any(), "no battle ends (nor auto-resets) within these 20 steps"
    assert (reward == 0).all(), "standing still, allies deal no damage"
    assert np.all(np.diff(health, axis=0) <= 0), "nothing heals the allies above their start"
    assert np.all(health[-1] < health[0]), "the enemy finds the blind allies and shoots them in every battle"


def test_full_obs_is_absent_unless_requested():
    env = make("smacv2:terran_5_vs_5", 2, 0, "cpu")
    batch = env.reset()
    assert batch.full_obs is None and env.spec.full_obs_dim == 0 and env.spec.n_agents == 5
    env.close()


def test_qmix_smoke_run_on_mmm2_at_sight_zero(tmp_path):
    config = load_config(["config/algos/qmix.yaml"], [
        "env.name=smax:MMM2", "env.options.sight_range=0", "env.options.episode_limit=50",
        "env.num_envs=2", "run.t_max=400",
        "run.eval_interval=200", "run.eval_episodes=2", "learner.batch_size=2", "run.device=cpu",
        "run.progress=false", "tracking.uri=",
    ])
    (final,) = run_and_check_training(Trainer.solo(config, tmp_path))
    assert final["t_env"] >= 400 and final["backend"] == "smax"
    assert json.loads((tmp_path / "final.json").read_text())["env"] == "smax:MMM2"
