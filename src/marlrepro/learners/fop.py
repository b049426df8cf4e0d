"""FOP (Zhang et al. 2021): factorised maximum-entropy actor-critic, ME-IGM's baseline (Table 1,
Figure 2, Table 2). Follows PKU-RL/FOP-DMAC-MACPF (``fop_learner.py``, ``fop.yaml``;
notes/actor_critic.md).

One run's networks: the actor (a GRU softmax policy ``π_i(·|τ_i)`` on the local observation,
:class:`~marlrepro.controller.SoftmaxPolicyController` at temperature 1), two critics (each
per-agent soft values ``Q_i(τ_i, ·)``, a GRU on the observation, the last action and the agent's
id, no state, and its own :class:`~marlrepro.nets.fop_mixer.FOPMixer`) and target copies of the
critics. The temperature ``α(t)`` is a fixed schedule of the run's environment steps
(:class:`~marlrepro.config.FOPConfig`). One update's loss is the sum of

* the actor's loss (SAC for discrete actions, Christodoulou 2019), on the local values:
  ``E_τ Σ_i Σ_a π_i(a) (α log π_i(a) − sg[min(Q¹_i, Q²_i)(a)])``;
* each critic's TD loss ``E[(Q^k_tot(τ, u; s) − sg[y])²]`` plus its attention regulariser, with
  ``y_t = G^λ_t − α · mean_i log π_i(a'_{t+1,i})``: ``G^λ`` the TD(λ) return of
  ``min_k Q^k_tot'(τ', a'; s')`` from the target critics at next actions ``a' ~ π``, and the
  entropy term added once, outside the λ-return, as the code does.

The three parameter sets are disjoint and each term stops the gradient into the others, so one
backward gives each optimiser the gradient of its own loss; each set is clipped on its own
(:meth:`param_groups`). The code steps the actor before the critics, whose next actions it then
samples from the updated actor; here all three step together (docs/deviations.md).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from marlrepro.buffer import Episodes
from marlrepro.config import TrainConfig
from marlrepro.controller import AgentController, SoftmaxPolicyController
from marlrepro.envs.base import EnvSpec
from marlrepro.learners.base import ActorCriticLearner, LossTerms, ParamGroup
from marlrepro.learners.max_entropy import gumbel_noise, masked_log_policy
from marlrepro.learners.targets import td_lambda_targets
from marlrepro.nets.fop_mixer import FOPMixer


class FOPCritic(nn.Module):
    """One of FOP's critics: the agents' soft values ``Q_i(τ_i, ·)`` and their mixer."""

    def __init__(self, spec: EnvSpec, config: TrainConfig) -> None:
        super().__init__()
        self.agents = AgentController(spec, config.agent)
        self.mixer = FOPMixer(spec.n_agents, spec.n_actions, spec.state_dim, spec.unit_dim, config.mixer,
                              config.fop.n_head, config.fop.attend_reg_coef)

    def local_values(self, batch: Episodes) -> torch.Tensor:
        """``Q_i(τ_i^t, ·)`` [B, T+1, N, A] over whole episodes."""
        return self.agents.sequence(self.agents.observe(batch), batch.actions)

    def joint_value(self, q: torch.Tensor, actions: torch.Tensor, states: torch.Tensor,
                    alpha: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``Q_tot`` [..., 1] of the joint action ``actions`` [..., N] from the agents' values
        ``q`` [..., N, A] (their soft values ``V_i = α logsumexp(Q_i / α)`` over all actions, as
        the code), and the mixer's attention regulariser."""
        soft_values = alpha * torch.logsumexp(q / alpha, dim=-1)
        taken = q.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
        return self.mixer(taken, states, actions, soft_values)


class FOPLearner(ActorCriticLearner):
    """FOP's actor and twin critics (module docstring)."""

    target_pairs = (("target_critic_1", "critic_1"), ("target_critic_2", "critic_2"))
    update_scalars = ("q_gap",)

    def __init__(self, spec: EnvSpec, config: TrainConfig, device: torch.device) -> None:
        super().__init__()
        self.spec = spec
        self.config = config.learner
        self.fop = config.fop
        self.actor = SoftmaxPolicyController(spec, config.agent, transform=None, alpha_init=1.0,
                                             learn_temperature=False)
        self.critic_1 = FOPCritic(spec, config)
        self.critic_2 = FOPCritic(spec, config)
        self.target_critic_1 = copy.deepcopy(self.critic_1).requires_grad_(False)
        self.target_critic_2 = copy.deepcopy(self.critic_2).requires_grad_(False)
        self.to(device)

    def param_groups(self) -> tuple[ParamGroup, ...]:
        """The actor at ``learner.lr``, each critic at ``fop.critic_lr``; each clipped on its own."""
        return (ParamGroup("actor.", self.config.lr, clip_alone=True),
                ParamGroup("critic_1.", self.fop.critic_lr, clip_alone=True),
                ParamGroup("critic_2.", self.fop.critic_lr, clip_alone=True))

    def logged_scalars(self, weights: dict[str, torch.Tensor], t_env: torch.Tensor) -> dict[str, torch.Tensor]:
        """The scheduled temperature at each run's env steps."""
        return {"temperature": self.temperature(t_env)}

    def temperature(self, t_env: torch.Tensor) -> torch.Tensor:
        """``α(t) = max(alpha_finish, alpha_start − t / alpha_decay_steps)``."""
        fop = self.fop
        return (fop.alpha_start - t_env / fop.alpha_decay_steps).clamp(min=fop.alpha_finish)

    def forward(self, batch: Episodes, t_env: torch.Tensor) -> LossTerms:
        cfg = self.config
        alpha = self.temperature(t_env)
        mask = batch.filled.unsqueeze(-1)  # [B, T, 1]
        avail, states, actions = batch.avail_actions, batch.state, batch.actions
        logits = self.actor.sequence(self.actor.observe(batch), actions, avail)
        log_pi = masked_log_policy(logits, avail, 1.0)  # [B, T+1, N, A]
        q_1, q_2 = self.critic_1.local_values(batch), self.critic_2.local_values(batch)

        # the actor: Σ_a π(a) (α log π(a) − min Q(a)), unavailable actions contributing 0
        soft_q = torch.minimum(q_1, q_2)[:, :-1].detach()
        pi = log_pi[:, :-1].exp()
        per_agent = torch.where(avail[:, :-1], pi * (alpha * log_pi[:, :-1] - soft_q), 0.0).sum(dim=-1)
        actor_loss = (per_agent * mask).sum() / (mask.sum() * per_agent.shape[-1])

        with torch.no_grad():
            log_pi_next = log_pi.detach()
            sampled = (log_pi_next + gumbel_noise(log_pi_next)).argmax(dim=-1)  # a' ~ π (Gumbel-max), [B, T+1, N]
            target_tot = torch.minimum(
                self.target_critic_1.joint_value(self.target_critic_1.local_values(batch), sampled, states, alpha)[0],
                self.target_critic_2.joint_value(self.target_critic_2.local_values(batch), sampled, states, alpha)[0])
            returns = td_lambda_targets(batch.reward.unsqueeze(-1), batch.terminated.unsqueeze(-1), mask,
                                        target_tot, cfg.gamma, cfg.td_lambda)
            log_pi_taken = log_pi_next[:, 1:].gather(-1, sampled[:, 1:].unsqueeze(-1)).squeeze(-1)  # [B, T, N]
            targets = returns - alpha * (log_pi_taken * mask).mean(dim=-1, keepdim=True)

        denom = mask.sum()
        q_tot_1, regulariser_1 = self.critic_1.joint_value(q_1[:, :-1], actions, states[:, :-1], alpha)
        q_tot_2, regulariser_2 = self.critic_2.joint_value(q_2[:, :-1], actions, states[:, :-1], alpha)
        critic_loss = (((q_tot_1 - targets) * mask).pow(2).sum() / denom + regulariser_1
                       + ((q_tot_2 - targets) * mask).pow(2).sum() / denom + regulariser_2)
        with torch.no_grad():
            gap = self.q_gap(q_1[:, :-1], log_pi[:, :-1], avail[:, :-1], states[:, :-1], alpha)
        return LossTerms(actor_loss + critic_loss, (q_tot_1 * mask).sum() / denom, (targets * mask).sum() / denom,
                         logged={"q_gap": (gap * mask).sum() / denom})

    def q_gap(self, q: torch.Tensor, log_pi: torch.Tensor, avail: torch.Tensor, states: torch.Tensor,
              alpha: torch.Tensor) -> torch.Tensor:
        """ME-IGM Figure 2's gap at each step [..., 1]: ``Q_tot(s, ū) − Q_tot(s, û)`` with critic 1's
        ``Q_tot``, where ``ū_i = argmax Q_i`` (the agents' greedy joint action on their own values)
        and ``û_i = argmax π_i`` (the joint action the policies execute). ``ū`` stands for
        ``argmax_u Q_tot``: the mixer increases with each ``Q_i`` at fixed weights, but its
        ``λ_i(s, u)`` depend on the joint action, so ``ū`` is the IGM-consistent maximiser, not a
        search over the joint actions (docs/deviations.md)."""
        greedy_q = q.masked_fill(~avail, -torch.inf).argmax(dim=-1)
        greedy_pi = log_pi.masked_fill(~avail, -torch.inf).argmax(dim=-1)
        best = self.critic_1.joint_value(q, greedy_q, states, alpha)[0]
        chosen = self.critic_1.joint_value(q, greedy_pi, states, alpha)[0]
        return best - chosen
