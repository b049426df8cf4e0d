"""The implicit-quantile recurrent agent of DFAC (Sun et al. 2021, §4; IQN: Dabney et al. 2018, §3)."""

from __future__ import annotations

import math

import torch
from torch import nn

from marlrepro.nets.agent import gru_sequence

N_GREEDY_TAUS = 32  # N̂: quantile samples averaged for acting (DFAC default)


class IQNRNNAgent(nn.Module):
    """Each agent's return distribution over its actions as implicit quantiles, shared by all agents.

    ``h = GRU(ReLU(fc1(x)))`` as in :class:`~marlrepro.nets.agent.RNNAgent`; the quantile
    fraction ``τ ∈ (0, 1)`` is embedded as ``φ(τ) = ReLU(W [cos(π j τ)]_{j=0..E−1} + b)`` (IQN §3,
    ``E = quantile_embed_dim = 64``), and ``Z(τ, u) = fc2(h ⊙ φ(τ))_u``.

    Quantile fractions are shared by groups of consecutive rows: the ``M`` agent rows are
    ``G`` groups of ``R = M / G`` rows, and ``taus`` has ``G`` leading entries. The controller's
    row layout is (environment, agent), so passing ``taus`` with ``G = B`` environments gives all
    agents of an environment the same ``τ``, as DMIX requires (pass ``G = M`` for one ``τ`` per row).
    Output quantile values put the quantile dimension before the action dimension:
    ``[..., K, A]``.
    """

    def __init__(self, input_dim: int, hidden_dim: int, n_actions: int, quantile_embed_dim: int = 64) -> None:
        super().__init__()
        self.hidden_dim = hidden_dim
        self.fc1 = nn.Linear(input_dim, hidden_dim)
        self.rnn = nn.GRU(hidden_dim, hidden_dim, batch_first=True)
        self.phi = nn.Linear(quantile_embed_dim, hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, n_actions)
        self.register_buffer("freqs", math.pi * torch.arange(quantile_embed_dim), persistent=False)

    def initial_hidden(self, batch: int, device: torch.device) -> torch.Tensor:
        """Zero hidden state for ``batch`` agent instances, shaped ``[1, batch, hidden]``."""
        return torch.zeros(1, batch, self.hidden_dim, device=device)

    def embed(self, taus: torch.Tensor) -> torch.Tensor:
        """``φ(τ) = ReLU(Linear(cos(π j τ)))``: ``taus`` [..., K] -> [..., K, H]."""
        return torch.relu(self.phi(torch.cos(taus.unsqueeze(-1) * self.freqs)))

    def quantiles(self, h: torch.Tensor, taus: torch.Tensor) -> torch.Tensor:
        """``Z = fc2(h ⊙ φ(τ))``: ``h`` [M, ..., H], ``taus`` [G, ..., K] with ``G | M`` -> [M, ..., K, A]."""
        m, g = h.shape[0], taus.shape[0]
        if m % g:
            raise ValueError(f"IQN agent: {m} agent rows cannot share {g} groups of quantile fractions")
        phi = self.embed(taus).unsqueeze(1)  # [G, 1, ..., K, H]
        grouped = h.reshape(g, m // g, *h.shape[1:]).unsqueeze(-2)  # [G, R, ..., 1, H]
        z = self.fc2(grouped * phi)  # [G, R, ..., K, A]
        return z.reshape(m, *z.shape[2:])

    def forward(
        self, inputs: torch.Tensor, hidden: torch.Tensor, taus: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``inputs`` [M, T, input_dim], ``hidden`` [1, M, H], ``taus`` [G, T, K]
        -> (Z [M, T, K, A], hidden)."""
        out, hidden = gru_sequence(torch.relu(self.fc1(inputs)), hidden, self.rnn)
        return self.quantiles(out, taus), hidden

    def step(
        self, inputs: torch.Tensor, hidden: torch.Tensor, taus: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One time step: ``inputs`` [M, input_dim], ``hidden`` [1, M, H], ``taus`` [G, K]
        -> (Z [M, K, A], hidden), with the same weights as :meth:`forward` (via ``torch.gru_cell``)."""
        x = torch.relu(self.fc1(inputs))
        rnn = self.rnn
        h = torch.gru_cell(x, hidden[0], rnn.weight_ih_l0, rnn.weight_hh_l0, rnn.bias_ih_l0, rnn.bias_hh_l0)
        return self.quantiles(h, taus), h.unsqueeze(0)

    def expected_step(
        self, inputs: torch.Tensor, hidden: torch.Tensor, groups: int, n_taus: int = N_GREEDY_TAUS
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Acting values: ``Q_i(u) = (1/N̂) Σ_k Z_i(τ_k, u)`` over ``N̂ = n_taus`` fractions
        ``τ_k ~ U(0, 1)`` shared within each of ``groups`` row groups.
        ``inputs`` [M, input_dim], ``hidden`` [1, M, H] -> (Q [M, A], hidden)."""
        taus = torch.rand(groups, n_taus, device=inputs.device)
        z, hidden = self.step(inputs, hidden, taus)
        return z.mean(dim=-2), hidden
