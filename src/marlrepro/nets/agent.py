"""The shared recurrent agent network of pymarl (Rashid et al. 2018, §4; pymarl2 ``n_rnn``)."""

from __future__ import annotations

import torch
from torch import nn


class RNNAgent(nn.Module):
    """Per-agent utility ``Q_i(tau_i, ·)``: Linear -> ReLU -> GRU -> Linear, shared by all agents.

    Uses :class:`torch.nn.GRU` so a whole episode batch is unrolled by one fused kernel during
    learning, and the same weights step one time step at a time while acting.
    """

    def __init__(self, input_dim: int, hidden_dim: int, n_actions: int) -> None:
        super().__init__()
        self.hidden_dim = hidden_dim
        self.fc1 = nn.Linear(input_dim, hidden_dim)
        self.rnn = nn.GRU(hidden_dim, hidden_dim, batch_first=True)
        self.fc2 = nn.Linear(hidden_dim, n_actions)

    def initial_hidden(self, batch: int, device: torch.device) -> torch.Tensor:
        """Zero hidden state for ``batch`` agent instances, shaped ``[1, batch, hidden]``."""
        return torch.zeros(1, batch, self.hidden_dim, device=device)

    def forward(self, inputs: torch.Tensor, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``inputs`` [M, T, input_dim], ``hidden`` [1, M, H] -> (Q [M, T, n_actions], hidden)."""
        x = torch.relu(self.fc1(inputs))
        out, hidden = self.rnn(x, hidden)
        return self.fc2(out), hidden

    def step(self, inputs: torch.Tensor, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One time step: ``inputs`` [M, input_dim], ``hidden`` [1, M, H] -> (Q [M, A], hidden).

        The same weights as :meth:`forward`, through ``torch.gru_cell``, which avoids the
        sequence kernel's set-up cost when acting one step at a time.
        """
        x = torch.relu(self.fc1(inputs))
        rnn = self.rnn
        h = torch.gru_cell(x, hidden[0], rnn.weight_ih_l0, rnn.weight_hh_l0, rnn.bias_ih_l0, rnn.bias_hh_l0)
        return self.fc2(h), h.unsqueeze(0)
