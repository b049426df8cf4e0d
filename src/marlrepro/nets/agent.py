"""The shared recurrent agent network of pymarl (Rashid et al. 2018, §4; pymarl2 ``n_rnn``)."""

from __future__ import annotations

import torch
from torch import nn


def gru_sequence(x: torch.Tensor, hidden: torch.Tensor, rnn: nn.GRU) -> torch.Tensor:
    """Unroll ``rnn``'s one-layer GRU over ``x`` [M, T, H_in] from ``hidden`` [1, M, H]
    -> (outputs [M, T, H], final hidden [1, M, H]).

    The input projections of all ``T`` steps are one matmul; each step then adds the recurrent
    projection and applies torch's GRU equations (Cho et al. 2014):
    ``r = σ(W_ir x + b_ir + W_hr h + b_hr)``, ``z = σ(W_iz x + b_iz + W_hz h + b_hz)``,
    ``n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))``, ``h' = (1 − z) ⊙ n + z ⊙ h``.
    """
    # T tensors [M, 3H] by unbind, not by indexing gates_x[:, t] in the loop: the backward of an
    # index fills a zero tensor of gates_x's whole size every step (T² work), unbind's stacks once.
    # The r and z gates (the first 2H columns, torch's gate order) take one add and one sigmoid
    # over [M, 2H] instead of two each: the same values, elementwise, in fewer kernels.
    gates_x = nn.functional.linear(x, rnn.weight_ih_l0, rnn.bias_ih_l0).unbind(dim=1)
    h = hidden[0]
    width = h.shape[-1]
    outputs = []
    for x_t in gates_x:
        gates_h = nn.functional.linear(h, rnn.weight_hh_l0, rnn.bias_hh_l0)
        r, z = torch.sigmoid(x_t[..., : 2 * width] + gates_h[..., : 2 * width]).chunk(2, dim=-1)
        n = torch.tanh(x_t[..., 2 * width:] + r * gates_h[..., 2 * width:])
        h = (1 - z) * n + z * h
        outputs.append(h)
    return torch.stack(outputs, dim=1), h.unsqueeze(0)


class RNNAgent(nn.Module):
    """Per-agent utility ``Q_i(tau_i, ·)``: Linear -> ReLU -> GRU -> Linear, shared by all agents.

    The GRU's weights live in a :class:`torch.nn.GRU` (torch's names and gate layout), but
    sequences are unrolled by :func:`gru_sequence` with plain matmuls, so that a pack of runs
    with stacked weights (:mod:`marlrepro.pack`) can batch it under ``torch.func.vmap``, which
    cuDNN's fused GRU does not support.
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
