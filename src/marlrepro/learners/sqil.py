"""MASQIL: the MIFQ paper's multi-agent SQIL baseline (§5.3; Reddy et al. 2019, "SQIL: Imitation
Learning via Reinforcement Learning with Sparse Rewards"; Div99/IQ-Learn ``conf/method/sqil.yaml``
and ``get_concat_samples``; notes/overcooked_il.md).

The environment's reward is dropped: every expert transition gets reward 1 and every transition
of the agents' own replay reward 0, and soft Q-learning runs on the two batches, half each. The
joint value mixes the agents' taken values with a QMIX-style mixer of the state, the same form
as MIFQ's (:class:`~marlrepro.nets.mixers.QMixer`; §5.3: "the same mixing network
architecture"), ``Q_tot = M(Q_1(o_1, a_1), …, Q_N(o_N, a_N); s)``. The soft one-step target is

    y = r_SQIL + γ (1 − d) V'_tot(S'),    V'_tot(S') = M'(V'_1(o'_1), …, V'_N(o'_N); s')

with ``V'_i = α log Σ_{a available} exp(Q'_i / α)`` the target agents' soft values and ``M'`` the
target mixer (with ``iq.use_target: false``, the online networks without gradient): the soft
counterpart of QMIX's target, whose greedy joint value a monotone mixer of the agents' maxima
gives (IQ-Learn's SoftQ update, ``y = r + γ (1 − d) V'(s')``, with a factored ``V'``). The loss is
``½ E_demos[(Q_tot − y)²] + ½ E_own[(Q_tot − y)²]`` over the filled steps: SQIL's balanced
batches (``λ_samp = 1``), whatever the two batches' sizes and lengths.
"""

from __future__ import annotations

import copy

import torch

from marlrepro.buffer import Episodes
from marlrepro.config import TrainConfig
from marlrepro.envs.base import EnvSpec
from marlrepro.learners.base import LossTerms
from marlrepro.learners.soft_q import SoftQImitationLearner, StepValues, masked_mean
from marlrepro.nets.mixers import QMixer

EXPERT_REWARD = 1.0  # SQIL's reward of a demonstrated transition
OWN_REWARD = 0.0  # and of one of the agents' own


class MASQILLearner(SoftQImitationLearner):
    """MASQIL (``algo: masqil``): module docstring. ``forward(batch, t_env, demos)``."""

    target_pairs = (("target_controller", "controller"), ("target_mixer", "mixer"))

    def make_mixers(self, spec: EnvSpec, config: TrainConfig) -> None:
        self.mixer = QMixer(spec.n_agents, spec.state_dim, config.mixer)
        self.target_mixer = copy.deepcopy(self.mixer).requires_grad_(False)

    def td_terms(self, episodes: Episodes, values: StepValues, reward: float) -> tuple[torch.Tensor, torch.Tensor]:
        """``Q_tot`` [B, T, 1] of the taken joint actions and the soft target ``y`` [B, T, 1] with
        SQIL's constant ``reward`` for every transition of ``episodes``."""
        states = episodes.state
        q_tot = self.mixer(values.taken, states[:, :-1])
        with torch.no_grad():
            mixer = self.target_mixer if self.iq.use_target else self.mixer
            next_tot = mixer(values.next_v.detach(), states[:, 1:])
            carry = 1.0 - episodes.terminated.unsqueeze(-1)
            targets = reward + self.config.gamma * carry * next_tot
        return q_tot, targets

    def forward(self, batch: Episodes, t_env: torch.Tensor, demos: Episodes) -> LossTerms:
        expert_q, expert_y = self.td_terms(demos, self.step_values(demos), EXPERT_REWARD)
        own_q, own_y = self.td_terms(batch, self.step_values(batch), OWN_REWARD)
        expert_mask, own_mask = demos.filled.unsqueeze(-1), batch.filled.unsqueeze(-1)
        loss = 0.5 * (masked_mean((expert_q - expert_y).pow(2), expert_mask)
                      + masked_mean((own_q - own_y).pow(2), own_mask))
        with torch.no_grad():
            q_taken = 0.5 * (masked_mean(expert_q, expert_mask) + masked_mean(own_q, own_mask))
            target = 0.5 * (masked_mean(expert_y, expert_mask) + masked_mean(own_y, own_mask))
        return LossTerms(loss, q_taken, target)
