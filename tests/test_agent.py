"""The acting path (one step at a time) and the learning path (whole sequences) agree."""

from __future__ import annotations

import torch

from marlrepro.config import AgentConfig
from marlrepro.controller import AgentController
from marlrepro.envs.base import EnvSpec


def test_step_by_step_equals_sequence_unroll():
    torch.manual_seed(0)
    spec = EnvSpec("toy", n_agents=3, obs_dim=5, state_dim=4, n_actions=6, episode_limit=7)
    controller = AgentController(spec, AgentConfig(hidden_dim=16))
    obs = torch.randn(2, 8, 3, 5)
    actions = torch.randint(0, 6, (2, 7, 3))
    with torch.no_grad():
        whole = controller.sequence(obs, actions)
        hidden = controller.initial_hidden(2)
        last = torch.full((2, 3), -1)
        for t in range(8):
            q, hidden = controller.step(obs[:, t], last, hidden)
            assert torch.allclose(q, whole[:, t], atol=1e-5)
            if t < 7:
                last = actions[:, t]


def test_inputs_carry_last_action_and_agent_id():
    spec = EnvSpec("toy", n_agents=2, obs_dim=1, state_dim=1, n_actions=3, episode_limit=1)
    controller = AgentController(spec, AgentConfig())
    x = controller.build_inputs(torch.zeros(1, 1, 2, 1), torch.tensor([[[-1, 2]]]))
    assert x.shape == (1, 1, 2, 1 + 3 + 2)
    assert x[0, 0, 0, 1:4].sum() == 0  # no previous action
    assert x[0, 0, 1, 1:4].tolist() == [0, 0, 1]
    assert x[0, 0, :, 4:].tolist() == [[1, 0], [0, 1]]
