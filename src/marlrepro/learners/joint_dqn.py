"""CESMA's centralised DQN experts on the joint action (algo ``joint_dqn``; Lin et al., §4.1–4.2,
§6.5, appendix E.3 and E.4; issue 15 item 2).

The multi-agent problem as one agent: a Q network on the joint observation ``o = (o_1, …, o_N)``
with one output per joint action (:class:`~marlrepro.controller.JointActionController`), by
``joint_dqn.actions``:

* ``exponential``: every joint action, ``|A|^N`` outputs (E.3's "exponential actions DQN");
* ``one_at_a_time``: the no-op for everyone, or one agent moving while the others take the no-op,
  ``1 + N(|A| − 1)`` outputs (E.4's one-at-a-time expert: linear in ``N``).

It is value decomposition's learner (:class:`~marlrepro.learners.value_decomposition.ValueDecompositionLearner`,
no mixer) with the joint action as the single agent's action: ``Q_tot(o, u)`` is the output of the
joint action ``u`` taken, the bootstrap action the greedy AVAILABLE joint action (each of its
agents' actions available), and the TD(λ) targets, double Q, soft or hard targets, replay and
ε schedule are the core's. Acting is ε-greedy over the available joint actions. The centralised
VDN of E.3 is no new learner: algo ``vdn`` with ``agent.network: joint_mlp`` (a Q head per agent
on the joint observation, summed by VDN's mixer).

Exported (``marlrepro export-policy``), the controller is DAgger's expert: its labels are the
agents' actions of its greedy joint action (:meth:`JointActionController.greedy`).
"""

from __future__ import annotations

import torch
from torch import nn

from marlrepro.config import TrainConfig
from marlrepro.controller import AgentController, JointActionController, ObsSource, joint_action_table
from marlrepro.envs.base import EnvSpec
from marlrepro.learners.value_decomposition import ValueDecompositionLearner


class JointActionLearner(ValueDecompositionLearner):
    """A DQN on the joint observation and the joint action (module docstring)."""

    controller: JointActionController

    def make_controller(self, spec: EnvSpec, config: TrainConfig, source: ObsSource) -> AgentController:
        table = joint_action_table(spec.n_agents, spec.n_actions, config.joint_dqn.actions == "one_at_a_time")
        return JointActionController(spec, config.agent, table)

    def joint_value(
        self, mixer: nn.Module | None, q: torch.Tensor, actions: torch.Tensor, avail: torch.Tensor,
        states: torch.Tensor,
    ) -> torch.Tensor:
        """``Q(o, u)`` [B, T, 1] of the joint action ``actions`` [B, T, N] from the joint-action
        values ``q`` [B, T, 1, K]; 0 at steps where no joint action is available (padding)."""
        real = self.controller.joint_avail(avail).any(dim=-1, keepdim=True)  # [B, T, 1]
        chosen = q.squeeze(-2).gather(-1, self.controller.encode(actions).unsqueeze(-1))
        return torch.where(real, chosen, 0.0)
