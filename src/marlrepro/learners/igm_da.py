"""IGM-DA (Hong, Jin and Tang, "Rethinking Individual Global Max"): value decomposition trains
experts on global information, decentralised learners imitate them (§3, Algorithm 1).

* Experts ``Q_i(s, u_i)`` (here: each ally's full-sight observation or the state) are mixed by the
  value-decomposition method (QMIX, VDN, …) and trained by its TD(λ) loss (eq. 8): no lossy
  decomposition enters the Bellman iteration.
* Learners ``q_i(τ_i, u_i)`` are the decentralised agents of ``config.agent``: the local
  observation (plus the available actions with ``agent.obs_avail_actions``, as the authors'
  ``basic_mac_avalible_action``; the experts never see them, as the authors' ``basic_mac_all``).
  They regress their whole Q-vector to the one-hot of the expert's greedy available action
  (Proposition 5: the minimiser is the expert's action frequency given the observation).
* DAgger: the learners collect the episodes (epsilon-greedy), the experts label them; the double-Q
  bootstrap action comes from the learners (the authors' ``q_learner_teach``). BC (the ablation of
  Fig. 5): the experts collect, and the bootstrap action comes from the experts' online values
  (the authors' ``q_learner_teach_bijiao``).
* The loss is ``td_weight · TD + imitation`` (the authors: ``Σ_t m_t δ_t² / Σ_t m_t +
  Σ_{t,i,u} m_t (q_i(u) − onehot_i(u))² / Σ_{t,i,u} m_t``, i.e. ``td_weight = 1`` and the
  imitation term at weight 1), minimised by one optimiser over all parameters (authors' code);
  evaluation runs the learners alone, decentralised.
* Around DMIX the experts are the implicit-quantile agents and learn by DMIX's quantile loss;
  the learners stay Q-vector agents and regress to the one-hot of the experts' greedy action by
  the mean over quantiles. (The authors broadcast the one-hot over a quantile learner's quantiles:
  every quantile regresses to the same target, which is what our Q-vector learner regresses to.)
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from marlrepro.buffer import Episodes
from marlrepro.config import TrainConfig
from marlrepro.controller import AgentController
from marlrepro.envs.base import EnvSpec
from marlrepro.exploration import masked_greedy
from marlrepro.learners.distributional import DistributionalLearner
from marlrepro.learners.value_decomposition import ValueDecompositionLearner


def imitation_loss(learner_q: torch.Tensor, expert_q: torch.Tensor, avail: torch.Tensor,
                   mask: torch.Tensor) -> torch.Tensor:
    """Proposition 5's regression: ``mean (q_i(τ_i, ·) − onehot(argmax_avail Q_i(s, ·)))²``.

    ``learner_q``, ``expert_q`` [B, T, N, A]; ``avail`` [B, T, N, A] bool; ``mask`` [B, T]. The
    mean runs over real steps × agents × actions, every action's value included (the authors'
    ``Σ (m (q − onehot))² / Σ m`` with the mask broadcast over agents and actions); the expert's
    values are not trained by it.
    """
    greedy = masked_greedy(expert_q.detach(), avail)
    target = nn.functional.one_hot(greedy, learner_q.shape[-1]).to(learner_q.dtype)
    weight = mask[..., None, None]
    return ((learner_q - target) ** 2 * weight).sum() / (weight.sum() * learner_q.shape[-2] * learner_q.shape[-1])


class IGMDALearner(ValueDecompositionLearner):
    """A value-decomposition learner on expert inputs, plus imitating decentralised learners."""

    def __init__(self, spec: EnvSpec, config: TrainConfig, device: torch.device) -> None:
        experts = dataclasses.replace(config, agent=dataclasses.replace(config.agent, obs_avail_actions=False))
        super().__init__(spec, experts, device, source=config.imitation.expert_input)
        self.learners = AgentController(spec, config.agent, "obs").to(device)
        self.mode = config.imitation.mode

    @property
    def acting_controller(self) -> AgentController:
        """DAgger: the learners act; BC: the experts act."""
        return self.learners if self.mode == "dagger" else self.controller

    @property
    def eval_controller(self) -> AgentController:
        return self.learners

    def eval_controllers(self) -> dict[str, AgentController]:
        """The learners (the paper's metric) and the experts, whose win rate is the paper's
        ``target_mean`` (Fig. 3a)."""
        return {"test": self.learners, "test_expert": self.controller}

    def extra_outputs(self, episodes: Episodes) -> dict[str, object]:
        """``action_values.parquet``: the greedy action values of Fig. 3(b)."""
        import pandas as pd

        frame = pd.concat([pd.DataFrame({"agents": name, "value": values.cpu().numpy()})
                           for name, values in self.greedy_action_values(episodes).items()])
        return {"action_values.parquet": frame}

    def loss(self, batch: Episodes) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """TD loss of the experts + the imitation loss of the learners (to the experts' greedy
        actions by their expected values). The double-Q bootstrap action comes from the agents
        that act: the learners' values under DAgger, the experts' under BC."""
        expert = self.agent_outputs(batch)
        expert_q = self.expected_values(expert)
        learner_q = self.learners.sequence(batch.obs, batch.actions, batch.avail_actions)
        selector = learner_q if self.mode == "dagger" else expert_q
        td, q_mean, target_mean = self.td_loss(batch, expert, selector.detach())
        teach = imitation_loss(learner_q[:, :-1], expert_q[:, :-1], batch.avail_actions[:, :-1], batch.filled)
        return td + teach, q_mean, target_mean

    @torch.no_grad()
    def greedy_action_values(self, episodes: Episodes) -> dict[str, torch.Tensor]:
        """``max_{u available} Q(·, u)`` of every agent at every real step of ``episodes``, for the
        learners and the experts: the action-value distributions of Fig. 3(b). Flat tensors."""
        avail, real = episodes.avail_actions[:, :-1], episodes.filled > 0
        values = {}
        for name, agents in (("learner", self.learners), ("expert", self.controller)):
            q = agents.sequence(agents.observe(episodes), episodes.actions, episodes.avail_actions)[:, :-1]
            values[name] = q.masked_fill(~avail, float("-inf")).max(dim=-1).values[real].flatten()
        return values


class DistributionalIGMDALearner(IGMDALearner, DistributionalLearner):
    """IGM-DA around DMIX: distributional experts (quantile loss), Q-vector learners.

    The experts' greedy action for the imitation target is the argmax of the mean over the ``N``
    quantiles sampled for the update (:meth:`DistributionalLearner.expected_values`)."""

