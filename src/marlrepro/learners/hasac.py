"""HASAC (Liu et al. 2024, "Maximum Entropy Heterogeneous-Agent Reinforcement Learning", §4;
PKU-MARL/HARL ``off_policy_ha_runner.py``, ``hasac.py``, ``soft_twin_continuous_q_critic.py``;
notes/actor_critic.md) for discrete actions: ME-IGM Table 2's off-policy actor-critic baseline.

One run's networks: each agent's own softmax policy ``π_i(·|o_i)``, an MLP on its observation
(:class:`~marlrepro.controller.PerAgentPolicyController`), a twin soft critic
``Q¹, Q²(s, u)`` on the state and the one-hot joint action (:class:`TwinSoftCritic`), its
Polyak-averaged target copy, each agent's temperature ``α_i`` and the critic's ``α``.

An update draws one batch and takes ``1 + N`` gradient steps on it (the core's update phases,
:attr:`~marlrepro.learners.base.Learner.update_phases`):

* phase 0, the critic: ``Σ_k E[(Q^k(s_t, u_t) − y_t)²]`` over the filled steps, with the ``n``-step
  soft target (:func:`~marlrepro.learners.targets.n_step_targets`) of
  ``V(s') = min_k Q^k'(s', u') − α Σ_i log π_i(u'_i|o'_i)``, ``u' ~ π``; and the critic's
  temperature towards the joint target entropy ``Σ_i H̄_i`` (HARL's ``update_alpha``);
* phases 1…N, the agents in an order drawn afresh for each update (:meth:`update_order`): agent
  ``i`` minimises ``E[α_i log π_i(u_i|o_i) − min_k Q^k(s, u_i, u_{−i})]`` over the steps where it
  is alive, its action a straight-through Gumbel-softmax sample (HARL's discrete actions) and the
  others' actions samples of their current policies; agents earlier in the order have already
  been updated, so theirs come from the updated policies, as HARL's re-sampling after each
  agent's step gives; then ``α_i`` towards ``H̄_i = 0.98 log |A_i(s)|`` over the actions
  available to it (SAC-discrete's target, :func:`discrete_target_entropy`; HARL computes 0 from
  the Discrete space's empty shape, notes/actor_critic.md).

Each set of weights steps only in its own phase, with an optimiser state of its own, and none is
clipped (HARL clips nothing). Deaths: an agent with a single available action is dead
(:func:`~marlrepro.learners.ppo.live_agents`); its steps weigh nothing in its losses.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from marlrepro.buffer import Episodes
from marlrepro.config import TrainConfig
from marlrepro.controller import PerAgentPolicyController
from marlrepro.envs.base import EnvSpec
from marlrepro.learners.base import ActorCriticLearner, LossTerms, ParamGroup
from marlrepro.learners.gumbel import gumbel_softmax
from marlrepro.learners.max_entropy import (
    masked_log_policy,
    policy_entropy,
    temperature_loss,
)
from marlrepro.learners.ppo import live_agents
from marlrepro.learners.targets import n_step_targets
from marlrepro.nets.stacked_mlp import StackedMLP


def discrete_target_entropy(n_available: torch.Tensor, scale: float) -> torch.Tensor:
    """The target entropy of a policy over ``n_available`` actions [...] (those available in each
    state): ``scale · log |A(s)|`` nats, a fraction of the uniform policy's, the most entropy it
    can have there (SAC-discrete's target, Christodoulou 2019; HARL's formula
    ``−scale · log(1 / |A|)``). With every action available it is ``scale · log |A|``; a target over
    all actions could not be reached where some are masked, and the temperature would grow
    without bound (docs/deviations.md)."""
    return scale * torch.log(n_available.clamp(min=1).to(torch.float32))


class TwinSoftCritic(nn.Module):
    """Two soft Q functions ``Q^k(s, u)`` on the state and the concatenated one-hot actions of
    all agents (HARL's ``SoftTwinContinuousQCritic`` on the environment's state): plain MLPs,
    evaluated as two copies of one :class:`~marlrepro.nets.stacked_mlp.StackedMLP`."""

    def __init__(self, spec: EnvSpec, hidden_dim: int) -> None:
        super().__init__()
        self.nets = StackedMLP(2, spec.state_dim + spec.n_agents * spec.n_actions, hidden_dim, 1,
                               layer_norm=False)

    def forward(self, state: torch.Tensor, joint_onehot: torch.Tensor) -> torch.Tensor:
        """``state`` [..., S], ``joint_onehot`` [..., N, A] -> both critics' values [..., 2]."""
        x = torch.cat([state, joint_onehot.flatten(-2)], dim=-1).unsqueeze(-2)
        return self.nets(x.expand(*x.shape[:-2], 2, x.shape[-1])).squeeze(-1)


class HASACLearner(ActorCriticLearner):
    """HASAC (module docstring)."""

    target_pairs = (("target_critic", "critic"),)
    update_scalars = ("alpha", "entropy")

    def __init__(self, spec: EnvSpec, config: TrainConfig, device: torch.device) -> None:
        super().__init__()
        self.spec = spec
        self.config = config.learner
        self.hasac = config.hasac
        self.update_phases = 1 + spec.n_agents
        self.update_stages = (0,) + (1,) * spec.n_agents  # the critic's phase, then the agents'
        self.target_polyak = config.hasac.polyak
        self.actor = PerAgentPolicyController(spec, config.agent)
        self.critic = TwinSoftCritic(spec, config.agent.hidden_dim)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        log_alpha = math.log(config.hasac.alpha_init)
        learned = config.hasac.auto_alpha
        self.log_alphas = nn.Parameter(torch.full((spec.n_agents,), log_alpha), requires_grad=learned)
        self.critic_log_alpha = nn.Parameter(torch.tensor(log_alpha), requires_grad=learned)
        self.to(device)

    def update_order(self, generator: torch.Generator) -> torch.Tensor:
        """The critic first (phase 0), then the agents' phases ``1 + i`` in a random order (HARL's
        ``np.random.permutation`` per update; ``fixed_order`` false)."""
        agents = torch.randperm(self.spec.n_agents, generator=generator, device=generator.device)
        return torch.cat([torch.zeros(1, dtype=agents.dtype, device=agents.device), 1 + agents])

    def param_groups(self) -> tuple[ParamGroup, ...]:
        """The critic and its temperature train in phase 0; agent ``i``'s policy (at
        ``learner.lr``) and temperature in phase ``1 + i``; the temperatures at ``alpha_lr``."""
        hasac = self.hasac
        return (ParamGroup("critic.", hasac.critic_lr, clip=False, phase=0),
                ParamGroup("critic_log_alpha", hasac.alpha_lr, clip=False, phase=0),
                ParamGroup("actor.", self.config.lr, clip=False, phase=1, per_agent=True),
                ParamGroup("log_alphas", hasac.alpha_lr, clip=False, phase=1, per_agent=True))

    def forward(self, batch: Episodes, t_env: torch.Tensor, phase: torch.Tensor, stage: int) -> LossTerms:
        """The loss of update ``phase``: stage 0 is the critic's phase (0), stage 1 an agent's
        (``1 + i``); each stage computes only its own terms (its actors' forward pass without
        a gradient in the critic's)."""
        mask = batch.filled  # [B, T]
        avail = batch.avail_actions
        with torch.set_grad_enabled(stage == 1 and torch.is_grad_enabled()):
            logits = self.actor.sequence(self.actor.observe(batch), batch.actions, avail)
            log_pi = masked_log_policy(logits, avail, 1.0)  # [B, T+1, N, A]
        live = live_agents(avail[:, :-1], self.spec) * mask.unsqueeze(-1)  # [B, T, N]
        target_entropy = discrete_target_entropy(avail[:, :-1].sum(dim=-1), self.hasac.target_entropy_scale)
        if stage == 0:
            loss, q_taken_mean, target_mean = self._critic_loss(batch, log_pi, target_entropy)
        else:
            loss = self._agent_loss(batch, log_pi, live, target_entropy, phase - 1)
            q_taken_mean = target_mean = torch.full((), math.nan, device=loss.device)  # the critic's phase measures them
        with torch.no_grad():
            entropy = (policy_entropy(log_pi[:, :-1]) * live).sum() / live.sum().clamp(min=1.0)
        return LossTerms(loss, q_taken_mean, target_mean,
                         logged={"alpha": self.log_alphas.exp().mean().detach(), "entropy": entropy})

    def _critic_loss(self, batch: Episodes, log_pi: torch.Tensor, target_entropy: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Phase 0: the twin critic's squared error to the ``n``-step soft target, plus its
        temperature's loss towards the joint target entropy; with the mean ``min_k Q^k`` of the
        taken actions and the mean target, over the filled steps."""
        mask, state = batch.filled, batch.state
        critic_alpha = self.critic_log_alpha.exp()
        with torch.no_grad():
            next_actions = gumbel_softmax(log_pi, hard=True)
            next_log_pi = (next_actions * log_pi).sum(dim=-1).sum(dim=-1)  # Σ_i log π_i(u'_i), [B, T+1]
            soft_values = self.target_critic(state, next_actions).min(dim=-1).values - critic_alpha * next_log_pi
            targets = n_step_targets(batch.reward, batch.terminated, mask, soft_values, self.config.gamma,
                                     self.hasac.n_step)
        taken = nn.functional.one_hot(batch.actions, self.spec.n_actions).to(log_pi.dtype)
        q_taken = self.critic(state[:, :-1], taken)  # [B, T, 2]
        steps = mask.sum().clamp(min=1.0)
        critic_loss = ((q_taken - targets.unsqueeze(-1)).pow(2) * mask.unsqueeze(-1)).sum() / steps
        joint_entropy = -next_log_pi[:, :-1]
        critic_alpha_loss = temperature_loss(self.critic_log_alpha, joint_entropy, target_entropy.sum(dim=-1), mask)
        return (critic_loss + critic_alpha_loss, (q_taken.min(dim=-1).values * mask).sum() / steps,
                (targets * mask).sum() / steps)

    def _agent_loss(self, batch: Episodes, log_pi: torch.Tensor, live: torch.Tensor, target_entropy: torch.Tensor,
                    i: torch.Tensor) -> torch.Tensor:
        """Phase ``1 + i``: agent ``i``'s policy loss against the critic, its own action a
        straight-through sample and the others' detached samples, plus its temperature's loss;
        over the steps where it is alive."""
        agent = (torch.arange(self.spec.n_agents, device=i.device) == i).to(log_pi.dtype)  # one-hot of i
        sampled = gumbel_softmax(log_pi[:, :-1], hard=True)  # [B, T, N, A]
        own = agent[:, None]
        joint = own * sampled + (1 - own) * sampled.detach()  # only agent i's sample carries a gradient
        log_pi_i = ((sampled * log_pi[:, :-1]).sum(dim=-1) * agent).sum(dim=-1)  # [B, T]
        live_i = (live * agent).sum(dim=-1)
        alpha_i = (self.log_alphas.exp() * agent).sum()
        q_joint = self.critic(batch.state[:, :-1], joint).min(dim=-1).values
        live_count = live_i.sum().clamp(min=1.0)
        actor_loss = ((alpha_i.detach() * log_pi_i - q_joint) * live_i).sum() / live_count
        log_alpha_i = (self.log_alphas * agent).sum()
        alpha_loss = temperature_loss(log_alpha_i, -log_pi_i.detach(), (target_entropy * agent).sum(dim=-1), live_i)
        return actor_loss + alpha_loss
