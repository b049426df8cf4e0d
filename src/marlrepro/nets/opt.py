"""ME-IGM's order-preserving transformation (OPT; paper §4, eq. 2; notes/me_igm.md).

Each agent ``i`` maps every entry of its local Q-vector through one scalar function of the
global state, ``x ↦ f_i(g_i(x; s); s)``:

* ``g_i(q; s) = q + b2_i(s) + Σ_{k=1..K} |w2_ik(s)| · ELU(|w1_ik(s)| · q + b1_ik(s))``,
* ``f_i(x; s) = |w5_i(s)| · x + b5_i(s)``.

Only the weights pass through ``abs`` (not the biases), and ELU is increasing, so
``∂g_i/∂q = 1 + Σ_k |w2_ik| |w1_ik| ELU'(·) ≥ 1``: ``g_i`` is strictly increasing, and
``f_i ∘ g_i`` is non-decreasing (strictly, unless ``w5_i(s)`` is exactly 0). The same map is
applied to every action entry of agent ``i``, so the order of its Q-values, and hence its greedy
action, is preserved: the softmax of the transformed values samples actions during training,
while execution stays greedy on the raw local Q, decentralised.

How the two parts train (our reconstruction; the paper's equations were lost, docs/deviations.md):
``Q_tot`` mixes the inner values, ``Mixer(g_1(q_1(a_1)), …, g_N(q_N(a_N)); s)``, so ``g`` learns
from the TD loss (the authors' code summed the ``g_i`` instead of mixing them); ``f`` learns from
the OPT loss on ``sg[g]`` (:func:`marlrepro.learners.max_entropy.opt_loss`). Both keep the order.

Every weight and bias comes from a hypernetwork of the global state, as in QMIX's mixer: ``w1``,
``w2``, ``b2``, ``w5`` and ``b5`` have ``layers`` layers of width ``hypernet_embed`` (the authors'
code: 2; the paper's SMACv2 runs: 1, appendix C), ``b1`` one; ``K = embed_dim / 2`` (the
authors' code: 16 at QMIX's embed 32).
"""

from __future__ import annotations

import torch
from torch import nn

from marlrepro.config import MixerConfig
from marlrepro.nets.mixers import _hypernet


class OrderPreservingTransform(nn.Module):
    """``(q [..., N, A], states [..., S]) -> f(g(q))`` [..., N, A], per agent and state.

    ``non_negative=False`` drops the ``abs`` on ``w1``, ``w2`` and ``w5``: the same three layers,
    no longer monotone. That is the paper's "ME-QMIX (MLP)" ablation, a 3-layer MLP without
    non-negative weights in place of the OPT (§6.3, Table 4; its exact shape is a guess,
    docs/deviations.md)."""

    def __init__(self, n_agents: int, state_dim: int, config: MixerConfig, non_negative: bool = True,
                 layers: int = 2) -> None:
        super().__init__()
        self.n_agents = n_agents
        self.non_negative = non_negative
        self.kernels = max(config.embed_dim // 2, 1)
        h, nk = config.hypernet_embed, n_agents * self.kernels
        self.hyper_w1 = _hypernet(state_dim, h, nk, layers)
        self.hyper_b1 = _hypernet(state_dim, h, nk, 1)
        self.hyper_w2 = _hypernet(state_dim, h, nk, layers)
        self.hyper_b2 = _hypernet(state_dim, h, n_agents, layers)
        self.hyper_w5 = _hypernet(state_dim, h, n_agents, layers)
        self.hyper_b5 = _hypernet(state_dim, h, n_agents, layers)

    def inner(self, q: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        """``g_i(q; s)`` of every entry: ``q`` [..., N, A], ``states`` [..., S] -> [..., N, A]."""
        lead, n, k = states.shape[:-1], self.n_agents, self.kernels
        w1 = self._weight(self.hyper_w1(states)).view(*lead, n, k, 1)
        b1 = self.hyper_b1(states).view(*lead, n, k, 1)
        w2 = self._weight(self.hyper_w2(states)).view(*lead, n, k, 1)
        b2 = self.hyper_b2(states).view(*lead, n, 1)
        hidden = nn.functional.elu(w1 * q.unsqueeze(-2) + b1)  # [..., N, K, A]
        return q + b2 + (w2 * hidden).sum(dim=-2)

    def outer(self, x: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        """``f_i(x; s) = |w5_i(s)| x + b5_i(s)``: ``x`` [..., N, A] -> [..., N, A]."""
        return self._weight(self.hyper_w5(states)).unsqueeze(-1) * x + self.hyper_b5(states).unsqueeze(-1)

    def _weight(self, raw: torch.Tensor) -> torch.Tensor:
        return raw.abs() if self.non_negative else raw

    def forward(self, q: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        """``f_i(g_i(q; s); s)`` of every entry of every agent's Q-vector."""
        return self.outer(self.inner(q, states), states)
