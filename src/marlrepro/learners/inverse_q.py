"""MIFQ (Bui, Mai & Nguyen 2024, "Inverse Factorized Q-Learning for Cooperative Multi-agent
Imitation Learning", §4; notes/mifq_miner.md) and its inverse soft-Q baselines IQVDN and IIQ
(§5.3), after the single-agent IQ-Learn (Garg et al. 2021; Div99/IQ-Learn ``iq.py``).

The agents' values ``Q_i(o_i, ·)`` (shared recurrent network with the agent's id,
:class:`~marlrepro.learners.soft_q.SoftQImitationLearner`) define, per agent and step,

* the soft value (§4.2.1) ``V_i(o_i) = α log Σ_{a_i available} exp(Q_i(o_i, a_i) / α)``
  (:func:`~marlrepro.learners.soft_q.soft_values`; the paper writes α = 1);
* the inverse soft Bellman reward (eq. 4, Algorithm 1) ``r_i = Q_i(o_i, a_i) − γ (1 − d) V_i(o'_i)``,
  ``d`` the episode's termination flag (a time-limit end is not a termination: it bootstraps, as
  IQ-Learn stores time-limit ends as not done), ``V_i(o'_i)`` from the online agents with its
  gradient (IQ-Learn's default and the shipped configs'), or from the target agents without
  gradient with ``iq.use_target`` (IQ-Learn's ``use_target``). The semi-gradient of the target
  version imitates far worse over long time-limited episodes (docs/deviations.md).

The mixers (``algo``): MIFQ mixes ``R_tot = M_R(−R)`` and ``V_tot = M_V(V)`` with two QMIX-style
hypernetwork mixers of the state (eqs. 7–8: ``ELU(X |W_1| + b_1) |W_2| + b_2``, the weights from
two-layer ReLU hypernetworks; :class:`~marlrepro.nets.mixers.QMixer` is exactly that form, so it
is reused, one instance each); IQVDN sums (``R_tot = −Σ_i r_i``, ``V_tot = Σ_i V_i``); IIQ
keeps each agent's own terms (eq. 3/5 per agent, averaged over the agents).

The loss (eq. 9), each expectation a mean over the real (filled) steps::

    J = E_{(S, A) ~ demos}[φ(R_tot(S, A))] + value term,    φ(x) = x + c x²

with ``c = iq.chi2_coef`` (the χ² regulariser of §4.3.2: ``c = ½``, IQ-Learn's ``1 / (4 · 0.5)``
on expert samples, ``chi: true``; ``c = 0`` gives eq. 6's plain term). The value term estimates
``(1 − γ) E[V_tot(S_0)]`` (``iq.value_loss``):

* ``value`` (default): §4.3.2's telescoping estimate ``E_ρ[V_tot(S) − γ (1 − d) V_tot(S')]``
  with ``ρ`` the expert and the replay batch, half each. This is IQ-Learn's online ``value``
  option, which eq. 9's "replay" is read as: IQ-Learn's code samples equal-size expert and
  policy batches and takes this mean over both (its expert buffer is a "memory replay" too); the
  identity holds for the occupancy of any policy from the same initial states, so the mixture is
  as valid as either half, and it also pushes the values down on the expert's own states.
* ``value_replay``: eq. 9 as printed, the replay batch alone.
* ``v0``: eq. 6 itself, ``(1 − γ) V_tot(S_0)`` over the first states of both batches' episodes
  (stored episodes have their real initial states; IQ-Learn's ``v0`` approximates them with
  expert states); IQ-Learn reports it as usually worse than ``value``.

``V_tot(S')`` comes from the target ``M_V`` on the target agents' values with ``iq.use_target``.
Gradients reach the agents (``θ``) and both hypernetworks (``ω_R``, ``ω_V``) through one loss,
so one optimiser step is Algorithm 1's two updates at once, the hypernetworks at their own rate
``λ_ω = iq.mixer_lr`` (:meth:`InverseSoftQLearner.param_groups`; null: ``learner.lr``).

What the paper leaves open, and why ``λ_ω`` matters: Theorem 4.2 makes ``J`` convex in ``Q`` for
FIXED mixer weights ``ψ``; minimised over the hypernetworks too, as Algorithm 1 writes, eq. (9) is
unbounded below: ``M_V``'s state bias ``b_2^V(S)`` (and the scale of ``|W^V|``) lowers
``E[V_tot(S) − γ V_tot(S')]`` without changing ``Q`` (for a terminated episode it telescopes to
``V_tot(S_0) + (1 − γ) Σ_t V_tot(S_t)``), and ``M_R``'s bias alone can hold ``R_tot`` at the χ²
minimum ``−1`` while ``|W^R| → 0`` cuts the reward's gradient to ``Q``. tests/test_inverse_q.py
shows the unbounded direction; tests/test_inverse_q_learning.py that MIFQ imitates the expert
with fixed hypernetworks (``iq.mixer_lr: 0``) and not with ``λ_ω = λ_θ``.
"""

from __future__ import annotations

import copy
from typing import NamedTuple

import torch

from marlrepro.buffer import Episodes
from marlrepro.config import TrainConfig
from marlrepro.envs.base import EnvSpec
from marlrepro.learners.base import LossTerms, ParamGroup
from marlrepro.learners.soft_q import (
    SoftQImitationLearner,
    StepValues,
    masked_mean,
    mix,
)
from marlrepro.nets.mixers import QMixer, VDNMixer


def chi2_phi(x: torch.Tensor, coef: float) -> torch.Tensor:
    """The regulariser of eq. 9, ``φ(x) = x + c x²`` (``c = ½``: χ²; convex for ``c ≥ 0``)."""
    return x + coef * x.pow(2)


class SideTerms(NamedTuple):
    """One batch's terms of the loss: ``rewards`` [B, T, N] (``r_i``), ``reward_tot`` [B, T, K]
    (``M_R(−R)``), ``value_diff`` [B, T, K] (``V_tot(S) − γ (1 − d) V_tot(S')``) and ``v0``
    [B, 1, K] (``V_tot(S_0)``); ``K = 1`` with a mixer, ``N`` for IIQ."""

    rewards: torch.Tensor
    reward_tot: torch.Tensor
    value_diff: torch.Tensor
    v0: torch.Tensor


class InverseSoftQLearner(SoftQImitationLearner):
    """MIFQ (``algo: mifq``), IQVDN (``iqvdn``) and IIQ (``iiq``): module docstring.

    ``forward(batch, t_env, demos)``: ``batch`` the online replay of the agents' own soft policy,
    ``demos`` the expert episodes; returns the loss of eq. 9, the expert's mean taken ``Q_i`` and
    mean recovered reward ``r_i``, and logs the mean recovered ``r_i`` on expert and own steps.
    """

    update_scalars = ("expert_reward", "own_reward")

    def make_mixers(self, spec: EnvSpec, config: TrainConfig) -> None:
        """``M_R`` and ``M_V``: two QMIX-style mixers (MIFQ), two sums (IQVDN) or none (IIQ); and
        the target ``M_V`` that mixes next-state values."""
        if self.algo == "mifq":
            self.mixer_r = QMixer(spec.n_agents, spec.state_dim, config.mixer)
            self.mixer_v = QMixer(spec.n_agents, spec.state_dim, config.mixer)
        elif self.algo == "iqvdn":
            self.mixer_r, self.mixer_v = VDNMixer(), VDNMixer()
        elif self.algo == "iiq":
            self.mixer_r = self.mixer_v = None
        else:
            raise ValueError(f"algo: {self.algo!r} is not an inverse soft-Q learner (mifq, iqvdn, iiq)")
        self.target_mixer_v = None if self.mixer_v is None else copy.deepcopy(self.mixer_v).requires_grad_(False)

    @property
    def target_pairs(self) -> tuple[tuple[str, str], ...]:
        pairs = (("target_controller", "controller"),)
        return (*pairs, ("target_mixer_v", "mixer_v")) if self.mixer_v is not None else pairs

    def param_groups(self) -> tuple[ParamGroup, ...]:
        """MIFQ's hypernetworks at ``iq.mixer_lr`` (Algorithm 1's ``λ_ω``) where set; clipped with
        the agents."""
        if self.iq.mixer_lr is None or self.algo != "mifq":
            return ()
        return (ParamGroup("mixer_r.", self.iq.mixer_lr), ParamGroup("mixer_v.", self.iq.mixer_lr))

    def side_terms(self, episodes: Episodes, values: StepValues) -> SideTerms:
        """The loss terms of one batch ``episodes`` whose agent values are ``values``."""
        gamma = self.config.gamma
        states = episodes.state
        carry = 1.0 - episodes.terminated.unsqueeze(-1)  # [B, T, 1]
        rewards = values.taken - gamma * carry * values.next_v  # eq. 4, [B, T, N]
        reward_tot = mix(self.mixer_r, -rewards, states[:, :-1])
        v_tot = mix(self.mixer_v, values.v[:, :-1], states[:, :-1])
        if self.iq.use_target:
            with torch.no_grad():
                next_tot = mix(self.target_mixer_v, values.next_v, states[:, 1:])
        else:
            next_tot = mix(self.mixer_v, values.next_v, states[:, 1:])
        return SideTerms(rewards, reward_tot, v_tot - gamma * carry * next_tot, v_tot[:, :1])

    def objective(self, demos: Episodes, expert: SideTerms, batch: Episodes, own: SideTerms) -> torch.Tensor:
        """Eq. 9 (or 6) from both batches' terms (module docstring)."""
        expert_mask, own_mask = demos.filled.unsqueeze(-1), batch.filled.unsqueeze(-1)
        loss = masked_mean(chi2_phi(expert.reward_tot, self.iq.chi2_coef), expert_mask)
        mode = self.iq.value_loss
        if mode == "value":
            return loss + 0.5 * (masked_mean(expert.value_diff, expert_mask) + masked_mean(own.value_diff, own_mask))
        if mode == "value_replay":
            return loss + masked_mean(own.value_diff, own_mask)
        start_e, start_o = expert_mask[:, :1], own_mask[:, :1]  # episodes with a first step
        v0 = 0.5 * (masked_mean(expert.v0, start_e) + masked_mean(own.v0, start_o))
        return loss + (1.0 - self.config.gamma) * v0

    def forward(self, batch: Episodes, t_env: torch.Tensor, demos: Episodes) -> LossTerms:
        expert_values, own_values = self.step_values(demos), self.step_values(batch)
        expert = self.side_terms(demos, expert_values)
        own = self.side_terms(batch, own_values)
        loss = self.objective(demos, expert, batch, own)
        expert_mask, own_mask = demos.filled.unsqueeze(-1), batch.filled.unsqueeze(-1)
        with torch.no_grad():
            expert_reward = masked_mean(expert.rewards, expert_mask)
            own_reward = masked_mean(own.rewards, own_mask)
            q_taken = masked_mean(expert_values.taken, expert_mask)
        return LossTerms(loss, q_taken, expert_reward,
                         logged={"expert_reward": expert_reward, "own_reward": own_reward})
