"""IQL, VDN and QMIX learners on episode batches (pymarl2's ``NQLearner``)."""

from __future__ import annotations

import copy

import torch
from torch import nn

from marlrepro.buffer import Episodes
from marlrepro.config import TrainConfig
from marlrepro.controller import AgentController, ObsSource, build_controller
from marlrepro.envs.base import EnvSpec
from marlrepro.learners.base import Learner, LossTerms
from marlrepro.learners.targets import td_lambda_targets
from marlrepro.nets.mixers import build_mixer
from marlrepro.nets.qplex import QPLEXMixer


class ValueDecompositionLearner(Learner):
    """Q-learning of a factored joint action-value.

    The loss is ``w · E[(Q_tot(τ, u; s) − sg[G^λ])²]``, the mean over real (unpadded) steps
    (and over agents for IQL), with ``w = td_weight``: ½ in pymarl2's learners, 1 in pymarl's
    and the IGM-DA authors'. Here
    ``Q_tot = f(Q_1(τ_1, u_1), …, Q_N(τ_N, u_N); s)`` with ``f`` the mixer (sum for VDN, QMIX's
    monotone hypernetwork, none for IQL, which regresses each agent to the team reward), and
    ``G^λ`` the TD(λ) return bootstrapped from target networks. With double Q the bootstrap
    action is the online network's greedy available action, evaluated by the target network
    (van Hasselt et al. 2016).
    """

    def __init__(
        self, spec: EnvSpec, config: TrainConfig, device: torch.device, source: ObsSource = "obs"
    ) -> None:
        super().__init__()
        self.spec = spec
        self.config = config.learner
        self.target_polyak = config.learner.target_polyak  # None: hard copies every target_update_interval
        self.controller = self.make_controller(spec, config, source)
        self.mixer = build_mixer(config.algo, spec.n_agents, spec.n_actions, spec.state_dim, config.mixer)
        self.target_controller = copy.deepcopy(self.controller).requires_grad_(False)
        self.target_mixer = copy.deepcopy(self.mixer)
        if self.target_mixer is not None:
            self.target_mixer.requires_grad_(False)
        self.to(device)

    def make_controller(self, spec: EnvSpec, config: TrainConfig, source: ObsSource) -> AgentController:
        """The online agents (their target copy is made from them)."""
        return build_controller(spec, config.agent, source, config.algo)

    def mixer_inputs(self, q: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        """The per-agent values [..., N, A] whose taken entries the mixer mixes: the agents' own."""
        return q

    @property
    def target_pairs(self) -> tuple[tuple[str, str], ...]:
        """The target networks and the online networks they copy."""
        pairs = (("target_controller", "controller"),)
        return (*pairs, ("target_mixer", "mixer")) if self.mixer is not None else pairs

    def joint_value(
        self, mixer: nn.Module | None, q: torch.Tensor, actions: torch.Tensor, avail: torch.Tensor,
        states: torch.Tensor,
    ) -> torch.Tensor:
        """``Q_tot`` [B, T, K] of the joint action ``actions`` [B, T, N] from the agents' value
        vectors ``q`` [B, T, N, A]: the mixed value (K = 1) or, for IQL, the agents' own (K = N).

        Steps where an agent has no available action (padding) contribute a value of 0. QPLEX's
        mixer also reads each agent's best available value and the joint action itself.
        """
        real = avail.any(dim=-1)
        chosen = torch.where(real, q.gather(-1, actions.unsqueeze(-1)).squeeze(-1), 0.0)
        if mixer is None:
            return chosen
        if isinstance(mixer, QPLEXMixer):
            best = q.detach().masked_fill(~avail, float("-inf")).max(dim=-1).values
            return mixer(chosen, states, actions, torch.where(real, best, chosen.detach()))
        return mixer(chosen, states)

    @property
    def acting_controller(self) -> AgentController:
        """The agents that collect training episodes."""
        return self.controller

    @property
    def eval_controller(self) -> AgentController:
        """The decentralised agents that are evaluated (and deployed)."""
        return self.controller

    def eval_controllers(self) -> dict[str, AgentController]:
        return {"test": self.eval_controller}

    def forward(self, batch: Episodes, t_env: torch.Tensor) -> LossTerms:
        """The loss of :meth:`loss` (no schedule: ``t_env`` is not used)."""
        return LossTerms(*self.loss(batch))

    def loss(self, batch: Episodes) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The masked TD(λ) loss of one batch; returns (loss, mean Q taken, mean target)."""
        outputs = self.agent_outputs(batch)
        return self.td_loss(batch, outputs, self.expected_values(outputs).detach())

    def agent_outputs(self, batch: Episodes) -> torch.Tensor:
        """What the online agents output over ``batch`` for :meth:`td_loss`: Q [B, T+1, N, A]."""
        return self.controller.sequence(self.controller.observe(batch), batch.actions, batch.avail_actions)

    def expected_values(self, outputs: torch.Tensor) -> torch.Tensor:
        """The agents' action values [B, T+1, N, A] from :meth:`agent_outputs` (here the same)."""
        return outputs

    def td_loss(
        self, batch: Episodes, q: torch.Tensor, selector_q: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """TD(λ) loss of the online agent values ``q`` [B, T+1, N, A] through the mixer.

        With double Q, the bootstrap action is the greedy available action of ``selector_q``
        (the online values themselves; IGM-DA's DAgger passes its learners' values), evaluated by the
        target networks; without, the target networks' own greedy available action.
        Returns (loss, mean Q taken, mean target).
        """
        cfg = self.config
        rewards = batch.reward.unsqueeze(-1)
        terminated = batch.terminated.unsqueeze(-1)
        mask = batch.filled.unsqueeze(-1)
        avail = batch.avail_actions
        with torch.no_grad():
            target = self.target_controller
            target_q = target.sequence(target.observe(batch), batch.actions, avail)
            selector = selector_q if cfg.double_q else target_q
            best = self.controller.greedy(selector, avail)  # [B, T+1, N]
            target_tot = self.joint_value(self.target_mixer, target_q, best, avail, batch.state)
            targets = td_lambda_targets(rewards, terminated, mask, target_tot, cfg.gamma, cfg.td_lambda)

        q_tot = self.joint_value(self.mixer, q[:, :-1], batch.actions, avail[:, :-1], batch.state[:, :-1])
        td_error = (q_tot - targets) * mask
        denom = mask.sum() * q_tot.shape[-1]
        loss = cfg.td_weight * td_error.pow(2).sum() / denom
        return loss, (q_tot * mask).sum() / denom, (targets * mask).sum() / denom
