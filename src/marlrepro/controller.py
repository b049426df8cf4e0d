"""The multi-agent controller: builds agent inputs and runs the shared agent for all agents."""

from __future__ import annotations

import torch
from torch import nn

from marlrepro.config import AgentConfig
from marlrepro.envs.base import EnvSpec
from marlrepro.nets.agent import RNNAgent


class AgentController(nn.Module):
    """Runs one shared :class:`RNNAgent` for ``N`` agents of ``B`` environments at once.

    The input of agent ``i`` at step ``t`` is ``[o_i^t, onehot(u_i^{t-1}), onehot(i)]``
    (pymarl's ``obs_last_action`` and ``obs_agent_id``).
    """

    def __init__(self, spec: EnvSpec, config: AgentConfig) -> None:
        super().__init__()
        self.spec = spec
        self.config = config
        input_dim = spec.obs_dim
        input_dim += spec.n_actions if config.obs_last_action else 0
        input_dim += spec.n_agents if config.obs_agent_id else 0
        self.agent = RNNAgent(input_dim, config.hidden_dim, spec.n_actions)
        self.register_buffer("agent_ids", torch.eye(spec.n_agents), persistent=False)

    def build_inputs(self, obs: torch.Tensor, last_actions: torch.Tensor) -> torch.Tensor:
        """``obs`` [B, T, N, obs_dim], ``last_actions`` [B, T, N] (-1 = none) -> [B, T, N, in]."""
        parts = [obs]
        if self.config.obs_last_action:
            onehot = nn.functional.one_hot(last_actions.clamp(min=0), self.spec.n_actions).to(obs.dtype)
            parts.append(onehot * (last_actions >= 0).unsqueeze(-1).to(obs.dtype))
        if self.config.obs_agent_id:
            b, t, n = obs.shape[:3]
            parts.append(self.agent_ids.expand(b, t, n, n))
        return torch.cat(parts, dim=-1)

    def initial_hidden(self, batch: int) -> torch.Tensor:
        return self.agent.initial_hidden(batch * self.spec.n_agents, self.agent_ids.device)

    def forward(
        self, obs: torch.Tensor, last_actions: torch.Tensor, hidden: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Q-values [B, T, N, A] for a sequence, continuing from ``hidden`` [1, B·N, H]."""
        b, t, n = obs.shape[:3]
        x = self.build_inputs(obs, last_actions)
        x = x.permute(0, 2, 1, 3).reshape(b * n, t, -1)
        q, hidden = self.agent(x, hidden)
        return q.view(b, n, t, -1).permute(0, 2, 1, 3), hidden

    def step(self, obs: torch.Tensor, last_actions: torch.Tensor, hidden: torch.Tensor):
        """One acting step: ``obs`` [B, N, obs_dim] -> (Q [B, N, A], hidden)."""
        b, n = obs.shape[:2]
        x = self.build_inputs(obs.unsqueeze(1), last_actions.unsqueeze(1)).view(b * n, -1)
        q, hidden = self.agent.step(x, hidden)
        return q.view(b, n, -1), hidden

    def sequence(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Q-values over whole episodes from a zero hidden state.

        ``obs`` [B, T+1, N, obs_dim], ``actions`` [B, T, N] -> Q [B, T+1, N, A]; the last-action
        input at step ``t`` is ``actions[:, t-1]`` (none at ``t = 0``).
        """
        b = obs.shape[0]
        none = torch.full_like(actions[:, :1], -1)
        last = torch.cat([none, actions], dim=1)
        q, _ = self(obs, last, self.initial_hidden(b))
        return q
