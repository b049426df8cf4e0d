"""MAPPO and IPPO (Yu et al. 2022; de Witt et al. 2020): PPO with recurrent actors and critics,
the on-policy actor-critic baselines of ME-IGM's Table 2 and MIFQ's experts (notes/actor_critic.md).

One run's networks: the actor, a GRU softmax policy ``π_i(·|τ_i)`` shared by the agents (on the
observation, plus the last action and the agent's id where ``agent`` asks for them; MAPPO's
recipe asks for neither: :class:`~marlrepro.controller.SoftmaxPolicyController` at temperature
1, so its JAX twin samples it in the fused rollout), a
GRU critic ``V_i`` per agent (:class:`RecurrentCritic`; MAPPO's on the global state, IPPO's on
the agent's observation alone) and frozen copies of both: the networks that collected the
rollout, which the core refreshes before each rollout's updates (``behaviour_pairs``).

An update on episodes of the last rollout (``ppo``, :class:`~marlrepro.config.PPOConfig`):

* advantages by GAE on the behaviour critic's values (:func:`~marlrepro.learners.targets.
  gae_advantages`), standardised over the live agents; returns ``R_t = A_t + V_old(t)``;
* the actor's clipped surrogate (Schulman et al. 2017, eq. 7) minus the entropy bonus, over the
  live agents of the filled steps (:func:`live_agents`: the death mask);
* the critic's squared error to ``R_t``, its change clipped around ``V_old`` as MAPPO's code
  does (``max((V − R)², (clip(V, V_old ± c) − R)²)``), over the filled steps.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from marlrepro.buffer import Episodes
from marlrepro.config import CriticInput, TrainConfig
from marlrepro.controller import SoftmaxPolicyController
from marlrepro.envs.base import EnvSpec
from marlrepro.learners.base import ActorCriticLearner, LossTerms, ParamGroup
from marlrepro.learners.max_entropy import masked_log_policy, policy_entropy
from marlrepro.learners.targets import gae_advantages
from marlrepro.nets.agent import RNNAgent

# an advantage scale is at least this (a batch whose advantages are all equal)
ADVANTAGE_STD_FLOOR = 1e-5


class RecurrentCritic(nn.Module):
    """``V_i(τ_i^t)`` for every agent: Linear → ReLU → GRU → Linear(1), shared by the agents, on
    ``[s_t, o_i^t, onehot(i)]`` (``state``: MAPPO's centralised critic, as the SMACv2 paper's
    recipe) or ``[o_i^t, onehot(i)]`` (``obs``: IPPO's)."""

    def __init__(self, spec: EnvSpec, hidden_dim: int, source: CriticInput) -> None:
        super().__init__()
        self.source = source
        input_dim = spec.obs_dim + spec.n_agents + (spec.state_dim if source == "state" else 0)
        self.net = RNNAgent(input_dim, hidden_dim, 1)
        self.register_buffer("agent_ids", torch.eye(spec.n_agents), persistent=False)

    def forward(self, batch: Episodes) -> torch.Tensor:
        """Values [B, T+1, N] over whole episodes from a zero hidden state."""
        obs = batch.obs
        b, t, n = obs.shape[:3]
        parts = [obs, self.agent_ids.expand(b, t, n, n)]
        if self.source == "state":
            parts.insert(0, batch.state.unsqueeze(-2).expand(b, t, n, batch.state.shape[-1]))
        rows = torch.cat(parts, dim=-1).transpose(1, 2).reshape(b * n, t, -1)
        values, _ = self.net(rows, self.net.initial_hidden(b * n, obs.device))
        return values.view(b, n, t).transpose(1, 2)


def clipped_surrogate(ratio: torch.Tensor, advantages: torch.Tensor, clip: float) -> torch.Tensor:
    """PPO's per-sample loss ``−min(ρ A, clip(ρ, 1 − ε, 1 + ε) A)`` (Schulman et al. 2017, eq. 7).

    Its gradient in ``ρ`` is ``−A`` except where the clipped term is the smaller: ``ρ > 1 + ε``
    with ``A > 0``, or ``ρ < 1 − ε`` with ``A < 0``; there it is 0."""
    return -torch.minimum(ratio * advantages, ratio.clamp(1 - clip, 1 + clip) * advantages)


def clipped_value_error(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor,
                        clip: float) -> torch.Tensor:
    """The critic's per-sample loss: ``max((V − R)², (V_old + clip(V − V_old, ±c) − R)²)``
    (MAPPO's clipped value loss); ``c = 0`` gives the plain ``(V − R)²``."""
    error = (values - returns).pow(2)
    if clip == 0:
        return error
    clipped = old_values + (values - old_values).clamp(-clip, clip)
    return torch.maximum(error, (clipped - returns).pow(2))


def live_agents(avail: torch.Tensor) -> torch.Tensor:
    """The death mask [..., N] from the available actions [..., N, A]: 0 for a dead agent, which
    has a single available action (SMAC's no-op; stock SMAX's stop), else 1. A live unit can
    always stop and move, so it has at least two; matrix games, MPE and Overcooked offer every
    action at every step."""
    return (avail.sum(dim=-1) > 1).to(torch.float32)


class PPOLearner(ActorCriticLearner):
    """MAPPO / IPPO (module docstring)."""

    behaviour_pairs = (("behaviour_actor", "actor"), ("behaviour_critic", "critic"))
    update_scalars = ("entropy", "clip_fraction")

    def __init__(self, spec: EnvSpec, config: TrainConfig, device: torch.device) -> None:
        super().__init__()
        self.spec = spec
        self.config = config.learner
        self.ppo = config.ppo
        self.t_max = config.run.t_max
        self.actor = SoftmaxPolicyController(spec, config.agent, transform=None, alpha_init=1.0,
                                             learn_temperature=False)
        self.critic = RecurrentCritic(spec, config.agent.hidden_dim, config.ppo.critic_input)
        self.behaviour_actor = copy.deepcopy(self.actor).requires_grad_(False)
        self.behaviour_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.to(device)

    def param_groups(self) -> tuple[ParamGroup, ...]:
        """The actor at ``learner.lr`` and the critic at ``ppo.critic_lr``, each clipped on its own
        (two optimisers in MAPPO's code)."""
        return (ParamGroup("actor.", self.config.lr, clip_alone=True),
                ParamGroup("critic.", self.ppo.critic_lr, clip_alone=True))

    def lr_scale(self, t_env: torch.Tensor) -> torch.Tensor:
        """``1 − t / t_max`` with ``ppo.lr_decay`` (MAPPO's linear decay to 0), else 1."""
        if not self.ppo.lr_decay:
            return torch.ones_like(t_env)
        return (1 - t_env / self.t_max).clamp(min=0.0)

    def forward(self, batch: Episodes, t_env: torch.Tensor) -> LossTerms:
        cfg, ppo = self.config, self.ppo
        mask = batch.filled.unsqueeze(-1)  # [B, T, 1]
        avail, actions = batch.avail_actions, batch.actions
        live = live_agents(avail[:, :-1]) * mask  # [B, T, N]
        log_pi = masked_log_policy(self.actor.sequence(self.actor.observe(batch), actions, avail), avail, 1.0)
        log_pi = log_pi[:, :-1]
        values = self.critic(batch)
        with torch.no_grad():
            old_logits = self.behaviour_actor.sequence(self.behaviour_actor.observe(batch), actions, avail)
            old_log_pi = masked_log_policy(old_logits, avail, 1.0)[:, :-1]
            old_values = self.behaviour_critic(batch)
            advantages = gae_advantages(batch.reward.unsqueeze(-1), batch.terminated.unsqueeze(-1), mask,
                                        old_values, cfg.gamma, cfg.td_lambda)
            returns = advantages + old_values[:, :-1]
            if ppo.advantage_norm:
                count = live.sum().clamp(min=1.0)
                mean = (advantages * live).sum() / count
                std = (((advantages - mean) * live).pow(2).sum() / count).sqrt()
                advantages = (advantages - mean) / std.clamp(min=ADVANTAGE_STD_FLOOR)

        taken = log_pi.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
        old_taken = old_log_pi.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
        ratio = (taken - old_taken).exp()
        live_count = live.sum().clamp(min=1.0)
        actor_loss = (clipped_surrogate(ratio, advantages, ppo.clip) * live).sum() / live_count
        entropy = (policy_entropy(log_pi) * live).sum() / live_count
        steps = mask.sum().clamp(min=1.0) * values.shape[-1]
        value_error = clipped_value_error(values[:, :-1], old_values[:, :-1], returns, ppo.value_clip)
        critic_loss = (value_error * mask).sum() / steps
        with torch.no_grad():
            clipped = ((ratio - 1).abs() > ppo.clip).float()
            clip_fraction = (clipped * live).sum() / live_count
        return LossTerms(actor_loss - ppo.entropy_coef * entropy + critic_loss,
                         (values[:, :-1] * mask).sum() / steps, (returns * mask).sum() / steps,
                         logged={"entropy": entropy.detach(), "clip_fraction": clip_fraction})
