"""The shared recurrent agent network of pymarl (Rashid et al. 2018, §4; pymarl2 ``n_rnn``)."""

from __future__ import annotations

import torch
from torch import nn

from marlrepro.nets.gru_recurrence import GRURecurrence


def gru_sequence(x: torch.Tensor, hidden: torch.Tensor, rnn: nn.GRU) -> torch.Tensor:
    """Run ``rnn``'s one-layer GRU over ``x`` [M, T, H_in] from ``hidden`` [1, M, H]
    -> (outputs [M, T, H], final hidden [1, M, H]).

    The input projections ``W_i x + b_i`` of all ``T`` steps are one matmul; the recurrence
    (torch's GRU equations, Cho et al. 2014) is :class:`~marlrepro.nets.gru_recurrence.GRURecurrence`,
    which a pack's ``vmap`` batches over its runs.
    """
    width = hidden.shape[-1]
    b_rz, b_hn = rnn.bias_hh_l0.split(2 * width)
    bias = rnn.bias_ih_l0 + torch.cat([b_rz, torch.zeros_like(b_hn)])  # r and z biases add up
    gates_x = nn.functional.linear(x, rnn.weight_ih_l0, bias)
    outputs = GRURecurrence.apply(gates_x.unsqueeze(0), hidden, rnn.weight_hh_l0.unsqueeze(0),
                                  b_hn.unsqueeze(0))[0][0]
    return outputs, outputs[:, -1].unsqueeze(0)


class RNNAgent(nn.Module):
    """Per-agent utility ``Q_i(tau_i, ·)``: Linear -> ReLU -> GRU -> Linear, shared by all agents.

    The GRU's weights live in a :class:`torch.nn.GRU` (torch's names and gate layout), but
    sequences run through :func:`gru_sequence`, so that a pack of runs with stacked weights
    (:mod:`marlrepro.core.stacked`) can batch them under ``torch.func.vmap``, which cuDNN's fused
    GRU does not support.
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
        out, hidden = gru_sequence(torch.relu(self.fc1(inputs)), hidden, self.rnn)
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
