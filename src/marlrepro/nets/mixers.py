"""Mixing networks ``Q_tot = f(Q_1..Q_N; s)`` for value decomposition."""

from __future__ import annotations

from itertools import pairwise

import torch
from torch import nn

from marlrepro.config import HYPERNET_LAYERS, MixerConfig
from marlrepro.errors import unknown_choice


class VDNMixer(nn.Module):
    """VDN (Sunehag et al. 2018, Eq. 1): ``Q_tot = sum_i Q_i``."""

    def forward(self, agent_qs: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        """``agent_qs`` [B, T, N] -> ``Q_tot`` [B, T, 1]."""
        return agent_qs.sum(dim=-1, keepdim=True)


class SingleOutputLinear(nn.Linear):
    """``nn.Linear(in_features, 1)`` computed as a dot product, ``y = x·w + b``.

    For a single output torch multiplies with a matrix-vector kernel, whose rounding differs from
    the batched matmul that a pack of runs (:mod:`marlrepro.core.stacked`) uses; a packed run
    would then not equal the same run alone. The elementwise product and sum round the same way
    in both."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * self.weight[0]).sum(dim=-1, keepdim=True) + self.bias


def linear(in_dim: int, out_dim: int) -> nn.Linear:
    """A linear layer; :class:`SingleOutputLinear` for one output."""
    return SingleOutputLinear(in_dim, 1) if out_dim == 1 else nn.Linear(in_dim, out_dim)


def _hypernet(in_dim: int, hidden: int, out_dim: int, layers: int) -> nn.Module:
    """``layers`` linear layers ``in_dim -> hidden -> … -> out_dim`` with ReLU between them
    (pymarl's hypernetworks: 1 or 2 layers; QPLEX's attention heads: up to 3)."""
    dims = [in_dim, *[hidden] * (layers - 1), out_dim]
    modules: list[nn.Module] = []
    for i, (a, b) in enumerate(pairwise(dims)):
        modules += [nn.ReLU(), linear(a, b)] if i else [linear(a, b)]
    return modules[0] if layers == 1 else nn.Sequential(*modules)


class QMixer(nn.Module):
    """QMIX (Rashid et al. 2018, §4.2): a monotone mixing network whose weights come from
    hypernetworks of the state.

    ``Q_tot = w2(s)ᵀ ELU(W1(s)ᵀ Q + b1(s)) + V(s)`` with ``W1 = |hyper_w1(s)|`` and
    ``w2 = |hyper_w2(s)|`` non-negative, so ``∂Q_tot/∂Q_i ≥ 0`` (Eq. 5).
    """

    def __init__(self, n_agents: int, state_dim: int, config: MixerConfig) -> None:
        super().__init__()
        self.n_agents = n_agents
        self.embed_dim = config.embed_dim
        e, h, layers = config.embed_dim, config.hypernet_embed, config.hypernet_layers
        if layers not in HYPERNET_LAYERS:
            raise unknown_choice("mixer.hypernet_layers", layers, HYPERNET_LAYERS)
        self.hyper_w1 = _hypernet(state_dim, h, e * n_agents, layers)
        self.hyper_w2 = _hypernet(state_dim, h, e, layers)
        self.hyper_b1 = nn.Linear(state_dim, e)
        self.hyper_v = nn.Sequential(nn.Linear(state_dim, e), nn.ReLU(), linear(e, 1))

    def forward(self, agent_qs: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        """``agent_qs`` [B, T, N], ``states`` [B, T, S] -> ``Q_tot`` [B, T, 1]."""
        b, t, n = agent_qs.shape
        s = states.reshape(b * t, -1)
        qs = agent_qs.reshape(b * t, 1, n)
        w1 = self.hyper_w1(s).abs().view(b * t, n, self.embed_dim)
        b1 = self.hyper_b1(s).view(b * t, 1, self.embed_dim)
        hidden = nn.functional.elu(torch.bmm(qs, w1) + b1)
        w2 = self.hyper_w2(s).abs().view(b * t, self.embed_dim, 1)
        v = self.hyper_v(s).view(b * t, 1, 1)
        return (torch.bmm(hidden, w2) + v).view(b, t, 1)


def build_mixer(
    algo: str, n_agents: int, n_actions: int, state_dim: int, config: MixerConfig
) -> nn.Module | None:
    """The mixer of ``algo``; IQL has none (each agent learns its own TD target). DMIX's mixes
    return distributions (quantiles), the others values."""
    if algo in ("iql", "joint_dqn"):  # joint_dqn: one centralised agent, its value is Q_tot
        return None
    if algo == "vdn":
        return VDNMixer()
    if algo == "qmix":
        return QMixer(n_agents, state_dim, config)
    if algo == "qplex":
        from marlrepro.nets.qplex import (
            QPLEXMixer,  # qplex imports this module's hypernetwork
        )

        return QPLEXMixer(n_agents, n_actions, state_dim, config, adv_hypernet_layers=config.adv_hypernet_layers,
                          adv_hypernet_embed=config.adv_hypernet_embed, num_kernel=config.num_kernel)
    if algo == "dmix":
        from marlrepro.nets.dmix import DMixer  # dmix builds on this module's QMixer

        return DMixer(n_agents, state_dim, config)
    raise ValueError(f"algo: no mixer for {algo!r}")
