"""Decentralisation by DAgger with learned communication (algo ``dagger``,
``dagger.communication: learned``): CESMA's Algorithm 2 (Lin et al., §4.4 and appendix C) on the
shared core, around :mod:`marlrepro.learners.dagger` (Algorithm 1).

**The channel is the environment's.** In the MPE communication tasks (``jaxmpe:simple_speaker_listener``,
``simple_reference``, ``simple_reference_3a5l``) a word is part of an agent's discrete action
(action ``a`` = move ``a % moves_i`` and word ``a // moves_i``) and the world puts the one-hot of
the word said at step ``t`` into the other agents' observations of step ``t + 1``. The task
declares both facts (:class:`~marlrepro.envs.jax_mpe_world.CommChannel`: each agent's moves and
words, and each :class:`~marlrepro.envs.jax_mpe_world.WordSlot`, the columns of a listener's
observation that hold a speaker's last word), so nothing here knows a layout.

**The students.** Agent ``i``'s MLP on its own observation (which holds the words it heard, its
``c_i``) has two heads on one body, §4.4's ``π_i(o_i, c_i) = (a_i, b_i)``: ``M`` move logits and
``W`` word logits (:class:`~marlrepro.nets.stacked_mlp.FactoredPolicy`). The policy over the env's
joint actions is their product, ``log π_i(a) = log π_i^move(a % M_i) + log π_i^word(a // M_i)``,
so the core's per-agent controller and its JAX twin act with it unchanged: while training they
sample the move and the word independently (DAgger's students sample, ``dagger.acting: sample``;
``greedy`` takes both argmaxes), and at execution the word is the comm head's argmax, a discrete
one-hot in the others' observations.

**The labels.** The centralised expert acts in the same joint (move, word) space; its label of
agent ``i`` at a step is its greedy joint action, of which only the move ``a*_i % M_i`` is
imitated (Algorithm 2's ``ℓ(â*_j, π_j(·)_action)``: "the subscript action denotes the physical
action (and not the communication action)"). The expert's word is discarded: the expert sees every
observation and needs no language, and the students' language is theirs to learn. An agent with a
single move (the speaker of speaker–listener) has no action loss (a single available move is
masked as :func:`~marlrepro.learners.ppo.live_agents` masks a dead agent) and learns through its
communication loss alone.

**The update** (Algorithm 2, lines 6–15, on a batch of stored episodes; a stored step ``t`` is
the sample ``((o, c), ô, â*)`` with ``(o, c)`` the observations of step ``t − 1`` and ``ô`` those
of step ``t``):

1. every agent's up-to-date message ``b'_k = softmax(word logits of π_k(o_k, c_k))`` from its
   STORED observation of step ``t − 1`` (line 7; the relaxation: a softmax, as the paper's §6.3
   "use the softmax operator to provide the bridge between the discrete and continuous", or with
   ``dagger.channel: gumbel`` a Gumbel-softmax sample at temperature 1, MADDPG's);
2. each listener's observation of step ``t``, its word slots replaced by those messages
   (:func:`relaxed_observations`; step 0, after a reset, keeps its zeros: nothing was said);
3. the cross-entropy of every agent's MOVE head on its relaxed observation against the expert's
   move label, averaged over labelled live agent-steps (:func:`~marlrepro.learners.bc.imitation_loss`).

Back-propagating 3 trains each agent's action head on its own loss (Algorithm 2's action loss) and,
through the messages in the others' observations, each speaker's communication head on the OTHER
agents' losses (its communication loss): a speaker's own loss never reaches its comm head (its
move logits do not read its word logits), and its comm head hears nothing but through the channel.
Algorithm 2 weights the communication loss by ``1/(M − 1)``; the messages carry their gradient
scaled by that factor (:func:`scale_gradient`; 1 with two agents), so one backward pass of the
summed loss gives each agent its action loss plus its communication loss, the per-agent updates
of lines 8–17 at once (the agents' parameters are disjoint). The messages are computed from the
stored ``(o, c)`` and not re-relaxed through time: the paper back-propagates one step of the
channel. The labels are computed at update time from the stored (discrete) observations, as
Algorithm 1's (:func:`~marlrepro.learners.dagger.expert_labels`).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import torch
from torch import nn

from marlrepro.buffer import Episodes
from marlrepro.config import AgentConfig, TrainConfig
from marlrepro.controller import GreedyPerAgentPolicyController, PerAgentPolicyController
from marlrepro.envs.base import EnvSpec
from marlrepro.learners.base import LossTerms
from marlrepro.learners.bc import imitation_loss
from marlrepro.learners.dagger import DAggerLearner, expert_labels
from marlrepro.learners.gumbel import gumbel_softmax
from marlrepro.learners.max_entropy import MASKED_LOGIT
from marlrepro.nets.stacked_mlp import FactoredPolicy

if TYPE_CHECKING:  # the JAX MPE is imported when a learner is built, not with the learners
    from marlrepro.envs.jax_mpe_world import CommChannel


def joint_map(channel: CommChannel, n_actions: int) -> torch.Tensor:
    """[N, M + W, A] 0/1: row ``m`` of agent ``i`` marks its actions of move ``m``, row ``M + w``
    those of word ``w`` (``M``, ``W``: the most moves and words of any agent); actions past the
    agent's own count (padding) are in no row."""
    n, moves, words = len(channel.moves), max(channel.moves), max(channel.words)
    table = torch.zeros(n, moves + words, n_actions)
    for i, (m_i, w_i) in enumerate(zip(channel.moves, channel.words, strict=True)):
        for a in range(m_i * w_i):
            table[i, a % m_i, a] = 1.0
            table[i, moves + a // m_i, a] = 1.0
    return table


class _Communicating:
    """Students whose network is a :class:`FactoredPolicy` for ``channel``'s agents."""

    def __init__(self, spec: EnvSpec, config: AgentConfig, channel: CommChannel) -> None:
        self.channel = channel  # a plain attribute, read by make_agent during the base's __init__
        super().__init__(spec, config)

    def make_agent(self, input_dim: int) -> nn.Module:
        return FactoredPolicy(self.spec.n_agents, input_dim, self.config.hidden_dim,
                              joint_map(self.channel, self.spec.n_actions), layer_norm=self.layer_norm)


class CommPolicyController(_Communicating, PerAgentPolicyController):
    """Communicating students sampling their product (move, word) policy while exploring, greedy
    (both argmaxes) otherwise; the JAX twin is ``per_agent_policy_step`` with the joint map."""


class GreedyCommPolicyController(_Communicating, GreedyPerAgentPolicyController):
    """Communicating students acting on both heads' argmaxes while exploring too
    (``dagger.acting: greedy``)."""


def scale_gradient(x: torch.Tensor, factor: float) -> torch.Tensor:
    """``x`` forward, its gradient multiplied by ``factor`` backward."""
    return x.detach() + factor * (x - x.detach())


class Channel(nn.Module):
    """The placement of messages into observations for one task (frozen 0/1 buffers, not
    persistent: they follow from the task): ``keep`` [N, D] is 0 at every word slot of a
    listener's observation, ``place`` [N, W, N, D] puts word ``w`` of speaker ``i`` at its slot
    of listener ``j``."""

    def __init__(self, channel: CommChannel, obs_dim: int) -> None:
        super().__init__()
        n, words = len(channel.words), max(channel.words)
        keep = torch.ones(n, obs_dim)
        place = torch.zeros(n, words, n, obs_dim)
        for slot in channel.slots:
            width = channel.words[slot.speaker]
            keep[slot.listener, slot.start:slot.start + width] = 0.0
            for w in range(width):
                place[slot.speaker, w, slot.listener, slot.start + w] = 1.0
        self.register_buffer("keep", keep, persistent=False)
        self.register_buffer("place", place, persistent=False)
        self.register_buffer("word_avail", torch.arange(words)[None, :] < torch.tensor(channel.words)[:, None],
                             persistent=False)
        self.moves = max(channel.moves)

    def relaxed_observations(self, obs: torch.Tensor, messages: torch.Tensor) -> torch.Tensor:
        """Observations [B, T+1, N, D] whose word slots at step ``t ≥ 1`` hold ``messages``
        [B, T+1, N, W] of step ``t − 1`` (each speaker's, at each of its listeners' slots); step 0
        is kept (a reset: nothing was said)."""
        heard = torch.einsum("btiw,iwjd->btjd", messages[:, :-1].to(obs.dtype), self.place)
        return torch.cat([obs[:, :1], obs[:, 1:] * self.keep + heard], dim=1)

    def messages(self, word_logits: torch.Tensor, gumbel: bool) -> torch.Tensor:
        """The relaxed words [..., N, W] of word logits [..., N, W]: a softmax over each agent's own
        words (a Gumbel-softmax sample with ``gumbel``); each sums to 1."""
        logits = word_logits.masked_fill(~self.word_avail, MASKED_LOGIT)
        return gumbel_softmax(logits) if gumbel else torch.softmax(logits, dim=-1)

    def move_avail(self, avail: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        """[..., N, M] bool: the moves of some available action (``table``: the joint map)."""
        return torch.einsum("...na,nma->...nm", avail.to(table.dtype), table[:, :self.moves]) > 0


class DAggerCommLearner(DAggerLearner):
    """Algorithm 2 (module docstring): :class:`DAggerLearner` with communicating students, whose
    messages are relaxed into the others' next observations at update time. ``channel``: the
    placement of messages; ``moves`` [N]: each agent's number of moves (a buffer)."""

    def __init__(self, spec: EnvSpec, config: TrainConfig, device: torch.device) -> None:
        from marlrepro.envs.jax_mpe import comm_channel

        channel = comm_channel(config.env.name)  # first: a task without a channel fails before the expert loads
        super().__init__(spec, config, device)
        students = GreedyCommPolicyController if config.dagger.acting == "greedy" else CommPolicyController
        self.actor = students(spec, config.agent, channel)
        self.channel = Channel(channel, spec.obs_dim)
        self.gumbel = config.dagger.channel == "gumbel"
        self.register_buffer("moves", torch.tensor(channel.moves), persistent=False)
        self.to(device)

    def heads(self, obs: torch.Tensor, batch: Episodes) -> torch.Tensor:
        """The students' move then word logits [B, T+1, N, M + W] on observations ``obs``."""
        inputs = self.actor.build_inputs(obs, self.actor.previous_actions(batch.actions), batch.avail_actions)
        return self.actor.agent.heads(inputs)

    def loss_terms(self, batch: Episodes, labels: torch.Tensor, weight: torch.Tensor | None = None,
                   channel_gradient: bool = True) -> tuple[LossTerms, torch.Tensor, torch.Tensor]:
        """(:class:`LossTerms` of the move heads' cross-entropy against the expert's joint-action
        ``labels`` [B, T, N] on the relaxed observations, the messages [B, T+1, N, W], the relaxed
        observations). ``weight``: which agents' losses count ([N] or [B, T, N]; all by default);
        ``channel_gradient`` False detaches the messages (no loss reaches a comm head)."""
        moves = self.channel.moves
        messages = self.channel.messages(self.heads(batch.obs, batch)[..., moves:], self.gumbel)
        sent = scale_gradient(messages, 1.0 / max(self.spec.n_agents - 1, 1))
        relaxed = self.channel.relaxed_observations(batch.obs, sent if channel_gradient else sent.detach())
        move_logits = self.heads(relaxed, batch)[..., :moves]
        move_labels = labels % self.moves
        moving = dataclasses.replace(batch, avail_actions=self.channel.move_avail(
            batch.avail_actions, self.actor.agent.joint_map))
        return imitation_loss(move_logits, move_labels, moving, self.spec, weight, per_agent=True), messages, relaxed

    def forward(self, batch: Episodes, t_env: torch.Tensor) -> LossTerms:
        """Algorithm 2's summed action and communication losses on ``batch`` (module docstring);
        logged: ``accuracy``, the share of the expert's move labels that are the move heads' argmax,
        and ``loss_agent{i}``, agent ``i``'s own move cross-entropy (0 for an agent that only speaks)."""
        return self.loss_terms(batch, expert_labels(self.expert, batch))[0]


def build_dagger(spec: EnvSpec, config: TrainConfig, device: torch.device) -> DAggerLearner:
    """Algorithm 1's learner, or Algorithm 2's with ``dagger.communication: learned``."""
    if config.dagger.communication == "learned":
        return DAggerCommLearner(spec, config, device)
    return DAggerLearner(spec, config, device)
