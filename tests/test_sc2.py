"""The StarCraft II backend: a clear error without the game, and the worker-process batching.

StarCraft II cannot be installed on CI, so the batching is exercised against a stand-in ``smac``
package (a tiny scripted game with SMAC's method names) that the worker processes import exactly
as they would import the real one.
"""

from __future__ import annotations

import sys
import textwrap

import pytest
import torch

from marlrepro.config import load_config
from marlrepro.envs import make
from marlrepro.errors import ConfigError
from marlrepro.experiments import resolve_env

FAKE_SMAC = '''
import numpy as np


class StarCraft2Env:
    """Two agents, three actions; both choosing action 2 wins; the limit is 4 steps."""

    def __init__(self, map_name, seed=None):
        self.map_name, self.t = map_name, 0

    def unit_sight_range(self, agent_id):
        return 9.0

    def get_env_info(self):
        return {"n_agents": 2, "n_actions": 3, "obs_shape": 3, "state_shape": 5, "episode_limit": 4}

    def get_ally_num_attributes(self):
        return 2

    def reset(self):
        self.t = 0
        return self.get_obs(), self.get_state()

    def get_obs(self):
        return [np.array([self.unit_sight_range(i), self.t, i], np.float32) for i in range(2)]

    def get_state(self):
        return np.full(5, self.t, np.float32)

    def get_avail_actions(self):
        return [[1, 1, 1], [1, 1, 0] if self.t == 0 else [1, 1, 1]]

    def step(self, actions):
        self.t += 1
        won = all(a == 2 for a in actions)
        limit = not won and self.t >= 4
        return float(sum(actions)), won or limit, ({"battle_won": won, "episode_limit": limit}
                                                   if won or limit else {})

    def close(self):
        pass
'''


@pytest.fixture
def fake_starcraft(tmp_path, monkeypatch):
    package = tmp_path / "site" / "smac" / "env"
    package.mkdir(parents=True)
    (package.parent / "__init__.py").write_text("")
    (package / "__init__.py").write_text(textwrap.dedent(FAKE_SMAC))
    (tmp_path / "StarCraftII").mkdir()
    monkeypatch.setenv("SC2PATH", str(tmp_path / "StarCraftII"))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    # spawned workers do not inherit sys.path, only the environment
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path / 'site'}:{':'.join(sys.path)}")
    for name in [m for m in sys.modules if m == "smac" or m.startswith("smac.")]:
        monkeypatch.delitem(sys.modules, name)


def test_missing_game_fails_before_any_compute_and_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("SC2PATH", str(tmp_path / "nowhere"))
    with pytest.raises(ConfigError) as err:
        load_config([], ["env.name=sc2:3s5z"])
    message = str(err.value)
    assert "sc2:3s5z" in message and "SC2PATH" in message and "marlrepro[sc2]" in message
    assert "backend: smax" in message


def test_missing_game_folder_is_reported(fake_starcraft, tmp_path, monkeypatch):
    monkeypatch.setenv("SC2PATH", str(tmp_path / "nowhere"))
    with pytest.raises(ConfigError, match="StarCraft II not found at SC2PATH="):
        make("sc2:3m", 1, 0, "cpu")


def test_workers_batch_step_and_auto_reset(fake_starcraft):
    env = make("sc2:3m", 3, 0, "cpu", sight_range=0.0)
    try:
        assert (env.spec.n_agents, env.spec.n_actions, env.spec.obs_dim, env.spec.episode_limit) == (2, 3, 3, 4)
        assert env.spec.unit_dim == 2  # SMAC's get_ally_num_attributes: the state's block per ally
        first = env.reset()
        assert first.obs.shape == (3, 2, 3) and first.state.shape == (3, 5)
        assert torch.equal(first.obs[..., 0], torch.zeros(3, 2)), "sight_range reaches every game"
        assert not first.avail_actions[:, 1, 2].any()
        win = env.step(torch.tensor([[2, 2], [0, 1], [1, 1]]))
        assert win.won.tolist() == [True, False, False] and win.terminated.tolist() == [True, False, False]
        assert win.reward.tolist() == [4.0, 1.0, 2.0]
        assert win.obs[0, 0, 1] == 1 and win.obs[1, 0, 1] == 1, "the ending step returns the final observation"
        restart = env.step(torch.zeros(3, 2, dtype=torch.int64))
        assert restart.obs[0, 0, 1] == 0 and restart.obs[1, 0, 1] == 2, "the next step restarts a finished game"
        assert restart.reward[0] == 0 and not (restart.terminated | restart.truncated | restart.won).any()
        for _ in range(2):
            last = env.step(torch.zeros(3, 2, dtype=torch.int64))
        assert last.truncated.tolist() == [False, True, True] and not last.terminated.any()
    finally:
        env.close()


def test_workflow_backend_sc2_serves_smac_and_smacv2_names():
    assert resolve_env("smax:MMM2", "sc2") == "sc2:MMM2"
    assert resolve_env("smacv2:protoss_10_vs_11", "sc2") == "sc2:protoss_10_vs_11"
    assert resolve_env("smacv2:protoss_10_vs_11", "smax") == "smacv2:protoss_10_vs_11"
    assert resolve_env("mpe:simple_spread", "sc2") == "mpe:simple_spread"
