"""ME-IGM: maximum-entropy value decomposition with order-preserving transformations (Wu et al.,
§5, Algorithm 1; notes/me_igm.md), and its +Entropy and MLP ablations (``max_entropy.mode``).

One run's networks: the agents ``Q_i`` with their transformations and temperature
(:class:`~marlrepro.controller.SoftmaxPolicyController`), the mixer (QMIX's or QPLEX's) and
target copies of both. The loss of one batch is the sum of three terms:

* the soft TD(λ) loss ``w · E_ω[(Q_tot(τ, u; s) − sg[G^λ_soft])²]``, with
  ``Q_tot = Mixer(g_1(Q_1(u_1)), …, g_N(Q_N(u_N)); s)`` (or ``Mixer(Q_1(u_1), …; s)``, with
  ``max_entropy.mixer_input: local``) and the soft return of
  :func:`~marlrepro.learners.targets.soft_td_lambda_targets`: target networks evaluate joint
  actions ``a'`` sampled from the current policies, plus ``α`` times their entropy estimate;
  ``E_ω`` weighs the samples whose TD gradient moves ``Q_tot`` away from the policies' summed
  logits by ``max_entropy.away_td_weight`` (the released code's 0.5;
  :func:`~marlrepro.learners.max_entropy.away_from_policy_weights`);
* the OPT loss (eq. 9), which fits ``Σ_i f_i(sg[g_i(Q_i(u_i))])`` (``f_i(g_i(sg[Q_i(u_i)]))``
  with ``local``) to ``sg[Q_tot]``
  (:func:`~marlrepro.learners.max_entropy.opt_loss`; not in the +Entropy ablation, which has no
  transformation);
* the temperature's loss (eq. 10-11), ``log α · sg[H(π) − H̄]``, its own learning rate
  (:meth:`param_groups`).
"""

from __future__ import annotations

import torch

from marlrepro.buffer import Episodes
from marlrepro.config import TrainConfig
from marlrepro.controller import AgentController, ObsSource, SoftmaxPolicyController
from marlrepro.envs.base import EnvSpec
from marlrepro.learners.base import ParamGroup
from marlrepro.learners.max_entropy import (
    away_from_policy_weights,
    gumbel_noise,
    masked_log_policy,
    opt_loss,
    policy_entropy,
    temperature,
    temperature_loss,
)
from marlrepro.learners.targets import soft_td_lambda_targets
from marlrepro.learners.value_decomposition import ValueDecompositionLearner
from marlrepro.nets.opt import OrderPreservingTransform


class MaxEntropyLearner(ValueDecompositionLearner):
    """ME-QMIX / ME-QPLEX (``max_entropy.mode: opt``), +Entropy (``entropy``) and ME-QMIX (MLP)
    (``mlp``) around the mixer of ``algo``."""

    controller: SoftmaxPolicyController

    def __init__(self, spec: EnvSpec, config: TrainConfig, device: torch.device, source: ObsSource = "obs") -> None:
        self.me = config.max_entropy
        super().__init__(spec, config, device, source)
        # a buffer, not a float, so that the runs of a pack may sweep it (it stacks per run)
        self.register_buffer("target_entropy", torch.tensor(self.me.target_entropy_per_agent * spec.n_agents,
                                                            device=device), persistent=False)

    def make_controller(self, spec: EnvSpec, config: TrainConfig, source: ObsSource) -> AgentController:
        mode = self.me.mode
        transform = None if mode == "entropy" else \
            OrderPreservingTransform(spec.n_agents, spec.state_dim, config.mixer, non_negative=mode == "opt",
                                     layers=self.me.opt_hypernet_layers)
        return SoftmaxPolicyController(spec, config.agent, transform, self.me.alpha_init, source)

    def param_groups(self) -> tuple[ParamGroup, ...]:
        """The temperature learns at ``max_entropy.temperature_lr``, outside the gradient clipping."""
        return (ParamGroup("controller.log_alpha", self.me.temperature_lr, clip=False),)

    def logged_scalars(self, weights: dict[str, torch.Tensor], t_env: torch.Tensor) -> dict[str, torch.Tensor]:
        """The temperature the policies use, ``max(exp(log α), ALPHA_FLOOR)``."""
        return {"temperature": temperature(weights["controller.log_alpha"])}

    def mixer_inputs(self, q: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        """What the mixer mixes: ``g_i(Q_i; s)``, or ``Q_i`` itself (``max_entropy.mixer_input``)."""
        return q if self.me.mixer_input == "local" else self.controller.inner(q, states)

    def policy_logits(self, q: torch.Tensor, mixed: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        """The policies' logits, with the gradient only the OPT loss may use: ``f(sg[g(Q)])`` when
        the mixer mixes ``g(Q)`` (``mixed``), ``f(g(sg[Q]))`` when it mixes ``Q``."""
        if self.me.mixer_input == "local":
            return self.controller.outer(self.controller.inner(q.detach(), states), states)
        return self.controller.outer(mixed.detach(), states)

    def target_mixer_inputs(self, q: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        """:meth:`mixer_inputs` of the target networks."""
        return q if self.me.mixer_input == "local" else self.target_controller.inner(q, states)

    def loss(self, batch: Episodes) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        cfg = self.config
        controller, avail, states = self.controller, batch.avail_actions, batch.state
        mask = batch.filled.unsqueeze(-1)
        q = controller.sequence(controller.observe(batch), batch.actions, avail)  # [B, T+1, N, A]
        mixed = self.mixer_inputs(q, states)
        logits = self.policy_logits(q, mixed, states)
        alpha = temperature(controller.log_alpha).detach()
        log_pi = masked_log_policy(logits.detach(), avail, alpha)
        with torch.no_grad():
            target = self.target_controller
            target_mixed = self.target_mixer_inputs(target.sequence(target.observe(batch), batch.actions, avail), states)
            # a' ~ π (Gumbel-max: the argmax of log π + Gumbel noise is a sample of π)
            sampled = (log_pi + gumbel_noise(log_pi)).argmax(dim=-1)  # [B, T+1, N]
            real = avail.any(dim=-1)
            entropy_estimate = -(log_pi.gather(-1, sampled.unsqueeze(-1)).squeeze(-1) * real).sum(-1, keepdim=True)
            target_tot = self.joint_value(self.target_mixer, target_mixed, sampled, avail, states)
            targets = soft_td_lambda_targets(batch.reward.unsqueeze(-1), batch.terminated.unsqueeze(-1), mask,
                                             target_tot, entropy_estimate, alpha, cfg.gamma, cfg.td_lambda)
        q_tot = self.joint_value(self.mixer, mixed[:, :-1], batch.actions, avail[:, :-1], states[:, :-1])
        denom = mask.sum()
        td_error = q_tot - targets
        td_weights = mask
        loss = torch.zeros((), device=q_tot.device)
        if controller.transform is not None:
            taken = logits[:, :-1].gather(-1, batch.actions.unsqueeze(-1)).squeeze(-1) * real[:, :-1]  # [B, T, N]
            loss = loss + opt_loss(q_tot, taken, mask)
            opt_error = q_tot.detach() - taken.sum(dim=-1, keepdim=True)
            td_weights = mask * away_from_policy_weights(td_error, opt_error, self.me.away_td_weight)
        loss = loss + cfg.td_weight * (td_weights * td_error.pow(2)).sum() / td_weights.sum().clamp(min=1e-8)
        joint_entropy = (policy_entropy(log_pi[:, :-1]) * real[:, :-1]).sum(dim=-1, keepdim=True)  # [B, T, 1]
        loss = loss + temperature_loss(controller.log_alpha, joint_entropy, self.target_entropy, mask)
        return loss, (q_tot * mask).sum() / denom, (targets * mask).sum() / denom
