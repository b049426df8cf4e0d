"""QPLEX's duplex-dueling mixer (Wang et al. 2021, §3; pymarl2's ``dmaq`` mixer).

QPLEX factorises ``Q_tot`` into a joint value and a joint advantage that both keep the greedy
structure of the agents' own values, so the IGM principle holds for any mixing weights:

* transformation: ``Q'_i(τ, u_i) = w_i(s)·Q_i(τ_i, u_i) + v_i(s)`` with
  ``w_i = |hyper_w(s)|_i + 1e-10 > 0``; ``V'_i = w_i(s)·max_{u ∈ avail_i} Q_i + v_i(s)`` and
  ``A'_i = Q'_i − V'_i ≤ 0``, zero exactly at agent ``i``'s greedy available action;
* dueling mixing: ``Q_tot = Σ_i V'_i + Σ_i λ_i(s, u)·A'_i`` with positive
  importance weights from a ``K``-head attention over the state and the one-hot joint action,
  ``λ_i(s, u) = Σ_k (|key_k(s)| + 1e-10) · σ(agent_k(s))_i · σ(action_k(s, u))_i > 0``.

Since ``A'_i ≤ 0`` and ``λ_i > 0``, ``Q_tot ≤ Σ_i V'_i`` with equality at the joint action of
the agents' greedy available actions: that joint action maximises ``Q_tot`` (IGM).
"""

from __future__ import annotations

import torch
from torch import nn

from marlrepro.config import ADV_HYPERNET_LAYERS, HYPERNET_LAYERS, MixerConfig
from marlrepro.errors import ConfigError, unknown_choice
from marlrepro.nets.mixers import _hypernet

_EPS = 1e-10  # keeps w_i and the head keys strictly positive, as in the authors' code


class QPLEXMixer(nn.Module):
    """The duplex-dueling ``dmaq`` mixer with the pymarl2 QPLEX defaults.

    The transformation hypernetworks ``w(s)``, ``v(s)`` use ``config.hypernet_embed`` and
    ``config.hypernet_layers`` (pymarl2: 64 and 2); ``config.embed_dim`` (pymarl2's
    ``mixing_embed_dim``) is not used by this mixer. The ``num_kernel`` attention heads have
    ``adv_hypernet_layers`` ∈ {1, 2, 3} layers of width ``adv_hypernet_embed``, as QPLEX's
    ``DMAQ_SI_Weight`` (pymarl2: 2 layers, 4 heads; the IGM-DA authors: 3 layers, 10 heads).

    Flags (pymarl2 names in brackets, all True by default):

    * ``weighted_head`` [``weighted_head``]: apply the transformation ``Q'_i = w_i Q_i + v_i``;
      when False, ``Q'_i = Q_i``.
    * ``stop_gradient`` [``is_stop_gradient``]: the advantage ``A'_i`` enters as a constant
      (``sg[A'_i]``), so only ``λ`` learns from it.
    * ``minus_one`` [``is_minus_one``]: compute ``Q_tot = Σ_i Q'_i + Σ_i (λ_i − 1)·A'_i``, the same
      value as ``Σ_i V'_i + Σ_i λ_i A'_i``, but with the stop-gradient the agents then still
      receive the gradient ``∂Q_tot/∂Q_i = w_i`` through ``Σ_i Q'_i``. When False, the literal
      ``Σ_i V'_i + Σ_i λ_i A'_i`` is used.

    pymarl2's ``is_adv_attention`` is always on here: the ``dmaq`` mixer always uses the
    attention weights above (the flag matters only in the authors' Qatten-based ``dmaq_qatten``).
    """

    def __init__(
        self,
        n_agents: int,
        n_actions: int,
        state_dim: int,
        config: MixerConfig,
        *,
        adv_hypernet_layers: int = 2,
        adv_hypernet_embed: int = 64,
        num_kernel: int = 4,
        minus_one: bool = True,
        weighted_head: bool = True,
        stop_gradient: bool = True,
    ) -> None:
        super().__init__()
        if adv_hypernet_layers not in ADV_HYPERNET_LAYERS:
            raise unknown_choice("mixer.adv_hypernet_layers", adv_hypernet_layers, ADV_HYPERNET_LAYERS)
        if config.hypernet_layers not in HYPERNET_LAYERS:
            raise unknown_choice("mixer.hypernet_layers", config.hypernet_layers, HYPERNET_LAYERS)
        if num_kernel < 1:
            raise ConfigError(f"mixer.num_kernel: must be >= 1, got {num_kernel}")
        self.n_agents = n_agents
        self.n_actions = n_actions
        self.minus_one = minus_one
        self.weighted_head = weighted_head
        self.stop_gradient = stop_gradient
        h, layers = config.hypernet_embed, config.hypernet_layers
        self.hyper_w = _hypernet(state_dim, h, n_agents, layers)
        self.hyper_v = _hypernet(state_dim, h, n_agents, layers)
        joint_dim = state_dim + n_agents * n_actions
        e, k = adv_hypernet_embed, adv_hypernet_layers
        self.keys = nn.ModuleList(_hypernet(state_dim, e, 1, k) for _ in range(num_kernel))
        self.agent_heads = nn.ModuleList(_hypernet(state_dim, e, n_agents, k) for _ in range(num_kernel))
        self.action_heads = nn.ModuleList(_hypernet(joint_dim, e, n_agents, k) for _ in range(num_kernel))

    def transform(self, agent_qs: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        """``Q'_i = w_i(s)·Q_i + v_i(s)``: ``agent_qs`` [..., B, T, N], ``states`` [B, T, S]
        -> [..., B, T, N]."""
        if not self.weighted_head:
            return agent_qs
        w = self.hyper_w(states).abs() + _EPS
        return w * agent_qs + self.hyper_v(states)

    def lambdas(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Importance weights ``λ_i(s, u) > 0``: ``states`` [B, T, S], ``actions`` [B, T, N] (int)
        -> [B, T, N]."""
        onehot = nn.functional.one_hot(actions, self.n_actions).to(states.dtype).flatten(-2)
        joint = torch.cat([states, onehot], dim=-1)
        heads = [
            (key(states).abs() + _EPS) * torch.sigmoid(agents(states)) * torch.sigmoid(acts(joint))
            for key, agents, acts in zip(self.keys, self.agent_heads, self.action_heads)
        ]
        return torch.stack(heads).sum(0)

    def forward(
        self, agent_qs: torch.Tensor, states: torch.Tensor, actions: torch.Tensor, max_qs: torch.Tensor
    ) -> torch.Tensor:
        """``Q_tot`` of the joint action ``actions``.

        ``agent_qs`` [B, T, N]: each agent's ``Q_i`` of its action in ``actions``;
        ``states`` [B, T, S]; ``actions`` [B, T, N] int64 action indices (the joint action ``u``
        fed to ``λ``); ``max_qs`` [B, T, N]: each agent's ``max`` of ``Q_i`` over its AVAILABLE
        actions (pymarl2 passes it detached). Returns ``Q_tot`` [B, T, 1].
        """
        q, v = self.transform(torch.stack([agent_qs, max_qs]), states)  # one pass of the hypernetworks
        adv = q - v
        if self.stop_gradient:
            adv = adv.detach()
        lam = self.lambdas(states, actions)
        if self.minus_one:
            q_tot = q.sum(-1) + ((lam - 1) * adv).sum(-1)
        else:
            q_tot = v.sum(-1) + (lam * adv).sum(-1)
        return q_tot.unsqueeze(-1)
