"""DMIX: the distributional QMIX of the DFAC framework (Sun et al. 2021, §4)."""

from __future__ import annotations

import torch
from torch import nn

from marlrepro.config import MixerConfig
from marlrepro.nets.mixers import QMixer


class DMixer(nn.Module):
    """Mean-shape decomposition of the joint return distribution (DFAC §4).

    ``Z_tot(τ) = Σ_i (Z_i(τ) − E_τ[Z_i]) + QMIX([E_τ[Z_i]]_i; s)``: the mean of each agent's
    distribution (estimated by the mean over the sampled fractions) is mixed by a
    :class:`~marlrepro.nets.mixers.QMixer`, and the shape, which has zero mean, is summed. Hence
    ``E_τ[Z_tot] = QMIX(E_τ[Z_1], …, E_τ[Z_N]; s)``, monotone in each agent's mean, so greedy
    local actions on the agents' means maximise ``E[Z_tot]`` (DIGM). All agents must share the
    sampled fractions ``τ``.
    """

    def __init__(self, n_agents: int, state_dim: int, config: MixerConfig) -> None:
        super().__init__()
        self.mean_mixer = QMixer(n_agents, state_dim, config)

    def forward(self, agent_zs: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        """``agent_zs`` [B, T, N, K] (``Z_i(τ_k)``, quantiles last), ``states`` [B, T, S]
        -> ``Z_tot`` [B, T, K]."""
        means = agent_zs.mean(dim=-1)  # [B, T, N]
        shape = (agent_zs - means.unsqueeze(-1)).sum(dim=-2)  # [B, T, K]
        return shape + self.mean_mixer(means, states)
