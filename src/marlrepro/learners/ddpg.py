"""The DDPG family over discrete actions with Gumbel-softmax actors: MADDPG (Lowe et al. 2017,
"Multi-Agent Actor-Critic for Mixed Cooperative-Competitive Environments", §4 and appendix;
openai/maddpg ``maddpg/trainer/maddpg.py``), independent DDPG (its ``local_q_func`` baseline) and
CESMA's centralised expert (Lin et al., CESMA §4 and appendix D: DDPG on the joint observation and
joint action). CESMA uses all three (its Fig. 5 and 6; issue 15).

One run's networks, by ``ddpg.actor`` and ``ddpg.critic`` (:class:`~marlrepro.config.DDPGConfig`):

* actors: ``per_agent``, agent ``i``'s own MLP on ``o_i`` giving logits over its actions
  (:class:`~marlrepro.controller.PerAgentPolicyController`); ``joint``, one MLP on the joint
  observation ``o = (o_1, …, o_N)`` giving every agent's logits
  (:class:`~marlrepro.controller.JointPolicyController`);
* critics (:class:`DDPGCritic`), one per actor network: ``central``, ``Q_i(o, a_1, …, a_N)``
  (MADDPG; the expert's single ``Q(o, a)``); ``own``, ``Q_i(o_i, a_i)`` (independent DDPG);
* target copies of both, Polyak-averaged after every update (:attr:`target_polyak` = ``ddpg.polyak``).

An update draws one batch of stored episodes (their filled steps are the transitions) and takes
two gradient steps on it (the core's update phases), as the reference's ``q_train`` then
``p_train`` of each agent on one sampled index set:

* phase 0, the critics: ``Σ_i E[(Q_i(o_t, a_t) − y_t)²]`` with
  ``y_t = r_t + γ (1 − d_t) Q'_i(o_{t+1}, ã_{t+1})``, ``ã`` the target actors' Gumbel-softmax
  samples (the reference's ``target_act``), ``a_t`` the one-hot actions taken;
* phase 1, the actors: ``Σ_i (−E[Q_i(o, a_1, …, â_i, …, a_N)] + actor_reg · E[logits_i²])``,
  ``â_i`` agent ``i``'s Gumbel-softmax sample of its current logits (the gradient path; the soft
  sample at temperature 1 in the reference, optionally straight-through) and the other agents'
  actions those of the replay, as the reference's ``act_ph_n``; the joint actor's critic sees all
  its heads' samples.

The Gumbel noise of both phases is hashed from a per-run key and counter (a persistent buffer,
:func:`~marlrepro.learners.gumbel.hashed_gumbel`), not drawn from the generator a pack shares, so
a packed run equals the run alone and a resume continues its draws. Each sum is over the networks, each term a mean over the batch's filled steps, so each network's
gradient is that of its own loss as with the reference's optimiser per agent. Acting samples the
actors' softmax policies (the argmax of their Gumbel-softmax sample: the reference feeds the soft
sample to the environment as a continuous action, ours are discrete, docs/deviations.md);
evaluation is greedy.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from marlrepro.buffer import Episodes
from marlrepro.config import TrainConfig
from marlrepro.controller import JointPolicyController, PerAgentPolicyController
from marlrepro.envs.base import EnvSpec
from marlrepro.learners.base import ActorCriticLearner, LossTerms, ParamGroup
from marlrepro.learners.gumbel import gumbel_softmax, hashed_gumbel
from marlrepro.learners.max_entropy import MASKED_LOGIT
from marlrepro.nets.stacked_mlp import StackedMLP


class DDPGCritic(nn.Module):
    """``K`` Q functions, plain ReLU MLPs (:class:`~marlrepro.nets.stacked_mlp.StackedMLP`, one copy
    each): with ``central``, copy ``k`` reads every agent's observation and action
    ``[o_1, …, o_N, a_1, …, a_N]`` (MADDPG's ``q_input = concat(obs_ph_n + act_ph_n)``); without,
    copy ``k = i`` reads agent ``i``'s own ``[o_i, a_i]`` (``local_q_func``)."""

    def __init__(self, spec: EnvSpec, copies: int, hidden_dim: int, central: bool) -> None:
        super().__init__()
        self.central = central
        per_agent = spec.obs_dim + spec.n_actions
        self.nets = StackedMLP(copies, per_agent * (spec.n_agents if central else 1), hidden_dim, 1,
                               layer_norm=False)

    def forward(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """``obs`` [..., N, O]; ``actions`` [..., K, N, A], the joint action each copy evaluates
        (one-hot or relaxed) -> values [..., K]. Without ``central``, copy ``i`` reads row ``i``
        of its own joint action: agent ``i``'s action."""
        copies = actions.shape[-3]
        if self.central:
            joint_obs = obs.flatten(-2).unsqueeze(-2).expand(*actions.shape[:-3], copies, -1)
            x = torch.cat([joint_obs, actions.flatten(-2)], dim=-1)
        else:
            own = actions.diagonal(dim1=-3, dim2=-2).transpose(-1, -2)  # [..., N, A]: copy i's row i
            x = torch.cat([obs, own], dim=-1)
        return self.nets(x).squeeze(-1)


class DDPGLearner(ActorCriticLearner):
    """MADDPG, independent DDPG and CESMA's centralised DDPG expert (module docstring)."""

    target_pairs = (("target_actor", "actor"), ("target_critic", "critic"))
    update_phases = 2
    update_stages = (0, 1)  # the critics' phase, then the actors'

    def __init__(self, spec: EnvSpec, config: TrainConfig, device: torch.device) -> None:
        super().__init__()
        self.spec = spec
        self.config = config.learner
        self.ddpg = config.ddpg
        self.target_polyak = config.ddpg.polyak
        joint = config.ddpg.actor == "joint"
        self.copies = 1 if joint else spec.n_agents  # the actor networks, one critic each
        self.actor = (JointPolicyController if joint else PerAgentPolicyController)(spec, config.agent,
                                                                                    layer_norm=False)
        self.critic = DDPGCritic(spec, self.copies, config.agent.hidden_dim, config.ddpg.critic == "central")
        self.target_actor = copy.deepcopy(self.actor).requires_grad_(False)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        # the Gumbel noise's key (the run's seed, the loss evaluations so far): each run draws its own
        self.register_buffer("gumbel_key", torch.tensor([config.run.seed, 0], dtype=torch.int64))
        self.to(device)

    def param_groups(self) -> tuple[ParamGroup, ...]:
        """The critics train in phase 0, the actors in phase 1, each at ``learner.lr`` and clipped
        to ``learner.grad_clip`` on its own norm (``clip_alone``): the actors' loss also reaches
        the critics' weights, whose gradient phase 1 does not apply and must not count in the
        actors' norm."""
        lr = self.config.lr
        return (ParamGroup("critic.", lr, clip_alone=True, phase=0), ParamGroup("actor.", lr, clip_alone=True, phase=1))

    def _logits(self, actor: PerAgentPolicyController, batch: Episodes) -> torch.Tensor:
        """The actor's logits [B, T+1, N, A] over whole episodes, unavailable actions at
        :data:`~marlrepro.learners.max_entropy.MASKED_LOGIT` (probability 0 in every sample)."""
        logits = actor.sequence(actor.observe(batch), batch.actions, batch.avail_actions)
        return logits.masked_fill(~batch.avail_actions, MASKED_LOGIT)

    def _sample(self, logits: torch.Tensor) -> torch.Tensor:
        """The actors' relaxed actions [..., N, A] (``ddpg.temperature``, ``ddpg.straight_through``),
        their noise hashed from the run's :attr:`gumbel_key`."""
        noise = hashed_gumbel(self.gumbel_key, tuple(logits.shape))
        return gumbel_softmax(logits, self.ddpg.temperature, hard=self.ddpg.straight_through, noise=noise)

    def _per_copy(self, actions: torch.Tensor) -> torch.Tensor:
        """One joint action [..., N, A] as the input of every critic copy: [..., K, N, A]."""
        return actions.unsqueeze(-3).expand(*actions.shape[:-2], self.copies, *actions.shape[-2:])

    def forward(self, batch: Episodes, t_env: torch.Tensor, phase: torch.Tensor, stage: int) -> LossTerms:
        """Stage 0 (phase 0): the critics' loss; stage 1 (phase 1): the actors'. Each moves the
        noise key's counter on (:attr:`LossTerms.buffers`), so every phase draws new noise. The
        increment [0, 1] is made on the key's device (``arange``): a host list copied in would
        break the step's CUDA-graph capture."""
        moved = {"gumbel_key": self.gumbel_key + torch.arange(2, device=self.gumbel_key.device)}
        mask = batch.filled  # [B, T]
        steps = mask.sum().clamp(min=1.0)
        taken = nn.functional.one_hot(batch.actions, self.spec.n_actions).to(batch.obs.dtype)  # [B, T, N, A]
        obs = batch.obs
        if stage == 0:
            with torch.no_grad():
                next_actions = self._sample(self._logits(self.target_actor, batch)[:, 1:])
                next_q = self.target_critic(obs[:, 1:], self._per_copy(next_actions))  # [B, T, K]
                not_done = (1.0 - batch.terminated).unsqueeze(-1)
                targets = batch.reward.unsqueeze(-1) + self.config.gamma * not_done * next_q
            q = self.critic(obs[:, :-1], self._per_copy(taken))
            weights = mask.unsqueeze(-1) / steps
            loss = ((q - targets).pow(2) * weights).sum()  # Σ_k of each critic's mean squared error
            return LossTerms(loss, (q.detach() * weights).sum() / self.copies, (targets * weights).sum() / self.copies,
                             buffers=moved)
        logits = self._logits(self.actor, batch)[:, :-1]  # [B, T, N, A]
        sampled = self._sample(logits)
        if self.copies == 1:  # the joint actor: every head's sample
            actions = sampled.unsqueeze(-3)
        else:  # critic i: agent i's sample among the others' replayed actions
            own = torch.eye(self.spec.n_agents, device=obs.device).unsqueeze(-1)  # [N, N, 1]
            actions = own * sampled.unsqueeze(-3) + (1 - own) * taken.unsqueeze(-3)
        q = self.critic(obs[:, :-1], actions)  # [B, T, K]
        counted = batch.avail_actions[:, :-1].to(logits.dtype) * mask[..., None, None]  # [B, T, N, A]
        per_network = (0, 1, 3) if self.copies > 1 else (0, 1, 2, 3)  # each agent's actor, or the joint one
        regulariser = ((logits * counted).pow(2).sum(dim=per_network)
                       / counted.sum(dim=per_network).clamp(min=1.0)).sum()  # Σ of each actor's mean logit²
        loss = -(q * mask.unsqueeze(-1)).sum() / steps + self.ddpg.actor_reg * regulariser
        nan = torch.full((), math.nan, device=loss.device)  # the critics' phase measures them
        return LossTerms(loss, nan, nan, buffers=moved)
