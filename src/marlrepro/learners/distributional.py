"""DMIX (the DFAC framework, Sun et al. 2021, §4): distributional value decomposition with
implicit-quantile agents, a mean-shape mixer and the quantile Huber loss."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from marlrepro.buffer import Episodes
from marlrepro.config import TrainConfig
from marlrepro.controller import ObsSource
from marlrepro.envs.base import EnvSpec
from marlrepro.errors import ConfigError
from marlrepro.learners.quantile import quantile_huber_loss
from marlrepro.learners.value_decomposition import ValueDecompositionLearner


@dataclass
class Quantiles:
    """The online agents' return distributions over a batch of episodes: ``z`` [B, T+1, N, K, A]
    at the fractions ``taus`` [B, T+1, K], shared by the agents of an environment."""

    z: torch.Tensor
    taus: torch.Tensor


def taken_quantiles(z: torch.Tensor, actions: torch.Tensor, avail: torch.Tensor) -> torch.Tensor:
    """``Z_i(τ_k, u_i)`` of the actions ``actions`` [B, T, N] from ``z`` [B, T, N, K, A] -> [B, T, N, K];
    0 where an agent has no available action (padding), as
    :meth:`ValueDecompositionLearner.joint_value` does."""
    index = actions[..., None, None].expand(*z.shape[:-1], 1)
    chosen = z.gather(-1, index).squeeze(-1)
    return torch.where(avail.any(dim=-1, keepdim=True), chosen, 0.0)


class DistributionalLearner(ValueDecompositionLearner):
    """DMIX: learns the joint return distribution ``Z_tot(τ)`` of the mixed agents' quantiles.

    Each step samples ``N`` fractions ``τ ~ U(0, 1)`` per environment (shared by its agents); the
    online agents' quantiles of the taken actions are mixed by the
    :class:`~marlrepro.nets.dmix.DMixer` into ``Z_tot(τ)`` [B, T, N]. The target samples are
    ``r + γ (1 − d) Z'_tot(τ')`` at ``N'`` independent fractions ``τ'``, from the target networks
    at the bootstrap action: the greedy available action by the mean over quantiles, of the
    target's own quantiles or, with double Q, of the online ones (IGM-DA's DAgger passes its
    learners' values). The loss is the quantile Huber loss (κ = 1, mean over ``N'``, sum over ``N``) over
    real steps. Targets are one-step (DFAC); the config rejects ``td_lambda > 0``.
    """

    def __init__(self, spec: EnvSpec, config: TrainConfig, device: torch.device, source: ObsSource = "obs") -> None:
        if config.learner.td_lambda > 0:
            raise ConfigError(f"learner.td_lambda: dmix uses one-step targets; got {config.learner.td_lambda}")
        super().__init__(spec, config, device, source)

    def agent_outputs(self, batch: Episodes) -> Quantiles:
        """The online agents' quantiles at ``N`` fractions sampled per environment and step."""
        b, steps = batch.obs.shape[:2]
        taus = torch.rand(b, steps, self.controller.config.n_quantiles, device=batch.obs.device)
        controller = self.controller
        return Quantiles(controller.quantile_sequence(controller.observe(batch), batch.actions,
                                                      batch.avail_actions, taus), taus)

    def expected_values(self, outputs: Quantiles) -> torch.Tensor:
        """``Q_i(u) = mean_k Z_i(τ_k, u)`` over the sampled fractions: [B, T+1, N, A]."""
        return outputs.z.mean(dim=-2)

    def joint_value(
        self, mixer: nn.Module | None, q: torch.Tensor, actions: torch.Tensor, avail: torch.Tensor,
        states: torch.Tensor,
    ) -> torch.Tensor:
        """``E[Z_tot]`` [B, T, 1] of the joint action ``actions`` from the agents' expected values
        ``q`` [B, T, N, A]: ``QMIX(E[Z_1], …, E[Z_N]; s)``, the mixer of point masses."""
        chosen = taken_quantiles(q.unsqueeze(-2), actions, avail)  # [B, T, N, 1]
        return mixer(chosen, states)

    def td_loss(
        self, batch: Episodes, outputs: Quantiles, selector_q: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Quantile Huber loss of ``Z_tot(τ)`` against one-step target samples; returns
        (loss, mean of Z_tot taken, mean target), the means over real steps and quantiles."""
        cfg = self.config
        avail = batch.avail_actions
        with torch.no_grad():
            target = self.target_controller
            taus = torch.rand(*avail.shape[:2], target.config.n_target_quantiles, device=avail.device)
            target_z = target.quantile_sequence(target.observe(batch), batch.actions, avail, taus)
            selector = selector_q if cfg.double_q else target_z.mean(dim=-2)
            best = selector.masked_fill(~avail, float("-inf")).argmax(dim=-1)  # [B, T+1, N]
            next_tot = self.target_mixer(taken_quantiles(target_z, best, avail), batch.state)  # [B, T+1, N']
            not_done = 1 - batch.terminated.unsqueeze(-1)
            targets = batch.reward.unsqueeze(-1) + cfg.gamma * not_done * next_tot[:, 1:]  # [B, T, N']

        taken = taken_quantiles(outputs.z[:, :-1], batch.actions, avail[:, :-1])
        z_tot = self.mixer(taken, batch.state[:, :-1])  # [B, T, N]
        mask = batch.filled
        loss = quantile_huber_loss(z_tot, outputs.taus[:, :-1], targets, mask)
        denom = mask.sum()
        return loss, (z_tot.mean(dim=-1) * mask).sum() / denom, (targets.mean(dim=-1) * mask).sum() / denom
