"""What the soft-Q imitation learners share (MIFQ, IQVDN, IIQ: :mod:`marlrepro.learners.inverse_q`;
MASQIL: :mod:`marlrepro.learners.sqil`; MIFQ paper §4, notes/mifq_miner.md).

One run's networks: a shared recurrent ``Q_i(τ_i, ·)`` with the agent's id (the project's GRU
agent) that acts by sampling its soft policy ``π_i = softmax(Q_i / α)`` over the available
actions (:class:`~marlrepro.controller.SoftmaxPolicyController` at a fixed temperature, whose JAX
twin samples the same policy in the fused rollout) and is evaluated greedily and decentralised;
the family's mixers; and target copies of the agents and of the mixers that see next states.

These learners train on two batches: the online replay of their own soft policy (``batch``) and
expert demonstrations (``demos``, :attr:`demonstrations`), both :class:`~marlrepro.buffer.Episodes`
with their own sizes and lengths, so :meth:`forward` takes ``(batch, t_env, demos)``.
"""

from __future__ import annotations

import copy
from typing import NamedTuple

import torch
from torch import nn

from marlrepro.buffer import Episodes
from marlrepro.config import TrainConfig
from marlrepro.controller import AgentController, SoftmaxPolicyController
from marlrepro.envs.base import EnvSpec
from marlrepro.learners.base import Learner
from marlrepro.learners.max_entropy import MASKED_LOGIT, temperature


def soft_values(q: torch.Tensor, avail: torch.Tensor, alpha: torch.Tensor | float) -> torch.Tensor:
    """``V_i(o_i) = α log Σ_{a ∈ A_i(o_i)} exp(Q_i(o_i, a) / α)`` over the AVAILABLE actions
    (MIFQ §4.1, ``V^Q_i``; IQ-Learn's ``getV``): ``q``, ``avail`` [..., A] -> [..., ]. Where no
    action is available (padding after an episode's end) the value is 0, so that it adds nothing
    wherever a mask or a termination flag multiplies it."""
    real = avail.any(dim=-1)
    v = alpha * torch.logsumexp((q / alpha).masked_fill(~avail, MASKED_LOGIT), dim=-1)
    return torch.where(real, v, 0.0)


def taken_values(q: torch.Tensor, actions: torch.Tensor, avail: torch.Tensor) -> torch.Tensor:
    """``Q_i(o_i, a_i)`` [B, T, N] of the taken ``actions`` [B, T, N] from ``q`` [B, T, N, A];
    0 where the agent has no available action (padding)."""
    chosen = q.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
    return torch.where(avail.any(dim=-1), chosen, 0.0)


def mix(mixer: nn.Module | None, values: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
    """The mixed values [B, T, 1] of per-agent ``values`` [B, T, N] in ``states`` [B, T, S]; with
    no mixer (independent learners) the agents' own values [B, T, N]."""
    return values if mixer is None else mixer(values, states)


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The mean of ``values`` [B, T, K] over the steps where ``mask`` [B, T, 1] is 1 (and over
    ``K``); 0 for an empty mask."""
    return (values * mask).sum() / (mask.sum() * values.shape[-1]).clamp(min=1)


class StepValues(NamedTuple):
    """One batch of episodes seen by the soft-Q networks: the online values ``q``
    [B, T+1, N, A], the agents' soft values ``v`` [B, T+1, N] from them, the next-state soft
    values ``next_v`` [B, T, N] (from the target agents, or ``v[:, 1:]``) and the taken values
    ``taken`` [B, T, N]."""

    q: torch.Tensor
    v: torch.Tensor
    next_v: torch.Tensor
    taken: torch.Tensor


class SoftQImitationLearner(Learner):
    """The shared agents, their soft policy, targets and the two-batch interface of the soft-Q
    imitation learners (module docstring). Subclasses build their mixers (:meth:`make_mixers`)
    and the loss."""

    demonstrations = True
    controller: SoftmaxPolicyController

    def __init__(self, spec: EnvSpec, config: TrainConfig, device: torch.device) -> None:
        super().__init__()
        self.spec = spec
        self.algo = config.algo
        self.config = config.learner
        self.iq = config.iq
        self.controller = SoftmaxPolicyController(spec, config.agent, transform=None, alpha_init=self.iq.alpha,
                                                  learn_temperature=False)
        self.target_controller = copy.deepcopy(self.controller).requires_grad_(False)
        self.make_mixers(spec, config)
        self.to(device)

    def make_mixers(self, spec: EnvSpec, config: TrainConfig) -> None:
        """Build the family's mixers and their target copies (named in :attr:`target_pairs`)."""
        raise NotImplementedError

    @property
    def acting_controller(self) -> AgentController:
        """The agents, sampling ``softmax(Q_i / α)`` over their available actions."""
        return self.controller

    def eval_controllers(self) -> dict[str, AgentController]:
        """The decentralised agents, greedy on ``Q_i`` (the most probable action of the soft policy)."""
        return {"test": self.controller}

    @property
    def alpha(self) -> torch.Tensor:
        """The policy's temperature ``α`` (a fixed, per-run stacked parameter of the controller)."""
        return temperature(self.controller.log_alpha)

    def step_values(self, episodes: Episodes) -> StepValues:
        """The online agents' values over ``episodes``, and the next-state soft values that
        bootstrap them: the target agents' without gradient with ``iq.use_target``, else the
        online ones."""
        controller, avail = self.controller, episodes.avail_actions
        q = controller.sequence(controller.observe(episodes), episodes.actions, avail)
        v = soft_values(q, avail, self.alpha)
        if self.iq.use_target:
            with torch.no_grad():
                target = self.target_controller
                target_q = target.sequence(target.observe(episodes), episodes.actions, avail)
                next_v = soft_values(target_q, avail, self.alpha)[:, 1:]
        else:
            next_v = v[:, 1:]
        return StepValues(q, v, next_v, taken_values(q[:, :-1], episodes.actions, avail[:, :-1]))
