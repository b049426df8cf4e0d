"""FOP's mixer (Zhang et al. 2021, §4.2; PKU-RL/FOP-DMAC-MACPF ``modules/mixers/fop.py``).

``Q_tot(τ, u; s) = Σ_i [w_i(s) Q_i(τ_i, u_i) + V(s) / N] + Σ_i (λ_i(s, u) − 1) · sg[w_i(s) (Q_i − V_i)]``

with ``V_i = α log Σ_a exp(Q_i(τ_i, a) / α)`` each agent's soft value (computed by the caller).

* ``w_i(s)``: Qatten's attention weights (Yang et al. 2020). Head ``h`` queries with
  ``q_h(s) = W_h² ReLU(W_h¹ s)`` (no bias in ``W_h²``) and keys ally ``i`` by
  ``k_{h,i} = K_h e_i(s)``, ``e_i`` ally ``i``'s block of the state (:attr:`EnvSpec.unit_dim`
  features); ``w_i = Σ_h softmax_i(q_h · k_{h,i} / √E)``, plus 1e-10. Qatten's regulariser
  ``attend_reg_coef · Σ_h mean(logit_h²)`` comes back with ``Q_tot``.
* ``λ_i(s, u) = Σ_h |κ_h(s)| σ(a_h(s))_i σ(b_h(s, u))_i`` (QPLEX's heads; ``|κ_h| + 1e-10``).
* ``V(s)``: Linear → ReLU → Linear.

Where the state has no per-ally blocks (the matrix game, Overcooked: ``unit_dim`` 0), the keys
read each agent's one-hot id instead (docs/deviations.md). The code's per-head layers are stacked
here into one layer each (same shapes and initial distributions), so the heads run as one kernel.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from marlrepro.config import MixerConfig
from marlrepro.nets.mixers import linear


class FOPMixer(nn.Module):
    """``Q_tot`` of the taken local values, FOP's attention mixer (module docstring)."""

    def __init__(self, n_agents: int, n_actions: int, state_dim: int, unit_dim: int, config: MixerConfig,
                 n_head: int, attend_reg_coef: float) -> None:
        super().__init__()
        self.n_agents, self.n_actions, self.unit_dim = n_agents, n_actions, unit_dim
        self.n_head, self.embed_dim, self.attend_reg_coef = n_head, config.embed_dim, attend_reg_coef
        hidden = config.hypernet_embed
        self.selector_hidden = nn.Linear(state_dim, n_head * hidden)
        # head h's second selector layer, nn.Linear(hidden, embed_dim, bias=False)'s initialisation
        bound = 1 / math.sqrt(hidden)
        self.selector_out = nn.Parameter(torch.empty(n_head, hidden, self.embed_dim).uniform_(-bound, bound))
        self.key = nn.Linear(unit_dim or n_agents, n_head * self.embed_dim, bias=False)
        self.lambda_key = linear(state_dim, n_head)
        self.lambda_agents = nn.Linear(state_dim, n_head * n_agents)
        self.lambda_action = nn.Linear(state_dim + n_agents * n_actions, n_head * n_agents)
        self.value = nn.Sequential(nn.Linear(state_dim, self.embed_dim), nn.ReLU(), linear(self.embed_dim, 1))
        self.register_buffer("agent_ids", torch.eye(n_agents), persistent=False)

    def units(self, states: torch.Tensor) -> torch.Tensor:
        """Each ally's key features [..., N, U]: its block of the state (or its one-hot id)."""
        if not self.unit_dim:
            return self.agent_ids.expand(*states.shape[:-1], self.n_agents, self.n_agents)
        return states[..., : self.n_agents * self.unit_dim].unflatten(-1, (self.n_agents, self.unit_dim))

    def attention(self, states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Qatten's weights ``w`` [..., N] (summed over heads) and the regulariser (a scalar)."""
        hidden = torch.relu(self.selector_hidden(states)).unflatten(-1, (self.n_head, -1))  # [..., H, hid]
        selectors = torch.einsum("...hk,hke->...he", hidden, self.selector_out)  # [..., H, E]
        keys = self.key(self.units(states)).unflatten(-1, (self.n_head, self.embed_dim))  # [..., N, H, E]
        logits = torch.einsum("...he,...nhe->...hn", selectors, keys)  # [..., H, N]
        weights = torch.softmax(logits / math.sqrt(self.embed_dim), dim=-1).sum(dim=-2)
        regulariser = self.attend_reg_coef * logits.pow(2).flatten(0, -3).mean(dim=(0, 2)).sum()
        return weights, regulariser

    def lambdas(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """QPLEX's ``λ_i(s, u)`` [..., N] of the joint action ``actions`` [..., N] (indices)."""
        onehot = nn.functional.one_hot(actions, self.n_actions).to(states.dtype).flatten(-2)
        key = self.lambda_key(states).abs().unsqueeze(-1) + 1e-10  # [..., H, 1]
        agents = torch.sigmoid(self.lambda_agents(states)).unflatten(-1, (self.n_head, self.n_agents))
        action = torch.sigmoid(self.lambda_action(torch.cat([states, onehot], dim=-1)))
        return (key * agents * action.unflatten(-1, (self.n_head, self.n_agents))).sum(dim=-2)

    def forward(self, q_taken: torch.Tensor, states: torch.Tensor, actions: torch.Tensor,
                soft_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``q_taken`` [..., N] (``Q_i(τ_i, u_i)``), ``states`` [..., S], ``actions`` [..., N],
        ``soft_values`` [..., N] (``V_i``) -> (``Q_tot`` [..., 1], the attention regulariser)."""
        weights, regulariser = self.attention(states)
        weights = weights + 1e-10
        advantage = (self.lambdas(states, actions) - 1) * (weights * (q_taken - soft_values)).detach()
        q_tot = (weights * q_taken).sum(dim=-1, keepdim=True) + self.value(states) + advantage.sum(dim=-1, keepdim=True)
        return q_tot, regulariser
