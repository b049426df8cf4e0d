"""The multi-agent controller: builds agent inputs and runs the shared agent for all agents."""

from __future__ import annotations

from typing import Literal, Protocol

import torch
from torch import nn

from marlrepro.config import AgentConfig
from marlrepro.envs.base import EnvSpec
from marlrepro.nets.agent import RNNAgent

ObsSource = Literal["obs", "full_obs", "state"]


class Observed(Protocol):
    """Anything holding per-step ``obs``, ``full_obs`` and ``state`` (an EnvBatch or Episodes)."""

    obs: torch.Tensor
    full_obs: torch.Tensor | None
    state: torch.Tensor


class AgentController(nn.Module):
    """Runs one shared :class:`RNNAgent` for ``N`` agents of ``B`` environments at once.

    The input of agent ``i`` at step ``t`` is ``[x_i^t, onehot(u_i^{t-1}), onehot(i), avail_i^t]``
    (pymarl's ``obs_last_action`` and ``obs_agent_id``; the available-actions mask only with
    ``obs_avail_actions``), where ``x_i`` is picked by ``source``: the agent's own observation
    (decentralised agents), its full-sight observation, or the global state (IGM-DA's experts).
    """

    def __init__(self, spec: EnvSpec, config: AgentConfig, source: ObsSource = "obs") -> None:
        super().__init__()
        self.spec = spec
        self.config = config
        self.source = source
        input_dim = {"obs": spec.obs_dim, "full_obs": spec.full_obs_dim, "state": spec.state_dim}[source]
        input_dim += spec.n_actions if config.obs_last_action else 0
        input_dim += spec.n_agents if config.obs_agent_id else 0
        input_dim += spec.n_actions if config.obs_avail_actions else 0
        self.agent = RNNAgent(input_dim, config.hidden_dim, spec.n_actions)
        self.register_buffer("agent_ids", torch.eye(spec.n_agents), persistent=False)

    def observe(self, data: Observed) -> torch.Tensor:
        """This controller's per-agent input ``[..., N, dim]`` from a step or a batch of episodes."""
        if self.source == "obs":
            return data.obs
        if self.source == "full_obs":
            if data.full_obs is None:
                raise ValueError("this controller reads full_obs; build the env with full_sight_obs=true")
            return data.full_obs
        state = data.state.unsqueeze(-2)
        return state.expand(*state.shape[:-2], self.spec.n_agents, state.shape[-1])

    def build_inputs(
        self, obs: torch.Tensor, last_actions: torch.Tensor, avail: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``obs`` [B, T, N, dim], ``last_actions`` [B, T, N] (-1 = none), ``avail`` [B, T, N, A]
        (bool; used with ``obs_avail_actions``) -> [B, T, N, in]."""
        parts = [obs]
        if self.config.obs_last_action:
            onehot = nn.functional.one_hot(last_actions.clamp(min=0), self.spec.n_actions).to(obs.dtype)
            parts.append(onehot * (last_actions >= 0).unsqueeze(-1).to(obs.dtype))
        if self.config.obs_agent_id:
            b, t, n = obs.shape[:3]
            parts.append(self.agent_ids.expand(b, t, n, n))
        if self.config.obs_avail_actions:
            if avail is None:
                raise ValueError("this controller's agents read the available actions; pass avail")
            parts.append(avail.to(obs.dtype))
        return torch.cat(parts, dim=-1)

    def initial_hidden(self, batch: int) -> torch.Tensor:
        return self.agent.initial_hidden(batch * self.spec.n_agents, self.agent_ids.device)

    def forward(
        self, obs: torch.Tensor, last_actions: torch.Tensor, hidden: torch.Tensor,
        avail: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Q-values [B, T, N, A] for a sequence, continuing from ``hidden`` [1, B·N, H]."""
        b, t, n = obs.shape[:3]
        x = self.build_inputs(obs, last_actions, avail)
        x = x.permute(0, 2, 1, 3).reshape(b * n, t, -1)
        q, hidden = self.agent(x, hidden)
        return q.view(b, n, t, -1).permute(0, 2, 1, 3), hidden

    def step(
        self, obs: torch.Tensor, last_actions: torch.Tensor, hidden: torch.Tensor,
        avail: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One acting step: ``obs`` [B, N, dim] -> (Q [B, N, A], hidden)."""
        b, n = obs.shape[:2]
        avail_t = None if avail is None else avail.unsqueeze(1)
        x = self.build_inputs(obs.unsqueeze(1), last_actions.unsqueeze(1), avail_t).view(b * n, -1)
        q, hidden = self.agent.step(x, hidden)
        return q.view(b, n, -1), hidden

    def sequence(
        self, obs: torch.Tensor, actions: torch.Tensor, avail: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Q-values over whole episodes from a zero hidden state.

        ``obs`` [B, T+1, N, dim], ``actions`` [B, T, N], ``avail`` [B, T+1, N, A] -> Q [B, T+1, N, A];
        the last-action input at step ``t`` is ``actions[:, t-1]`` (none at ``t = 0``).
        """
        b = obs.shape[0]
        none = torch.full_like(actions[:, :1], -1)
        last = torch.cat([none, actions], dim=1)
        q, _ = self(obs, last, self.initial_hidden(b), avail)
        return q
