"""The multi-agent controller: builds agent inputs and runs the shared agent for all agents."""

from __future__ import annotations

import math
from typing import ClassVar, Literal, Protocol

import torch
from torch import nn

from marlrepro.config import AgentConfig
from marlrepro.envs.base import EnvBatch, EnvSpec
from marlrepro.exploration import epsilon_greedy, epsilon_mix, masked_greedy
from marlrepro.learners.max_entropy import gumbel_noise, masked_log_policy, temperature
from marlrepro.nets.agent import RNNAgent
from marlrepro.nets.iqn_agent import IQNRNNAgent
from marlrepro.nets.stacked_mlp import PerAgentPolicy, StackedMLP

ObsSource = Literal["obs", "full_obs", "state"]


class Observed(Protocol):
    """Anything holding per-step ``obs``, ``full_obs`` and ``state`` (an EnvBatch or Episodes)."""

    obs: torch.Tensor
    full_obs: torch.Tensor | None
    state: torch.Tensor


class AgentController(nn.Module):
    """Runs one shared :class:`RNNAgent` for ``N`` agents of ``B`` environments at once.

    The input of agent ``i`` at step ``t`` is ``[x_i^t, onehot(u_i^{t-1}), avail_i^t, onehot(i)]``
    (pymarl's ``obs_last_action`` and ``obs_agent_id``; the available-actions mask of step ``t``
    only with ``obs_avail_actions``, placed between them as the IGM-DA authors'
    ``basic_mac_avalible_action`` and its IQN twin do), where ``x_i`` is picked by ``source``: the
    agent's own observation (decentralised agents), its full-sight observation, or the global
    state (IGM-DA's experts).

    ``samples_policy``: whether exploring samples a softmax policy of the network's outputs (the
    fused rollout's twin does the same) rather than acting ε-greedily on them.

    ``jax_twin``: which acting step of :mod:`marlrepro.envs.jax_rollout` computes this controller's
    outputs in the fused rollout (:data:`~marlrepro.envs.jax_rollout.JAX_TWINS`): ``"rnn"``, the
    shared GRU agent on each agent's row (this class); ``"joint_rnn"``, the same network on the
    agents' rows concatenated, one memory per environment; ``"iqn"``, the implicit-quantile agent;
    ``"policy_mlp"``, per-agent (or joint) MLPs without memory; ``"joint_actions"``, a centralised
    DQN over the joint actions. The rollout dispatches on it alone, so a new controller names
    the twin it shares, or adds one there.
    """

    samples_policy = False
    jax_twin: ClassVar[str] = "rnn"

    def __init__(self, spec: EnvSpec, config: AgentConfig, source: ObsSource = "obs") -> None:
        super().__init__()
        self.spec = spec
        self.config = config
        self.source = source
        input_dim = {"obs": spec.obs_dim, "full_obs": spec.full_obs_dim, "state": spec.state_dim}[source]
        input_dim += spec.n_actions if config.obs_last_action else 0
        input_dim += spec.n_actions if config.obs_avail_actions else 0
        input_dim += spec.n_agents if config.obs_agent_id else 0
        self.agent = self.make_agent(input_dim)
        self.register_buffer("agent_ids", torch.eye(spec.n_agents), persistent=False)

    def make_agent(self, input_dim: int) -> nn.Module:
        """The shared agent network."""
        return RNNAgent(input_dim, self.config.hidden_dim, self.spec.n_actions)

    def observe(self, data: Observed) -> torch.Tensor:
        """This controller's per-agent input ``[..., N, dim]`` from a step or a batch of episodes."""
        if self.source == "obs":
            return data.obs
        if self.source == "full_obs":
            if data.full_obs is None:
                raise ValueError("this controller reads full_obs; build the env with full_sight_obs=true")
            return data.full_obs
        state = data.state.unsqueeze(-2)
        return state.expand(*state.shape[:-2], self.spec.n_agents, state.shape[-1])

    def build_inputs(
        self, obs: torch.Tensor, last_actions: torch.Tensor, avail: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``obs`` [B, T, N, dim], ``last_actions`` [B, T, N] (-1 = none), ``avail`` [B, T, N, A]
        (bool; used with ``obs_avail_actions``) -> [B, T, N, in]."""
        parts = [obs]
        if self.config.obs_last_action:
            onehot = nn.functional.one_hot(last_actions.clamp(min=0), self.spec.n_actions).to(obs.dtype)
            parts.append(onehot * (last_actions >= 0).unsqueeze(-1).to(obs.dtype))
        if self.config.obs_avail_actions:
            if avail is None:
                raise ValueError("this controller's agents read the available actions; pass avail")
            parts.append(avail.to(obs.dtype))
        if self.config.obs_agent_id:
            b, t, n = obs.shape[:3]
            parts.append(self.agent_ids.expand(b, t, n, n))
        return torch.cat(parts, dim=-1)

    def initial_hidden(self, batch: int) -> torch.Tensor:
        return self.agent.initial_hidden(batch * self.spec.n_agents, self.agent_ids.device)

    def forward(
        self, obs: torch.Tensor, last_actions: torch.Tensor, hidden: torch.Tensor,
        avail: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Q-values [B, T, N, A] for a sequence, continuing from ``hidden`` [1, B·N, H]."""
        q, hidden = self.agent(self.agent_rows(obs, last_actions, avail), hidden)
        return self.from_rows(q, obs.shape[0]), hidden

    def agent_rows(
        self, obs: torch.Tensor, last_actions: torch.Tensor, avail: torch.Tensor | None
    ) -> torch.Tensor:
        """The agent network's input rows: [B, T, N, dim] -> [B·N, T, in], rows ordered (env, agent)."""
        b, t, n = obs.shape[:3]
        return self.build_inputs(obs, last_actions, avail).permute(0, 2, 1, 3).reshape(b * n, t, -1)

    @staticmethod
    def from_rows(out: torch.Tensor, batch: int) -> torch.Tensor:
        """Undo :meth:`agent_rows` on an output: [B·N, T, ...] -> [B, T, N, ...]."""
        out = out.view(batch, -1, *out.shape[1:])
        return out.transpose(1, 2)

    def step(
        self, obs: torch.Tensor, last_actions: torch.Tensor, hidden: torch.Tensor,
        avail: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One acting step: ``obs`` [B, N, dim] -> (Q [B, N, A], hidden)."""
        q, hidden = self.agent.step(self.step_rows(obs, last_actions, avail), hidden)
        return q.view(*obs.shape[:2], -1), hidden

    def choose_actions(self, q: torch.Tensor, step: EnvBatch, epsilon: float, generator: torch.Generator,
                       explore: bool = True) -> torch.Tensor:
        """The actions [B, N] taken on one step's values ``q`` [B, N, A]: ε-greedy over the
        available actions while exploring, greedy otherwise (evaluation)."""
        return epsilon_greedy(q, step.avail_actions, epsilon if explore else 0.0, generator)

    def greedy(self, values: torch.Tensor, avail: torch.Tensor) -> torch.Tensor:
        """Each agent's greedy available action [..., N] from this controller's outputs ``values``
        (the agents' own [..., N, A]) and the availability ``avail`` [..., N, A] (DAgger's labels)."""
        return masked_greedy(values, avail)

    def step_rows(
        self, obs: torch.Tensor, last_actions: torch.Tensor, avail: torch.Tensor | None
    ) -> torch.Tensor:
        """The agent network's input rows of one step: [B, N, dim] -> [B·N, in]."""
        avail_t = None if avail is None else avail.unsqueeze(1)
        x = self.build_inputs(obs.unsqueeze(1), last_actions.unsqueeze(1), avail_t)
        return x.view(obs.shape[0] * obs.shape[1], -1)

    def sequence(
        self, obs: torch.Tensor, actions: torch.Tensor, avail: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Q-values over whole episodes from a zero hidden state.

        ``obs`` [B, T+1, N, dim], ``actions`` [B, T, N], ``avail`` [B, T+1, N, A] -> Q [B, T+1, N, A];
        the last-action input at step ``t`` is ``actions[:, t-1]`` (none at ``t = 0``).
        """
        q, _ = self(obs, self.previous_actions(actions), self.initial_hidden(obs.shape[0]), avail)
        return q

    @staticmethod
    def previous_actions(actions: torch.Tensor) -> torch.Tensor:
        """The last-action input of every step of whole episodes: ``actions`` [B, T, N] -> [B, T+1, N]
        (-1, none, at ``t = 0``)."""
        return torch.cat([torch.full_like(actions[:, :1], -1), actions], dim=1)


class DistributionalController(AgentController):
    """Runs one shared :class:`~marlrepro.nets.iqn_agent.IQNRNNAgent` (DMIX's agents, DFAC §4).

    The quantile fractions ``τ`` are shared by all agents of an environment (DMIX's mixer needs
    it). Acting (:meth:`step`) and :meth:`forward` / :meth:`sequence` return the expected values
    ``Q_i(u) = mean_k Z_i(τ_k, u)`` over ``N̂ = n_greedy_quantiles`` sampled fractions, so the
    runner and exploration treat it like any other controller; :meth:`quantile_sequence` returns
    the quantiles at given fractions for the distributional loss.
    """

    jax_twin: ClassVar[str] = "iqn"

    def make_agent(self, input_dim: int) -> nn.Module:
        cfg = self.config
        return IQNRNNAgent(input_dim, cfg.hidden_dim, self.spec.n_actions, cfg.quantile_embed_dim)

    def quantiles(
        self, obs: torch.Tensor, last_actions: torch.Tensor, hidden: torch.Tensor, taus: torch.Tensor,
        avail: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``Z`` [B, T, N, K, A] at fractions ``taus`` [B, T, K] (one set per environment and step),
        continuing from ``hidden`` [1, B·N, H]."""
        z, hidden = self.agent(self.agent_rows(obs, last_actions, avail), hidden, taus)
        return self.from_rows(z, obs.shape[0]), hidden

    def forward(
        self, obs: torch.Tensor, last_actions: torch.Tensor, hidden: torch.Tensor,
        avail: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Expected values [B, T, N, A]: the mean of ``Z`` over ``N̂`` fractions sampled per
        environment and step."""
        b, t = obs.shape[:2]
        taus = torch.rand(b, t, self.config.n_greedy_quantiles, device=obs.device)
        z, hidden = self.quantiles(obs, last_actions, hidden, taus, avail)
        return z.mean(dim=-2), hidden

    def step(
        self, obs: torch.Tensor, last_actions: torch.Tensor, hidden: torch.Tensor,
        avail: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One acting step: ``obs`` [B, N, dim] -> (expected values [B, N, A], hidden), the mean
        over ``N̂`` fractions sampled per environment."""
        b, n = obs.shape[:2]
        q, hidden = self.agent.expected_step(self.step_rows(obs, last_actions, avail), hidden, groups=b,
                                             n_taus=self.config.n_greedy_quantiles)
        return q.view(b, n, -1), hidden

    def quantile_sequence(
        self, obs: torch.Tensor, actions: torch.Tensor, avail: torch.Tensor | None, taus: torch.Tensor
    ) -> torch.Tensor:
        """``Z`` over whole episodes from a zero hidden state, at ``taus`` [B, T+1, K]:
        ``obs`` [B, T+1, N, dim], ``actions`` [B, T, N] -> [B, T+1, N, K, A]."""
        z, _ = self.quantiles(obs, self.previous_actions(actions), self.initial_hidden(obs.shape[0]), taus, avail)
        return z


class SoftmaxPolicyController(AgentController):
    """Agents that explore by sampling a softmax policy: ME-IGM's (§5; the +Entropy and MLP
    ablations) and FOP's actor.

    While exploring, agent ``i`` samples ``π_i(·) = softmax(f_i(g_i(Q_i; s); s) / α)`` over its
    available actions, where ``f_i ∘ g_i`` is :attr:`transform` of the global state ``s``
    (:class:`~marlrepro.nets.opt.OrderPreservingTransform`, or none: the network's outputs
    themselves) and ``α`` the temperature ``exp(log_alpha)`` (at least ``ALPHA_FLOOR``), learned
    (ME-IGM) or fixed (``learn_temperature=False``: FOP's actor, whose outputs are the policy's
    logits, at ``α = 1``). With probability ``ε`` (the run's exploration schedule; 0 for ME-IGM) a
    uniform available action replaces the sample, FOP's ``(1 − ε) π + ε · uniform``.
    Evaluation is greedy on the network's outputs: for ME-IGM the raw ``Q_i``, which the
    order-preserving transform makes the policy's most probable action (decentralised execution);
    for FOP the policy's most probable action. The JAX twin for the fused rollout is
    :func:`marlrepro.envs.jax_rollout.opt_logits` and ``softmax_sample``.
    """

    samples_policy = True

    def __init__(self, spec: EnvSpec, config: AgentConfig, transform: nn.Module | None, alpha_init: float,
                 source: ObsSource = "obs", learn_temperature: bool = True) -> None:
        super().__init__(spec, config, source)
        self.transform = transform
        self.log_alpha = nn.Parameter(torch.tensor(math.log(alpha_init)), requires_grad=learn_temperature)

    def inner(self, q: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        """``g_i(Q_i; s)`` of every entry [..., N, A] (the values the mixer mixes)."""
        return q if self.transform is None else self.transform.inner(q, states)

    def outer(self, x: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        """``f_i(x; s)``: the policy's logits from :meth:`inner`'s values [..., N, A]."""
        return x if self.transform is None else self.transform.outer(x, states)

    def log_policy(self, q: torch.Tensor, states: torch.Tensor, avail: torch.Tensor) -> torch.Tensor:
        """``log π_i(·)`` [..., N, A] of the agents' values ``q`` in states ``states`` [..., S]."""
        return masked_log_policy(self.outer(self.inner(q, states), states), avail, temperature(self.log_alpha))

    def choose_actions(self, q: torch.Tensor, step: EnvBatch, epsilon: float, generator: torch.Generator,
                       explore: bool = True) -> torch.Tensor:
        """A sample of each agent's softmax policy, ε-mixed with uniform available actions, while
        exploring; the greedy available action of the network's outputs otherwise."""
        if not explore:
            return super().choose_actions(q, step, 0.0, generator, explore=False)
        # Gumbel-max: the argmax of log π + Gumbel noise is a sample of π; no host synchronisation,
        # and a diverged run's NaN values still give an action (the loss then reports the divergence)
        log_pi = self.log_policy(q, step.state, step.avail_actions)
        sampled = (log_pi + gumbel_noise(log_pi, generator)).argmax(dim=-1)
        return epsilon_mix(sampled, step.avail_actions, epsilon, generator)


class PerAgentPolicyController(SoftmaxPolicyController):
    """Heterogeneous agents (HASAC, the DDPG family): each agent its own softmax policy, an MLP on
    its observation (:class:`~marlrepro.nets.stacked_mlp.PerAgentPolicy`, no recurrence, no
    shared weights; ``layer_norm``: HARL's LayerNorm MLP, else MADDPG's plain one), at
    temperature 1. Acting and evaluation are :class:`SoftmaxPolicyController`'s: a sample of
    the policy while exploring, its most probable available action otherwise; the JAX twin is
    :func:`marlrepro.envs.jax_rollout.per_agent_policy_step`."""

    joint = False
    jax_twin: ClassVar[str] = "policy_mlp"

    def __init__(self, spec: EnvSpec, config: AgentConfig, layer_norm: bool = True) -> None:
        self.layer_norm = layer_norm  # a plain attribute, read by make_agent during the base's __init__
        super().__init__(spec, config, transform=None, alpha_init=1.0, learn_temperature=False)

    def make_agent(self, input_dim: int) -> nn.Module:
        return PerAgentPolicy(self.spec.n_agents, input_dim, self.config.hidden_dim, self.spec.n_actions,
                              layer_norm=self.layer_norm, joint=self.joint)


class JointPolicyController(PerAgentPolicyController):
    """A centralised policy (CESMA §4's DDPG expert): one MLP on all agents' inputs concatenated
    (the joint observation), its output every agent's logits, sampled per agent (a product of
    per-agent softmax heads); acting, evaluation and the JAX twin as
    :class:`PerAgentPolicyController`'s."""

    joint = True


class GreedyPerAgentPolicyController(PerAgentPolicyController):
    """:class:`PerAgentPolicyController`'s per-agent policies acting on their most probable
    available action while exploring too, ε-mixed with uniform available actions by the run's ε
    (CESMA's students with ``dagger.acting: greedy``, appendix D.1); its JAX twin is
    ``per_agent_policy_step`` followed by ``masked_greedy``, no policy sample."""

    samples_policy = False

    def choose_actions(self, q: torch.Tensor, step: EnvBatch, epsilon: float, generator: torch.Generator,
                       explore: bool = True) -> torch.Tensor:
        """ε-greedy on the policies' logits while exploring, greedy otherwise."""
        return AgentController.choose_actions(self, q, step, epsilon, generator, explore)


class JointQController(GreedyPerAgentPolicyController):
    """CESMA's centralised VDN (appendix E.3; ``agent.network: joint_mlp``): one ReLU MLP on the
    agents' inputs concatenated (the joint observation) whose output holds every agent's Q head
    [N, A] (:class:`~marlrepro.nets.stacked_mlp.PerAgentPolicy` with ``joint``, the DDPG expert's
    network), acting ε-greedily on each head; its fused twin is ``per_agent_policy_step`` followed
    by ``masked_greedy`` and ``epsilon_mix``, as :class:`GreedyPerAgentPolicyController`'s."""

    joint = True

    def __init__(self, spec: EnvSpec, config: AgentConfig) -> None:
        super().__init__(spec, config, layer_norm=False)


class JointRNNQController(AgentController):
    """CESMA's centralised recurrent VDN expert on SMAC (§6.1, appendix E.1; ``agent.network:
    joint_rnn``): pymarl's agent network (Linear → ReLU → GRU cell → Linear,
    :class:`~marlrepro.nets.agent.RNNAgent`) of one copy, on the agents' inputs concatenated (§6.1:
    "the same architecture as the multi-agents, but now receives the concatenated global
    observations as input"), whose output holds every agent's Q head [N, A] ("outputs Q-values for
    each agent"); value decomposition's VDN sums them. Its hidden state is one per environment,
    [1, B, H]. Acting is ε-greedy on each agent's head over its available actions, evaluation and
    :meth:`greedy` per agent, as :class:`AgentController`'s. Its JAX twin in the fused rollout is
    :func:`~marlrepro.envs.jax_rollout.rnn_agent_step` on the concatenated inputs."""

    jax_twin: ClassVar[str] = "joint_rnn"

    def make_agent(self, input_dim: int) -> nn.Module:
        n = self.spec.n_agents
        return RNNAgent(n * input_dim, self.config.hidden_dim, n * self.spec.n_actions)

    def initial_hidden(self, batch: int) -> torch.Tensor:
        """Zero hidden state [1, B, H]: one joint network per environment."""
        return self.agent.initial_hidden(batch, self.agent_ids.device)

    def forward(
        self, obs: torch.Tensor, last_actions: torch.Tensor, hidden: torch.Tensor,
        avail: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Every agent's Q-values [B, T, N, A] for a sequence ``obs`` [B, T, N, dim], continuing
        from ``hidden`` [1, B, H]."""
        x = self.build_inputs(obs, last_actions, avail).flatten(-2)  # [B, T, N·in], agent-major
        q, hidden = self.agent(x, hidden)
        return q.view(*obs.shape[:3], -1), hidden

    def step(
        self, obs: torch.Tensor, last_actions: torch.Tensor, hidden: torch.Tensor,
        avail: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One acting step: ``obs`` [B, N, dim] -> (Q [B, N, A], hidden [1, B, H])."""
        x = self.step_rows(obs, last_actions, avail).view(obs.shape[0], -1)  # [B, N·in]
        q, hidden = self.agent.step(x, hidden)
        return q.view(*obs.shape[:2], -1), hidden


def joint_action_table(n_agents: int, n_actions: int, one_at_a_time: bool) -> torch.Tensor:
    """The joint actions a centralised DQN enumerates, [K, N] (row ``k``: each agent's action of
    output ``k``). Every joint action (K = ``|A|^N``, agent 0 the most significant digit: output
    ``Σ_i a_i |A|^(N−1−i)``), or with ``one_at_a_time`` (CESMA §4.2, appendix E.4) the no-op
    (action 0) for everyone, then agent ``i`` taking action ``a ≥ 1`` alone at output
    ``1 + i (|A| − 1) + a − 1`` (K = ``1 + N (|A| − 1)``)."""
    if not one_at_a_time:
        digits = n_actions ** torch.arange(n_agents - 1, -1, -1)
        return torch.arange(n_actions ** n_agents).unsqueeze(-1) // digits % n_actions
    moves = torch.zeros(n_agents, n_actions - 1, n_agents, dtype=torch.int64)
    moves[torch.arange(n_agents), :, torch.arange(n_agents)] = torch.arange(1, n_actions)
    return torch.cat([torch.zeros(1, n_agents, dtype=torch.int64), moves.flatten(0, 1)])


class JointActionController(AgentController):
    """A centralised DQN over joint actions (CESMA's exponential DQN, appendix E.3, and its
    one-at-a-time expert, E.4): one ReLU MLP (two hidden layers of ``hidden_dim``) on the agents'
    inputs concatenated, one Q value per joint action of :attr:`joint_actions` [K, N]. Its
    outputs are [..., 1, K] (one centralised "agent"). A joint action is available when each of
    its agents' actions is (:meth:`joint_avail`); acting is ε-greedy over the available joint
    actions (with probability ε a uniformly random available joint action), evaluation greedy;
    :meth:`greedy` decodes the greedy joint action into the agents' actions (DAgger's labels).
    Its JAX twin is :func:`marlrepro.envs.jax_rollout.joint_action_step`."""

    jax_twin: ClassVar[str] = "joint_actions"

    def __init__(self, spec: EnvSpec, config: AgentConfig, joint_actions: torch.Tensor) -> None:
        self.n_joint = joint_actions.shape[0]  # a plain attribute, read by make_agent during the base's __init__
        super().__init__(spec, config, "obs")
        self.register_buffer("joint_actions", joint_actions.clone(), persistent=False)
        self.register_buffer("agent_index", torch.arange(spec.n_agents).expand_as(joint_actions).clone(),
                             persistent=False)

    def make_agent(self, input_dim: int) -> nn.Module:
        return StackedMLP(1, self.spec.n_agents * input_dim, self.config.hidden_dim, self.n_joint, layer_norm=False)

    def initial_hidden(self, batch: int) -> torch.Tensor:
        """A placeholder [1, batch, 1]: the network has no memory."""
        return torch.zeros(1, batch, 1, device=self.agent_ids.device)

    def forward(
        self, obs: torch.Tensor, last_actions: torch.Tensor, hidden: torch.Tensor,
        avail: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Joint-action values [B, T, 1, K] of a sequence ``obs`` [B, T, N, dim]."""
        return self.agent(self.build_inputs(obs, last_actions, avail).flatten(-2).unsqueeze(-2)), hidden

    def step(
        self, obs: torch.Tensor, last_actions: torch.Tensor, hidden: torch.Tensor,
        avail: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One acting step: ``obs`` [B, N, dim] -> (joint-action values [B, 1, K], hidden)."""
        avail_t = None if avail is None else avail.unsqueeze(1)
        q, hidden = self(obs.unsqueeze(1), last_actions.unsqueeze(1), hidden, avail_t)
        return q.squeeze(1), hidden

    def joint_avail(self, avail: torch.Tensor) -> torch.Tensor:
        """``avail`` [..., N, A] -> [..., K]: joint action ``k`` is available iff each agent's action is."""
        return avail[..., self.agent_index, self.joint_actions].all(dim=-1)

    def encode(self, actions: torch.Tensor) -> torch.Tensor:
        """The output index [...] of the joint action ``actions`` [..., N] (0 where it is none of
        :attr:`joint_actions`: padding)."""
        return (actions.unsqueeze(-2) == self.joint_actions).all(dim=-1).to(torch.int64).argmax(dim=-1)

    def greedy(self, values: torch.Tensor, avail: torch.Tensor) -> torch.Tensor:
        """The agents' actions [..., N] of the greedy available joint action of ``values`` [..., 1, K]."""
        return self.joint_actions[masked_greedy(values.squeeze(-2), self.joint_avail(avail))]

    def choose_actions(self, q: torch.Tensor, step: EnvBatch, epsilon: float, generator: torch.Generator,
                       explore: bool = True) -> torch.Tensor:
        """ε-greedy over the available joint actions while exploring, greedy otherwise -> [B, N]."""
        joint_avail = self.joint_avail(step.avail_actions)  # [B, K]
        chosen = masked_greedy(q.squeeze(-2), joint_avail)
        if explore and epsilon > 0.0:
            scores = torch.rand(joint_avail.shape, device=q.device, generator=generator).masked_fill(~joint_avail, -1.0)
            at_random = torch.rand(chosen.shape, device=q.device, generator=generator) < epsilon
            chosen = torch.where(at_random, scores.argmax(dim=-1), chosen)
        return self.joint_actions[chosen]


def build_controller(spec: EnvSpec, config: AgentConfig, source: ObsSource, algo: str) -> AgentController:
    """The controller of ``algo``'s agents: implicit-quantile agents for dmix, one MLP on the joint
    observation with a Q head per agent (``agent.network: joint_mlp``) or its recurrent twin
    (``joint_rnn``), else the GRU agent."""
    if config.network == "joint_mlp":
        return JointQController(spec, config)
    if config.network == "joint_rnn":
        return JointRNNQController(spec, config)
    cls = DistributionalController if algo == "dmix" else AgentController
    return cls(spec, config, source)
