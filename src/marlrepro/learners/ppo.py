"""MAPPO and IPPO (Yu et al. 2022; de Witt et al. 2020): PPO with recurrent actors and critics,
the on-policy actor-critic baselines of ME-IGM's Table 2 and MIFQ's experts (notes/actor_critic.md).

One run's networks: the actor, a GRU softmax policy ``π_i(·|τ_i)`` shared by the agents (on the
observation, plus the last action and the agent's id where ``agent`` asks for them; MAPPO's
recipe asks for neither: :class:`~marlrepro.controller.SoftmaxPolicyController` at temperature
1, so its JAX twin samples it in the fused rollout), a
GRU critic ``V_i`` per agent (:class:`RecurrentCritic`, on the input ``ppo.critic_input`` names),
and frozen copies of both: the networks (and the critic's value normaliser) that collected the
rollout, which the core refreshes before each rollout's updates (``behaviour_pairs``).

An update on episodes of the last rollout (``ppo``, :class:`~marlrepro.config.PPOConfig`):

* advantages by GAE on the behaviour critic's values (:func:`~marlrepro.learners.targets.
  gae_advantages`) of the rewards :meth:`PPOLearner.rewards` gives (the team reward; MAGAIL's
  per-agent discriminator rewards), standardised over the live agents; returns
  ``R_t = A_t + V_old(t)``;
* the actor's clipped surrogate (Schulman et al. 2017, eq. 7) minus the entropy bonus, over the
  live agents of the filled steps (:func:`live_agents`: the death mask);
* the critic's loss to ``R_t``, its change clipped around ``V_old`` as MAPPO's code does
  (:func:`clipped_value_error`: ``½ e²`` or Huber's), over the filled steps and every agent (the
  on-policy scripts turn the value loss's death mask off).

With ``ppo.value_norm`` (on-policy's ValueNorm, :mod:`marlrepro.learners.value_norm`) the critic
predicts normalised values, and the update follows ``r_mappo.py`` and ``shared_buffer.py``:

* ``V_old`` is denormalised with the statistics the rollout was collected under (the behaviour
  critic's copy) for GAE and the returns;
* each update first moves the statistics on its batch's returns (filled steps, every agent), then
  fits the critic to the returns normalised with the moved statistics; clipping acts on the
  normalised values. With ``E`` updates per rollout the statistics move ``E`` times on the same
  rollout's returns, as on-policy's ``E`` epochs of one minibatch do. The moved statistics leave
  :meth:`PPOLearner.forward` in :attr:`~marlrepro.learners.base.LossTerms.buffers`; the core
  writes them back for the runs that took the step.
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
from marlrepro.learners.value_norm import ValueNorm
from marlrepro.nets.agent import RNNAgent

# an advantage scale is at least this (a batch whose advantages are all equal)
ADVANTAGE_STD_FLOOR = 1e-5


class RecurrentCritic(nn.Module):
    """``V_i(τ_i^t)`` for every agent: Linear → ReLU → GRU → Linear(1), shared by the agents, on
    ``source`` (``ppo.critic_input``):

    * ``state``: ``[s_t, o_i^t, onehot(i)]``, MAPPO's centralised critic as the SMACv2 paper's recipe;
    * ``agent_state``: ``[alive_i^t · s_t^{(i)}, onehot(i)]``, the agent-specific state
      (:func:`agent_state_index`);
    * ``obs``: ``[o_i^t, onehot(i)]``, IPPO's.

    With ``value_norm`` it holds the running statistics of its targets (:class:`ValueNorm`), so
    that a frozen copy of the critic keeps those it was collected under."""

    def __init__(self, spec: EnvSpec, hidden_dim: int, source: CriticInput, value_norm: bool) -> None:
        super().__init__()
        self.spec = spec
        self.source = source
        input_dim = spec.n_agents + {"state": spec.state_dim + spec.obs_dim, "agent_state": spec.state_dim,
                                     "obs": spec.obs_dim}[source]
        self.net = RNNAgent(input_dim, hidden_dim, 1)
        self.value_norm = ValueNorm() if value_norm else None
        self.register_buffer("agent_ids", torch.eye(spec.n_agents), persistent=False)
        if source == "agent_state":
            self.register_buffer("state_index", agent_state_index(spec.n_agents, spec.unit_dim, spec.state_dim),
                                 persistent=False)

    def inputs(self, batch: Episodes) -> torch.Tensor:
        """Each agent's input at every step [B, T+1, N, D]."""
        obs = batch.obs
        b, t, n = obs.shape[:3]
        ids = self.agent_ids.expand(b, t, n, n)
        if self.source == "agent_state":
            alive = live_agents(batch.avail_actions, self.spec).unsqueeze(-1)
            return torch.cat([batch.state[..., self.state_index] * alive, ids], dim=-1)
        if self.source == "state":
            return torch.cat([batch.state.unsqueeze(-2).expand(b, t, n, batch.state.shape[-1]), obs, ids], dim=-1)
        return torch.cat([obs, ids], dim=-1)

    def forward(self, batch: Episodes) -> torch.Tensor:
        """Values [B, T+1, N] over whole episodes from a zero hidden state."""
        inputs = self.inputs(batch)
        b, t, n = inputs.shape[:3]
        rows = inputs.transpose(1, 2).reshape(b * n, t, -1)
        values, _ = self.net(rows, self.net.initial_hidden(b * n, rows.device))
        return values.view(b, n, t).transpose(1, 2)


def agent_state_index(n_agents: int, unit_dim: int, state_dim: int) -> torch.Tensor:
    """The gather index [N, S] of each agent's view of the state: ``s^{(i)} = s[index[i]]`` is the
    state with ally ``i``'s block of ``unit_dim`` features first, the other allies' blocks after it
    in their order, and the rest of the state (enemies, last actions) unchanged.

    IMAX-PPO's critic input (vietbt/IMAXPPO ``envs/smac_env/smac_env.py``, ``fix_state``), to which
    :class:`RecurrentCritic` adds on-policy's parts of its agent-specific state
    (``StarCraft2_Env.get_state_agent``): the agent's one-hot id, and zeros for the state once the
    agent is dead (``use_mustalive``; the id stays, as there)."""
    agents = torch.arange(n_agents)
    k = torch.arange(n_agents - 1)
    others = k + (k >= agents[:, None]).long()  # [N, N-1]: the allies other than i, in order
    blocks = torch.cat([agents[:, None], others], dim=1)  # [N, N]: i first
    allies = (blocks[..., None] * unit_dim + torch.arange(unit_dim)).flatten(1)
    rest = torch.arange(n_agents * unit_dim, state_dim).expand(n_agents, -1)
    return torch.cat([allies, rest], dim=1)


def clipped_surrogate(ratio: torch.Tensor, advantages: torch.Tensor, clip: float) -> torch.Tensor:
    """PPO's per-sample loss ``−min(ρ A, clip(ρ, 1 − ε, 1 + ε) A)`` (Schulman et al. 2017, eq. 7).

    Its gradient in ``ρ`` is ``−A`` except where the clipped term is the smaller: ``ρ > 1 + ε``
    with ``A > 0``, or ``ρ < 1 − ε`` with ``A < 0``; there it is 0."""
    return -torch.minimum(ratio * advantages, ratio.clamp(1 - clip, 1 + clip) * advantages)


def clipped_value_error(values: torch.Tensor, old_values: torch.Tensor, targets: torch.Tensor, clip: float,
                        huber_delta: float | None) -> torch.Tensor:
    """The critic's per-sample loss ``max(ℓ(R − V), ℓ(R − V_clip))`` with ``V_clip = V_old +
    clip(V − V_old, ±c)`` (MAPPO's clipped value loss, on-policy's ``cal_value_loss``); ``c = 0``
    gives ``ℓ(R − V)`` alone. ``ℓ(e) = ½ e²`` (on-policy's ``mse_loss``; IMAX-PPO's MSE times its
    ``vf_coef`` 0.5), or with ``huber_delta`` δ Huber's ``½ e²`` for ``|e| ≤ δ``, else
    ``δ (|e| − ½ δ)`` (on-policy's ``huber_loss``), whose gradient in ``V`` is bounded by δ."""

    def loss(error: torch.Tensor) -> torch.Tensor:
        if huber_delta is None:
            return 0.5 * error.pow(2)
        return nn.functional.huber_loss(error, torch.zeros_like(error), reduction="none", delta=huber_delta)

    error = loss(targets - values)
    if clip == 0:
        return error
    clipped = old_values + (values - old_values).clamp(-clip, clip)
    return torch.maximum(error, loss(targets - clipped))


def live_agents(avail: torch.Tensor, spec: EnvSpec) -> torch.Tensor:
    """The death mask [..., N] from the available actions [..., N, A]: 0 for a dead agent, else 1.
    By SMAC's convention (``spec.one_action_means_dead``) a dead agent has a single available
    action (SMAC's no-op; stock SMAX's stop); a live unit can always stop and move, so it has at
    least two; matrix games, MPE and Overcooked offer every action at every step. Where no agent
    dies within an episode (Gold Miner) every agent is live, a forced single action included."""
    if not spec.one_action_means_dead:
        return torch.ones(avail.shape[:-1], dtype=torch.float32, device=avail.device)
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
        self.critic = RecurrentCritic(spec, config.agent.hidden_dim, config.ppo.critic_input, config.ppo.value_norm)
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

    def rewards(self, batch: Episodes) -> torch.Tensor:
        """The rewards [B, T, K] that GAE credits, without gradient: the team's, [B, T, 1], shared
        by every agent's value; a subclass may give each agent its own, [B, T, N] (MAGAIL's
        discriminator rewards, :mod:`marlrepro.learners.magail`)."""
        return batch.reward.unsqueeze(-1)

    def forward(self, batch: Episodes, t_env: torch.Tensor) -> LossTerms:
        cfg, ppo = self.config, self.ppo
        mask = batch.filled.unsqueeze(-1)  # [B, T, 1]
        avail, actions = batch.avail_actions, batch.actions
        live = live_agents(avail[:, :-1], self.spec) * mask  # [B, T, N]
        log_pi = masked_log_policy(self.actor.sequence(self.actor.observe(batch), actions, avail), avail, 1.0)
        log_pi = log_pi[:, :-1]
        values = self.critic(batch)
        buffers = {}
        with torch.no_grad():
            old_logits = self.behaviour_actor.sequence(self.behaviour_actor.observe(batch), actions, avail)
            old_log_pi = masked_log_policy(old_logits, avail, 1.0)[:, :-1]
            old_values = self.behaviour_critic(batch)
            collected = self.behaviour_critic.value_norm  # the statistics of the collecting critic
            v_old = old_values if collected is None else collected.moments.denormalise(old_values)
            advantages = gae_advantages(self.rewards(batch), batch.terminated.unsqueeze(-1), mask,
                                        v_old, cfg.gamma, cfg.td_lambda)
            returns = advantages + v_old[:, :-1]
            targets = returns
            if self.critic.value_norm is not None:
                moments = self.critic.value_norm.moments.updated(returns, mask.expand_as(returns))
                targets = moments.normalise(returns)
                buffers = {f"critic.value_norm.{name}": value for name, value in moments._asdict().items()}
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
        value_error = clipped_value_error(values[:, :-1], old_values[:, :-1], targets, ppo.value_clip,
                                          ppo.huber_delta)
        critic_loss = (value_error * mask).sum() / steps
        with torch.no_grad():
            clipped = ((ratio - 1).abs() > ppo.clip).float()
            clip_fraction = (clipped * live).sum() / live_count
        return LossTerms(actor_loss - ppo.entropy_coef * entropy + critic_loss,
                         (values[:, :-1] * mask).sum() / steps, (targets * mask).sum() / steps,
                         logged={"entropy": entropy.detach(), "clip_fraction": clip_fraction}, buffers=buffers)
