"""MAGAIL (algo ``magail``): multi-agent generative adversarial imitation learning (Song et al.
2018, "Multi-Agent Generative Adversarial Imitation Learning"), the adversarial baseline of MIFQ
(Bui et al., §5.3 "MAGAIL"; notes/mifq_miner.md, notes/overcooked_il.md "IL extras").

Decentralised MAGAIL: each agent ``i`` has a discriminator ``D_i(o_i, a_i) ∈ (0, 1)`` of its own
observation and action, and its policy ``π_i`` is trained by reinforcement learning on the reward
that discriminator gives it. The GAIL objective per agent (Ho & Ermon 2016, eq. 16; Song et al.
eq. 13 with decentralised discriminators), with the expert labelled 1 as the references do, is

    min_{π_i} max_{D_i}  E_{π_E}[log D_i(o_i, a_i)] + E_{π}[log(1 − D_i(o_i, a_i))],

here in two parts that one update computes together:

* the discriminator's logistic (sigmoid cross-entropy) loss, ``D_i = σ(f(o_i, onehot(a_i), i))``,

      L_D = E_{demos}[−log σ(f)] + E_{own}[−log(1 − σ(f))]
          = E_{demos}[softplus(−f)] + E_{own}[softplus(f)],

  each mean over the valid agent-steps of its batch (filled steps, live agents: the death mask,
  :func:`~marlrepro.learners.ppo.live_agents`), the demo batch the core hands the learner
  (``demos=``) against the rollout's own batch: IMAX-PPO's ``Discriminator.compute_loss``
  (vietbt/IMAXPPO ``models/policies/policy.py``), one mean per side whatever their sizes;
* each agent's reward ``r_i,t = −log(1 − D_i(o_i,t, a_i,t)) = softplus(f)`` (IMAX-PPO's
  ``_calculate_reward``; ``discriminator.reward: centred_sigmoid`` gives ermongroup's
  ``2 D_i − 1``), 0 on padded steps and for dead agents, replaces the environment's reward in
  the PPO update of :class:`~marlrepro.learners.ppo.PPOLearner` (MAPPO, through
  :meth:`~marlrepro.learners.ppo.PPOLearner.rewards`): per agent, each agent's value ``V_i``
  and GAE on its own reward, as both references do (ermongroup's per-agent returns, IMAX-PPO's
  per-agent reward buffer), not a team mean.

The reward of a rollout is the discriminator's as the rollout was collected (the references
compute it in the runner, before the discriminator's update): a frozen copy,
``behaviour_discriminator``, refreshed before each rollout's updates like PPO's behaviour actor and
critic, so the ``learner.updates_per_rollout`` PPO epochs share one set of rewards and advantages.
One discriminator step per PPO update (``discriminator.steps_per_update: 1``): per rollout, as
many discriminator steps as PPO epochs, IMAX-PPO's ``update_disc`` over its ``noptepochs`` (whose
GAIL imitator takes one PPO epoch to them) and ermongroup's one per policy update. With ``k > 1``
an update has ``k`` phases
(:attr:`~marlrepro.learners.base.Learner.update_phases`), the policy and critic stepping in the
first alone and the discriminator in every one, on the same batches.

The discriminator's parameters are shared by the agents, the agent's one-hot id appended to its
input, as the project's other shared networks (the actor's ``agent.obs_agent_id``, the critic's
id; :class:`~marlrepro.learners.ppo.RecurrentCritic`): one network that can represent
ermongroup's decentralised discriminators, one per agent, on each agent's own observation and
action alone (not the centralised variant on all agents' observations and actions). Its form is
IMAX-PPO's: ``LayerNorm(in) → Linear(128) → ReLU → LayerNorm → Linear(1)``, orthogonal weights
(gains √2 and 0.01) and zero biases (:class:`~marlrepro.nets.stacked_mlp.StackedMLP`, one copy),
Adam at ``discriminator.lr`` without gradient clipping (IMAX-PPO's ``disc_optimizer``).
What MIFQ does not fix, and MACK (ermongroup's ACKTR) replaced by PPO: docs/deviations.md.
"""

from __future__ import annotations

import copy
import dataclasses

import torch
from torch import nn

from marlrepro.buffer import Episodes
from marlrepro.config import TrainConfig
from marlrepro.envs.base import EnvSpec
from marlrepro.learners.base import LossTerms, ParamGroup
from marlrepro.learners.ppo import PPOLearner, live_agents
from marlrepro.nets.stacked_mlp import StackedMLP


def valid_agent_steps(episodes: Episodes, spec: EnvSpec) -> torch.Tensor:
    """The agent-steps [B, T, N] that carry a transition: filled steps of live agents."""
    return episodes.filled.unsqueeze(-1) * live_agents(episodes.avail_actions[:, :-1], spec)


def masked_mean(values: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """The mean of ``values`` over the entries where ``weight`` is 1 (0 where there are none)."""
    return (values * weight).sum() / weight.sum().clamp(min=1.0)


class Discriminator(nn.Module):
    """The logit ``f(o_i, onehot(a_i), onehot(i))`` [B, T, N] of ``D_i = σ(f)`` for every agent-step
    (module docstring): IMAX-PPO's LayerNorm MLP of one hidden layer, shared by the agents."""

    def __init__(self, spec: EnvSpec, hidden_dim: int) -> None:
        super().__init__()
        self.n_actions = spec.n_actions
        self.net = StackedMLP(1, spec.obs_dim + spec.n_actions + spec.n_agents, hidden_dim, 1, layers=1)
        self.register_buffer("agent_ids", torch.eye(spec.n_agents), persistent=False)

    def forward(self, episodes: Episodes) -> torch.Tensor:
        """Logits [B, T, N] of the transitions of ``episodes`` (observation at ``t``, action taken)."""
        actions = episodes.actions
        b, t, n = actions.shape
        onehot = nn.functional.one_hot(actions, self.n_actions).to(episodes.obs.dtype)
        inputs = torch.cat([episodes.obs[:, :-1], onehot, self.agent_ids.expand(b, t, n, n)], dim=-1)
        return self.net(inputs.unsqueeze(-2)).view(b, t, n)


class MAGAILLearner(PPOLearner):
    """MAGAIL (module docstring): PPO on discriminator rewards, plus the discriminator's loss.
    ``forward(batch, t_env, [phase, stage,] demos=demos)``."""

    demonstrations = True
    behaviour_pairs = (*PPOLearner.behaviour_pairs, ("behaviour_discriminator", "discriminator"))
    update_scalars = (*PPOLearner.update_scalars, "disc_expert", "disc_policy")

    def __init__(self, spec: EnvSpec, config: TrainConfig, device: torch.device) -> None:
        super().__init__(spec, config, device)
        self.disc = config.discriminator
        self.discriminator = Discriminator(spec, self.disc.hidden_dim)
        self.behaviour_discriminator = copy.deepcopy(self.discriminator).requires_grad_(False)
        if self.disc.steps_per_update > 1:
            self.update_phases = self.disc.steps_per_update
            self.update_stages = (0,) + (1,) * (self.disc.steps_per_update - 1)  # PPO's phase, then D's alone
        self.to(device)

    def param_groups(self) -> tuple[ParamGroup, ...]:
        """PPO's actor and critic (in the first phase alone when the discriminator takes several
        steps per update) and the discriminator at ``discriminator.lr``, unclipped."""
        first = 0 if self.update_phases > 1 else None
        return (*(dataclasses.replace(group, phase=first) for group in super().param_groups()),
                ParamGroup("discriminator.", self.disc.lr, clip=False))

    def rewards(self, batch: Episodes) -> torch.Tensor:
        """Each agent's reward [B, T, N] from the discriminator that the rollout was collected
        under: ``softplus(f) = −log(1 − D)`` or ``2 D − 1``; 0 where no transition is (padding,
        dead agents). The environment's reward is not used."""
        logits = self.behaviour_discriminator(batch)
        reward = nn.functional.softplus(logits) if self.disc.reward == "softplus" else 2 * torch.sigmoid(logits) - 1
        return reward * valid_agent_steps(batch, self.spec)

    def discriminator_loss(self, batch: Episodes, demos: Episodes) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``L_D`` (module docstring) of the rollout's ``batch`` (label 0) against ``demos`` (label
        1), and the mean ``D`` on each side's valid agent-steps (detached)."""
        own, expert = self.discriminator(batch), self.discriminator(demos)
        own_valid, expert_valid = valid_agent_steps(batch, self.spec), valid_agent_steps(demos, self.spec)
        loss = (masked_mean(nn.functional.softplus(-expert), expert_valid)
                + masked_mean(nn.functional.softplus(own), own_valid))
        with torch.no_grad():
            d_expert = masked_mean(torch.sigmoid(expert), expert_valid)
            d_own = masked_mean(torch.sigmoid(own), own_valid)
        return loss, d_expert, d_own

    def forward(self, batch: Episodes, t_env: torch.Tensor, phase: torch.Tensor | None = None, stage: int = 0, *,
                demos: Episodes) -> LossTerms:
        """PPO's loss on the discriminator's rewards plus ``L_D`` (stage 0); ``L_D`` alone in the
        discriminator's further phases (stage 1), whose scalars the core does not log."""
        d_loss, d_expert, d_own = self.discriminator_loss(batch, demos)
        gail = {"disc_expert": d_expert, "disc_policy": d_own}
        if stage == 1:
            zero = torch.zeros_like(d_loss)
            return LossTerms(d_loss, zero, zero, logged={"entropy": zero, "clip_fraction": zero, **gail})
        terms = super().forward(batch, t_env)
        return LossTerms(terms.loss + d_loss, terms.q_taken_mean, terms.target_mean,
                         logged={**terms.logged, **gail}, buffers=terms.buffers)
