"""Typed training configuration: YAML files plus ``key=value`` overrides, validated up front.

A config is a tree of dataclasses. Files and overrides use dotted keys (``learner.lr=5e-4``,
``env.options.sight_range=0``); an unknown key or a value of the wrong type raises
:class:`~marlrepro.errors.ConfigError` naming the key and the valid choices before anything runs.
The Snakemake workflow runs the same checks on every planned run while it parses
(:func:`read_settings`, :func:`check_settings`, :func:`check_run_settings`), without loading torch
or JAX: env names and options are checked against :mod:`marlrepro.env_catalog`.
Defaults are pymarl2's QMIX settings (Hu et al. 2021, "Rethinking the implementation tricks").
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from marlrepro.env_catalog import (
    ALLY_STATE_BACKENDS,
    FUSED_BACKENDS,
    INTEGER_OBS_BACKENDS,
    check_env,
)
from marlrepro.errors import ConfigError, unknown_choice
from marlrepro.io_utils import load_yaml

Algo = Literal["iql", "vdn", "qmix", "qplex", "dmix", "fop", "mappo", "ippo", "hasac", "ddpg", "mifq", "iqvdn",
               "iiq", "masqil", "bc", "magail", "dagger", "joint_dqn"]
# the on-policy learners: each update trains on the last rollout alone (learners/ppo.py; MAGAIL's
# policy, learners/magail.py)
ON_POLICY_ALGOS = ("mappo", "ippo", "magail")
# the actor-critic learners, whose own losses replace the value-decomposition modes
ACTOR_CRITIC_ALGOS = ("fop", *ON_POLICY_ALGOS, "hasac", "ddpg")
# inverse soft-Q imitation (MIFQ and its IQ-Learn baselines, learners/inverse_q.py)
INVERSE_Q_ALGOS = ("mifq", "iqvdn", "iiq")
# the soft-Q imitation learners (the iq section): inverse soft-Q and MASQIL (learners/sqil.py)
SOFT_Q_IMITATION_ALGOS = (*INVERSE_Q_ALGOS, "masqil")
# the learners that learn from demonstrations (``Learner.demonstrations = True``; the demos section)
DEMONSTRATION_ALGOS = (*SOFT_Q_IMITATION_ALGOS, "bc", "magail")
IQValueLoss = Literal["value", "value_replay", "v0"]
GAILReward = Literal["softplus", "centred_sigmoid"]
CriticInput = Literal["state", "agent_state", "obs"]
DDPGActor = Literal["per_agent", "joint"]
DDPGCritic = Literal["central", "own"]
Optimizer = Literal["adam", "rmsprop"]
Device = Literal["auto", "cpu", "cuda"]
RolloutMode = Literal["auto", "fused", "stepwise"]
ImitationMode = Literal["none", "dagger", "bc"]
MaxEntropyMode = Literal["none", "opt", "entropy", "mlp"]
MixerInput = Literal["transformed", "local"]
ExpertInput = Literal["full_obs", "state"]
StudentActing = Literal["sample", "greedy"]
Communication = Literal["none", "learned"]
ChannelRelaxation = Literal["softmax", "gumbel"]
DAggerDataset = Literal["shared", "per_agent"]
DAggerStudent = Literal["mlp", "rnn"]
AgentNetwork = Literal["rnn", "joint_mlp", "joint_rnn"]
JointActions = Literal["exponential", "one_at_a_time"]
# the value-decomposition learners whose agents may be one MLP on the joint observation (agent.network)
JOINT_MLP_ALGOS = ("iql", "vdn", "qmix")
# the learners of value decomposition's TD loss (learners/value_decomposition.py and its subclasses)
VALUE_ALGOS = ("iql", "vdn", "qmix", "qplex", "dmix", "joint_dqn")
BufferDtype = Literal["float32", "float16", "uint8"]
MatmulPrecision = Literal["highest", "high"]


@dataclass
class EnvConfig:
    """Which task, how many parallel copies, and backend options."""

    name: str = "smax:3m"
    num_envs: int = 8
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class AgentConfig:
    """Shared recurrent agent: fc -> GRU -> fc, fed obs, last action and agent id.

    The ``n_*quantiles`` and ``quantile_embed_dim`` settings are DMIX's implicit-quantile agent
    (DFAC, Sun et al. 2021; ignored by the other algorithms): ``N`` fractions ``τ`` sampled per
    step for the online return distribution, ``N'`` for the target's, ``N̂`` averaged when acting,
    and the width of the cosine embedding of ``τ``.
    """

    hidden_dim: int = 64
    obs_last_action: bool = True
    obs_agent_id: bool = True
    obs_avail_actions: bool = False
    """Append the available-actions mask to the decentralised agents' input (the IGM-DA authors'
    ``mac: basic_mac_avalible_action``, used by their baselines and their -DA learners alike);
    IGM-DA's experts never get it (the authors' ``upper_mac: basic_mac_all``). pymarl2: off."""
    n_quantiles: int = 8  # N
    n_target_quantiles: int = 8  # N'
    n_greedy_quantiles: int = 32  # N̂
    quantile_embed_dim: int = 64
    network: AgentNetwork = "rnn"
    """``rnn``: the shared recurrent agent above. ``joint_mlp`` (value decomposition's iql, vdn,
    qmix; CESMA's centralised VDN, appendix E.3): one ReLU MLP of two hidden layers of
    ``hidden_dim`` on the agents' inputs concatenated (the joint observation), whose output holds
    every agent's Q head [N, A] (:class:`~marlrepro.controller.JointQController`); the mixer
    mixes those heads as usual. ``joint_rnn`` (the same algos; CESMA's SMAC expert, §6.1 and
    appendix E.1): pymarl's recurrent agent (fc → GRU cell of ``hidden_dim`` → fc) of one copy on
    the concatenated inputs, its output every agent's Q head
    (:class:`~marlrepro.controller.JointRNNQController`)."""


HYPERNET_LAYERS = (1, 2)  # pymarl's QMixer (and QPLEX's transformation) hypernetworks
ADV_HYPERNET_LAYERS = (1, 2, 3)  # QPLEX's attention heads (``DMAQ_SI_Weight``)


@dataclass
class MixerConfig:
    """Mixer sizes: QMIX's hypernetworks, and QPLEX's (ignored by IQL and VDN).

    ``hypernet_layers`` ∈ {1, 2} (pymarl's QMixer); QPLEX's attention heads have
    ``adv_hypernet_layers`` ∈ {1, 2, 3} layers of width ``adv_hypernet_embed``, ``num_kernel`` of
    them (QPLEX's ``DMAQ_SI_Weight``; pymarl2's dmaq defaults 2 and 4, the IGM-DA authors' 3 and 10).
    """

    embed_dim: int = 32
    hypernet_embed: int = 64
    hypernet_layers: int = 2
    adv_hypernet_layers: int = 2
    adv_hypernet_embed: int = 64
    num_kernel: int = 4


MAX_ENTROPY_ALGOS = ("vdn", "qmix", "qplex")  # the mixers ME-IGM's Q_tot may use
ADAM_EPS = 1e-8  # torch's Adam default, which pymarl2 keeps (it passes no eps)
RMSPROP_EPS = 1e-5  # pymarl's optim_eps


@dataclass
class LearnerConfig:
    """TD learning: optimiser, targets and replay.

    ``optim_eps``: the optimiser's epsilon, Adam's and RMSProp's alike; unset (null) means the
    reference default of the chosen optimiser: :data:`ADAM_EPS` for Adam (pymarl2, which passes
    none to torch), :data:`RMSPROP_EPS` for RMSProp (pymarl's ``optim_eps``). DFAC passes its
    ``optim_eps`` (1e-5) to Adam too. ``optim_alpha`` is RMSProp's smoothing constant.

    ``td_weight``: the weight of the mean squared TD error in the loss: 0.5 for pymarl2's learners
    (``0.5 * td_error ** 2``), 1 for pymarl's and the IGM-DA authors' (``td_error ** 2``; their
    imitation term is added at weight 1). DMIX's quantile Huber loss ignores it (it has its own
    scale, as DFAC's).
    """

    optimizer: Optimizer = "adam"
    lr: float = 1e-3
    optim_alpha: float = 0.99
    optim_eps: float | None = None
    weight_decay: float = 0.0
    """An L2 penalty ``weight_decay · θ`` added to every trained parameter's gradient before the
    optimiser's step, as torch's Adam and RMSprop ``weight_decay`` (CESMA E.1's 1e-4 on SMAC); 0: none."""
    td_weight: float = 0.5
    grad_clip: float = 10.0
    gamma: float = 0.99
    td_lambda: float = 0.6
    double_q: bool = True
    batch_size: int = 128
    buffer_size: int = 5000
    buffer_dtype: BufferDtype = "float32"
    """Storage type of the replay buffer's observations, states and full-sight observations
    (sampled batches are float32 either way). ``float16`` halves the buffer: on MMM2 a
    5000-episode buffer holds 6.4 GB of observations in float32 (IGM-DA twice that), which caps
    how many runs share one GPU (:mod:`marlrepro.memory`). ``uint8`` quarters it, losslessly, for
    the backends whose observations are small integers (Overcooked's feature grids; see
    :data:`marlrepro.env_catalog.INTEGER_OBS_BACKENDS`)."""
    buffer_on_host: bool = False
    """Keep the replay buffer in pinned host memory instead of on the training device (large maps,
    big packs); each sampled batch is then copied to the device."""
    target_update_interval: int = 200
    target_polyak: float | None = None
    """Value decomposition and ``joint_dqn``: a soft target update, each target network moved by
    this fraction τ towards its online network after every update (CESMA's DQN experts, appendix
    E.3/E.4) instead of the hard copy every ``target_update_interval`` episodes; null: hard copies."""
    learning_starts: int = 0
    """Episodes a run's replay must hold before its first update (MADDPG's ``batch_size ·
    max_episode_len`` transitions: 1024 MPE episodes of 25 steps); a batch's worth,
    ``batch_size``, is always needed, so 0 starts as soon as one can be drawn."""
    updates_per_rollout: int = 1
    """Gradient updates after each rollout, the same for every rollout (PPO's epochs)."""
    updates_per_env_step: float | None = None
    """The update-to-data ratio ρ > 0 instead of a fixed count (HASAC: HARL's one update per
    vector step of 8 environments, 0.125): after each rollout from which a run can train (its
    buffer holds ``batch_size`` episodes) the rollout's environment steps join the run's credited
    steps ``S``, and the run has then taken ``floor(ρ × S)`` updates in all; the fraction
    ``ρ × S − updates`` carries over, so the ratio is exact over time whatever the episodes'
    lengths (``Trainer._updates_due``). ``updates_per_rollout`` must keep its default 1 (the two
    settings exclude each other); null: ``updates_per_rollout`` updates per rollout."""


@dataclass
class ExplorationConfig:
    """Linear epsilon schedule over environment steps, after ``warmup_steps`` steps of uniformly
    random available actions (HASAC's warm-up; 0: none)."""

    epsilon_start: float = 1.0
    epsilon_finish: float = 0.05
    epsilon_anneal_steps: int = 100_000
    warmup_steps: int = 0


@dataclass
class ImitationConfig:
    """IGM-DA (Hong et al., §3, Algorithm 1): value decomposition trains *expert* agents on global
    information; decentralised *learner* agents on the local observation imitate them.

    ``mode``: ``none`` (plain value decomposition), ``dagger`` (the learners act and the experts
    label: IGM-DA) or ``bc`` (the experts act: the behaviour-cloning ablation of Fig. 5).
    ``expert_input``: what the experts see: ``full_obs`` (each ally's full-sight observation, as
    the authors' SMAC fork; needs ``env.options.full_sight_obs=true``) or ``state``.
    The learners are the decentralised agents of ``agent`` (``agent.obs_avail_actions`` appends
    the mask to their input); the experts never see the mask, as the authors' ``basic_mac_all``.
    """

    mode: ImitationMode = "none"
    expert_input: ExpertInput = "full_obs"


@dataclass
class MaxEntropyConfig:
    """Maximum-entropy value decomposition (ME-IGM, Wu et al.; notes/me_igm.md).

    ``mode``: ``none`` (ε-greedy Q-learning), ``opt`` (ME-IGM: the agents' values pass through
    per-agent order-preserving transformations of the state, whose softmax over the temperature
    is the rollout policy; ME-QMIX / ME-QPLEX with ``algo`` qmix / qplex), ``entropy`` (the
    "+Entropy" ablation: the softmax of the raw local values, no transformation) or ``mlp`` (the
    "ME-QMIX (MLP)" ablation: the same transformation without non-negative weights).
    Evaluation is greedy on the raw local values in every mode.
    The temperature ``α`` starts at ``alpha_init`` and learns with its own learning rate
    ``temperature_lr`` (Adam, not clipped) towards a joint policy entropy of
    ``target_entropy_per_agent × n_agents`` nats (ME-IGM eq. 10-11); ``temperature_lr: 0``
    keeps it fixed (the released code's constant α = 0.03).
    ``mixer_input`` (where the paper's lost math leaves two readings, docs/deviations.md):
    ``transformed`` mixes the transformation's inner values, ``Q_tot = Mixer(g(Q); s)``, ``g``
    learning from the TD loss and ``f`` from the OPT loss (the released code's gradient paths);
    ``local`` mixes the raw local values, ``Q_tot = Mixer(Q; s)``, and the whole transformation
    ``f ∘ g`` learns from the OPT loss alone (§5's text).
    ``away_td_weight`` (the released code's weighted TD loss; the paper is silent): a TD error
    whose gradient moves ``Q_tot`` away from the policies' summed logits ``Σ_i f_i(g_i(q_i))``
    counts with this weight, the others with 1, and the loss is normalised by the summed weights
    (:func:`~marlrepro.learners.max_entropy.away_from_policy_weights`). 1 is the plain TD loss;
    the code's is 0.5. Only with a transformation (``opt``, ``mlp``).
    """

    mode: MaxEntropyMode = "none"
    mixer_input: MixerInput = "transformed"
    opt_hypernet_layers: int = 2  # the transformation's hypernetworks: 2 (the code), 1 (appendix C, SMACv2)
    alpha_init: float = 0.03
    temperature_lr: float = 0.3
    target_entropy_per_agent: float = 0.24
    away_td_weight: float = 0.5


@dataclass
class FOPConfig:
    """FOP (Zhang et al. 2021), ME-IGM's maximum-entropy actor-critic baseline (algo ``fop``;
    PKU-RL/FOP-DMAC-MACPF ``fop.yaml`` and ``fop_learner.py``; notes/actor_critic.md).

    The temperature follows a fixed schedule, ``α(t) = max(alpha_finish, alpha_start −
    t / alpha_decay_steps)`` over environment steps ``t`` (the code's ``max(0.05, 0.5 − t / 2e5)``),
    not learned. The actor learns at ``learner.lr``, each critic (per-agent network and mixer) at
    ``critic_lr``; the three are clipped separately to ``learner.grad_clip``. The mixer's
    attention has ``n_head`` heads whose squared logits are penalised by ``attend_reg_coef``
    (Qatten's magnitude regulariser).
    """

    critic_lr: float = 5e-4
    alpha_start: float = 0.5
    alpha_finish: float = 0.05
    alpha_decay_steps: int = 200_000
    n_head: int = 4
    attend_reg_coef: float = 0.001


@dataclass
class PPOConfig:
    """MAPPO and IPPO (algos ``mappo``, ``ippo``; learners/ppo.py): PPO with a recurrent softmax
    actor and a recurrent critic ``V_i`` per agent, trained on each rollout alone.

    Each rollout's ``env.num_envs`` episodes are the whole data: ``learner.updates_per_rollout``
    updates (PPO's epochs) each draw ``learner.batch_size`` of them; ``learner.gamma`` and
    ``learner.td_lambda`` are GAE's γ and λ. ``critic_input``: ``state`` (the global state, the
    agent's observation and its id: the SMACv2 paper's MAPPO), ``agent_state`` (the global state
    with the agent's own ally block moved first, and its id; the state part zero once the agent is
    dead: IMAX-PPO's and marlbenchmark/on-policy's agent-specific state; only envs whose state
    starts with per-ally blocks, :data:`~marlrepro.env_catalog.ALLY_STATE_BACKENDS`) or ``obs``
    (IPPO: the observation and the id). The actor learns at ``learner.lr``, the critic at
    ``critic_lr``, each clipped on its own gradient norm (``learner.grad_clip``); with ``lr_decay``
    both decay linearly to 0 at ``run.t_max``. ``clip``: PPO's ε; ``value_clip``: the critic's
    change clipped around its rollout value (0: no clipping); ``entropy_coef``: the policy entropy
    bonus; ``advantage_norm``: advantages standardised over the live agents of the batch.
    ``value_norm``: the critic predicts returns normalised by running statistics (on-policy's
    ValueNorm, :mod:`marlrepro.learners.value_norm`); ``huber_delta``: the critic's per-sample loss
    is Huber's with this δ instead of ``½ e²`` (null).
    """

    critic_input: CriticInput = "state"
    critic_lr: float = 5e-4
    clip: float = 0.2
    value_clip: float = 0.2
    entropy_coef: float = 0.01
    lr_decay: bool = False
    advantage_norm: bool = True
    value_norm: bool = False
    huber_delta: float | None = None


@dataclass
class HASACConfig:
    """HASAC (algo ``hasac``; learners/hasac.py; PKU-MARL/HARL ``hasac.yaml``).

    The actors learn at ``learner.lr``, the twin critic at ``critic_lr``; nothing is clipped.
    ``auto_alpha``: each agent's temperature (and the critic's) starts at ``alpha_init`` and
    learns at ``alpha_lr`` towards ``target_entropy_scale · log |A(s)|`` nats per agent, ``|A(s)|``
    the actions available to it in each state; false keeps them at ``alpha_init``. The critic's target is an ``n_step`` return, its target network a
    Polyak average with rate ``polyak`` after every update.
    """

    critic_lr: float = 5e-4
    alpha_init: float = 1.0
    auto_alpha: bool = True
    alpha_lr: float = 3e-4
    target_entropy_scale: float = 0.98
    polyak: float = 0.005
    n_step: int = 20


@dataclass
class DDPGConfig:
    """The DDPG family with Gumbel-softmax actors over discrete actions (algo ``ddpg``;
    learners/ddpg.py): MADDPG (Lowe et al. 2017; ``actor: per_agent``, ``critic: central``),
    independent DDPG (``per_agent``, ``own``) and CESMA's centralised expert (``joint``,
    ``central``: one actor on the joint observation with a head per agent, one critic).

    ``critic``: ``central``, each critic reads every agent's observation and action; ``own``, agent
    ``i``'s critic reads only its own. ``actor``: ``per_agent``, each agent its own actor on its
    observation; ``joint``, one actor on the concatenated observations (it needs a central critic).
    Actors and critics are ReLU MLPs of ``agent.hidden_dim`` units, both at ``learner.lr`` and
    clipped to ``learner.grad_clip``. The actor's critic input is ``gumbel_softmax`` of its logits at
    ``temperature`` (``straight_through``: the one-hot sample with the soft one's gradient), plus
    ``actor_reg · mean(logits²)``; the targets follow by Polyak averaging at rate ``polyak``.
    """

    actor: DDPGActor = "per_agent"
    critic: DDPGCritic = "central"
    temperature: float = 1.0
    straight_through: bool = False
    actor_reg: float = 1e-3
    polyak: float = 0.01


@dataclass
class DemosConfig:
    """The demonstrations a learner of :data:`DEMONSTRATION_ALGOS` learns from (MIFQ §5.2; the core's
    demonstration hook, ``docs/architecture.md``).

    ``path``: a file written by ``marlrepro collect-demos`` (:mod:`marlrepro.demos`) for the run's
    task, checked before training starts; ``count``: the run uses its FIRST ``count`` episodes
    (MIFQ's 128…4096 demonstrations: every count is a prefix of the same file; the runs of a pack
    may differ in it); ``batch_size``: the demonstration episodes of each update, drawn from those
    by the run's generator, distinct within a batch."""

    path: str = ""
    count: int = 128
    batch_size: int = 128


@dataclass
class DAggerConfig:
    """CESMA's decentralisation by DAgger (algo ``dagger``; learners/dagger.py; Algorithm 1).

    ``expert``: the fixed centralised expert, a policy file written by ``marlrepro export-policy``
    (:mod:`marlrepro.policy_file`) for the run's task; the learner loads and checks it before
    anything trains. Another algo takes none. ``acting``: how the students act while collecting
    (Algorithm 1, line 3, ``a_i = π_i(o_i)``): ``sample`` their softmax policies, or ``greedy``,
    their most probable available action (appendix D.1: "the agents only perform greedy action
    selection"); evaluation is greedy either way. ``communication``: ``learned`` trains the
    students' words by CESMA's Algorithm 2 (learners/dagger_comm.py; a JAX MPE task whose agents
    speak), the words relaxed by ``channel`` (``softmax`` or a ``gumbel``-softmax sample) in
    training and discrete in the env; ``none``: Algorithm 1, words imitated as any action."""

    expert: str = ""
    acting: StudentActing = "sample"
    communication: Communication = "none"
    channel: ChannelRelaxation = "softmax"
    dataset: DAggerDataset = "shared"
    """``shared``: one aggregated dataset, every student trained on the same sampled batch (§4,
    the paper's experiments); ``per_agent``: each agent's own dataset (appendix A.1, Fig. 8):
    each update draws ``learner.batch_size`` episodes for EACH student, the students' batches
    distinct episodes of the aggregated data, so no two agents train on the same batch."""
    student: DAggerStudent = "mlp"
    """The students' network: ``mlp``, each agent its own 2-layer MLP on its own observation
    (appendix E.2, the MPE tasks); ``rnn``, pymarl's recurrent agent (fc → GRU of
    ``agent.hidden_dim`` → fc) shared by the agents, each fed its unit id (``agent.obs_agent_id``)
    and trained on whole stored episodes with the hidden state unrolled (appendix E.1, SMAC: "the
    parameters are shared among the multi-agents ... each agent is give its own unit ID")."""
    move_weight: float = 1.0
    """The cross-entropy weight of a label that is not the no-op (action 0) against 1 for a no-op
    label, normalised by the summed weights (appendix E.4's weighted cross-entropy for the
    one-at-a-time expert, whose labels are mostly no-ops); 1: the plain cross-entropy."""


@dataclass
class JointDQNConfig:
    """CESMA's centralised DQN experts on the joint action (algo ``joint_dqn``;
    learners/joint_dqn.py; appendix E.3 and E.4): one MLP (two hidden layers of
    ``agent.hidden_dim``) on the joint observation with one Q value per joint action, trained by
    value decomposition's TD loss with ``Q_tot`` the value of the joint action taken. ``actions``:
    ``exponential``, every joint action (``|A|^N`` outputs, E.3's "exponential actions DQN");
    ``one_at_a_time``, one agent moves while the others take the no-op, action 0
    (``1 + N(|A| − 1)`` outputs, E.4)."""

    actions: JointActions = "exponential"


@dataclass
class IQConfig:
    """The soft-Q imitation learners (algos ``mifq``, ``iqvdn``, ``iiq``: learners/inverse_q.py;
    ``masqil``: learners/sqil.py; MIFQ paper §4, notes/mifq_miner.md).

    ``alpha``: the temperature of the soft values ``V_i = α log Σ_{a avail} exp(Q_i(a) / α)`` and
    of the acting policy ``softmax(Q_i / α)`` (the paper's equations: 1; IQ-Learn's code: 0.01).
    ``chi2_coef``: ``c`` of the regulariser ``φ(x) = x + c·x²`` applied to the mixed expert reward
    term (eq. 9: ``c = ½``, the χ² divergence; IQ-Learn's ``1 / (4 · 0.5)``); 0 gives eq. (6)'s
    plain term. ``value_loss``: how the initial-state value ``(1 − γ) E[V_tot(S_0)]`` is
    estimated: ``value`` (IQ-Learn's online option: ``E_ρ[V_tot(S) − γ V_tot(S')]`` over the
    expert and the replay batch, half each), ``value_replay`` (eq. 9 as printed: over the replay
    batch alone) or ``v0`` (eq. 6: ``(1 − γ) V_tot(S_0)`` of the episodes' first states).
    ``use_target``: the next-state values ``V_i(o')`` and ``V_tot(S')`` come from the target
    networks, without gradient (IQ-Learn's ``train.use_target``); false: from the online networks,
    with gradient (IQ-Learn's default, and the inverse-Q configs': docs/deviations.md).
    ``mixer_lr``: Algorithm 1's ``λ_ω``, the learning rate of MIFQ's two hypernetworks (null:
    ``learner.lr``, Table 2's single rate; 0 keeps them at their initial weights, the fixed
    ``ψ`` of Theorem 4.2). Eq. (9) is unbounded below in ``ω_V`` and reaches its χ² minimum
    through ``ω_R`` alone, so trained hypernetworks drift to a degenerate solution
    (learners/inverse_q.py, docs/deviations.md). Ignored by IQVDN, IIQ and MASQIL.
    """

    alpha: float = 1.0
    chi2_coef: float = 0.5
    value_loss: IQValueLoss = "value"
    use_target: bool = True
    mixer_lr: float | None = None


@dataclass
class DiscriminatorConfig:
    """MAGAIL's discriminator (algo ``magail``, learners/magail.py; Song et al. 2018, MIFQ §5.3).

    ``D(o_i, a_i) = σ(f(o_i, a_i, i))``, ``f`` an MLP of one hidden layer of ``hidden_dim`` units
    with LayerNorm (vietbt/IMAXPPO ``Discriminator``), trained at its own learning rate ``lr``
    (Adam, not clipped) by ``steps_per_update`` gradient steps per PPO update, each on the update's
    replay and demo batches (1: one per PPO epoch, the references' ratio; more: update phases, the
    policy and critic stepping in the first). ``reward``: each agent's reward from the logit
    ``f``: ``softplus`` (``−log(1 − D) = softplus(f)``, IMAXPPO's) or ``centred_sigmoid``
    (``2 D − 1``, ermongroup/multiagent-gail's)."""

    hidden_dim: int = 128
    lr: float = 1e-3
    steps_per_update: int = 1
    reward: GAILReward = "softplus"


@dataclass
class RunConfig:
    """Budget, evaluation, checkpointing and placement of one training run."""

    t_max: int = 2_000_000
    seed: int = 0
    device: Device = "auto"
    eval_interval: int = 10_000
    eval_episodes: int = 32
    checkpoint_interval: int = 200
    log_interval: int = 10_000
    progress: bool = True
    # fused: a whole episode batch per compiled JAX call (JAX backends); stepwise: a Python loop
    # over environment steps (any backend); auto: fused where the backend offers it.
    rollout: RolloutMode = "auto"
    # CUDA only: capture the fixed-shape gradient step once as a CUDA graph and replay it
    # (marlrepro.core.graphed); false runs it eagerly, kernel by kernel.
    cuda_graph: bool = True
    # a sampled batch is cut to its longest episode (pymarl's ``max_t_filled``), rounded up to one
    # of this many lengths evenly spaced up to the episode limit (each a CUDA graph of its own);
    # 1 keeps every batch padded to the episode limit.
    length_buckets: int = 1
    # CUDA only: float32 matmuls in full float32 ("highest") or on TF32 tensor cores ("high":
    # torch.set_float32_matmul_precision). "high" is what JAX does by default on GPUs (the anchor)
    # and what PyTorch did by default when pymarl2 was written (torch 1.7-1.11); CPU ignores it.
    matmul_precision: MatmulPrecision = "high"
    # fused rollouts only: evaluate all eval_episodes in one rollout of that many environments
    # instead of env.num_envs at a time (pymarl's runner). A fused rollout on a GPU costs its
    # longest episode, not its width (BENCHMARKS.md §6), so this cuts an evaluation's cost by
    # eval_episodes / num_envs; stepwise rollouts evaluate num_envs at a time either way.
    eval_at_once: bool = False
    # keep checkpoint/best.pt, the learner at the run's best evaluation so far (its greedy win rate,
    # then its return), and record that evaluation in final.json's ``best``: the checkpoint that
    # ``marlrepro export-policy --checkpoint best`` exports (MIFQ's experts keep their best).
    keep_best: bool = False


@dataclass
class TrackingConfig:
    """MLflow tracking; ``uri`` empty means the MLFLOW_TRACKING_URI env var or no tracking."""

    uri: str = ""
    experiment: str = "marlrepro"
    run_name: str = ""
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class TrainConfig:
    """Everything ``marlrepro train`` needs."""

    algo: Algo = "qmix"
    env: EnvConfig = field(default_factory=EnvConfig)
    agent: AgentConfig = field(default_factory=AgentConfig)
    mixer: MixerConfig = field(default_factory=MixerConfig)
    learner: LearnerConfig = field(default_factory=LearnerConfig)
    exploration: ExplorationConfig = field(default_factory=ExplorationConfig)
    imitation: ImitationConfig = field(default_factory=ImitationConfig)
    max_entropy: MaxEntropyConfig = field(default_factory=MaxEntropyConfig)
    fop: FOPConfig = field(default_factory=FOPConfig)
    ppo: PPOConfig = field(default_factory=PPOConfig)
    hasac: HASACConfig = field(default_factory=HASACConfig)
    ddpg: DDPGConfig = field(default_factory=DDPGConfig)
    demos: DemosConfig = field(default_factory=DemosConfig)
    dagger: DAggerConfig = field(default_factory=DAggerConfig)
    joint_dqn: JointDQNConfig = field(default_factory=JointDQNConfig)
    iq: IQConfig = field(default_factory=IQConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    run: RunConfig = field(default_factory=RunConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)


def _check_value(key: str, value: Any, hint: Any) -> Any:
    """Coerce ``value`` to the annotated type ``hint`` or raise a ConfigError naming ``key``
    (``X | None`` accepts null, else checks ``X``)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):  # X | None
        if value is None:
            return None
        (inner,) = (arg for arg in typing.get_args(hint) if arg is not type(None))
        return _check_value(key, value, inner)
    if origin is Literal:
        choices = typing.get_args(hint)
        if value not in choices:
            raise unknown_choice(key, value, [str(c) for c in choices])
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected true/false, got {type(value).__name__} {value!r}")
    if hint is int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # allow 2e6 for step counts
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected an integer, got {type(value).__name__} {value!r}")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{key}: expected a number, got {type(value).__name__} {value!r}")
    if hint is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{key}: expected a string, got {type(value).__name__} {value!r}")
    if origin is dict or hint is dict:
        if isinstance(value, Mapping):
            return dict(value)
        raise ConfigError(f"{key}: expected a mapping, got {type(value).__name__} {value!r}")
    raise TypeError(f"unsupported config annotation {hint!r} for {key}")  # programming error


@functools.cache
def _type_hints(cls: type) -> dict[str, Any]:
    """The resolved field annotations of config dataclass ``cls`` (resolved once: the annotations
    are strings, and resolving them cost most of loading a config)."""
    return typing.get_type_hints(cls)


def _apply(node: Any, values: Mapping[str, Any], prefix: str) -> None:
    """Recursively set fields of dataclass ``node`` from nested mapping ``values``."""
    hints = _type_hints(type(node))
    names = {f.name for f in dataclasses.fields(node)}
    for key, value in values.items():
        dotted = f"{prefix}{key}"
        if key not in names:
            raise unknown_choice(dotted, key, names, what="key")
        current = getattr(node, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, Mapping):
                raise ConfigError(f"{dotted}: expected a mapping of {sorted(hints)}, got {value!r}")
            _apply(current, value, f"{dotted}.")
        elif isinstance(current, dict) and isinstance(value, Mapping):
            current.update(value)  # open mappings (env.options, tracking.tags) merge
        else:
            setattr(node, key, _check_value(dotted, value, hints[key]))


def parse_override(text: str) -> dict[str, Any]:
    """Turn ``a.b.c=value`` into ``{'a': {'b': {'c': value}}}``; the value is parsed as YAML."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected key=value, e.g. learner.lr=5e-4")
    key, raw = text.split("=", 1)
    value = load_yaml(raw) if raw.strip() else ""
    # YAML 1.1 reads 5e-4 as a string; accept scientific notation as a number.
    if isinstance(value, str):
        try:
            value = float(value) if any(c in value for c in ".eE") else value
        except ValueError:
            pass
    return unflatten({key.strip(): value})


def read_yaml_mapping(path: str | Path) -> dict[str, Any]:
    """The mapping in the YAML file ``path`` (empty for an empty file); errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    try:
        data = load_yaml(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return dict(data)


def check_settings(prefix: str, settings: Mapping[str, Any]) -> None:
    """Reject unknown keys and wrong types in the nested train ``settings``; errors name each key
    as ``prefix`` + its dotted path (``config/vd.yaml: experiments.e.settings.learner.lrr``)."""
    from_dict(settings, prefix)


def from_dict(data: Mapping[str, Any], prefix: str = "") -> TrainConfig:
    """The :class:`TrainConfig` of nested plain data, such as :func:`to_dict`'s (a checkpoint's
    config): the defaults, then ``data``, keys and types checked (errors name each key as
    ``prefix`` + its dotted path)."""
    config = TrainConfig()
    _apply(config, data, prefix)
    return config


def read_settings(path: str | Path) -> dict[str, Any]:
    """The nested settings of a train-config file (``config/algos/qmix.yaml``), keys and types checked."""
    settings = read_yaml_mapping(path)
    check_settings(f"{path}: ", settings)
    return settings


def load_config(paths: Iterable[str | Path] = (), overrides: Iterable[str] = ()) -> TrainConfig:
    """Build a :class:`TrainConfig` from YAML files (later ones win) then ``key=value`` overrides.

    Environment names and options are validated against the backend as well, so a config that
    loads is a config that can run.
    """
    from marlrepro.envs.registry import validate_env

    config = TrainConfig()
    for path in paths:
        _apply(config, read_settings(path), f"{path}: ")
    for text in overrides:
        _apply(config, parse_override(text), "")
    _, config.env.options = validate_env(config.env.name, config.env.options)
    check_config(config)
    return config


def check_run_settings(*layers: Mapping[str, Any]) -> None:
    """Check the config that nested settings ``layers`` (later wins) give, as :func:`load_config`
    would, short of building the environment: keys, types, the env name and options (against
    :mod:`marlrepro.env_catalog`) and the cross-field rules of :func:`check_config`."""
    config = TrainConfig()
    for layer in layers:
        _apply(config, layer, "")
    config.env.options = check_env(config.env.name, config.env.options)
    check_config(config)


def _check_on_policy(config: TrainConfig) -> None:
    """The settings an on-policy learner (MAPPO, IPPO) needs: its replay holds one rollout."""
    learner, envs = config.learner, config.env.num_envs
    if learner.buffer_size != envs:
        raise ConfigError(f"learner.buffer_size: algo {config.algo!r} trains on its last rollout alone, so it "
                          f"keeps env.num_envs = {envs} episodes; set learner.buffer_size={envs} "
                          f"(got {learner.buffer_size})")
    if envs % learner.batch_size:
        raise ConfigError(f"learner.batch_size: algo {config.algo!r} draws minibatches from one rollout of "
                          f"{envs} episodes; use a divisor of env.num_envs (got {learner.batch_size})")
    ppo = config.ppo
    for key in ("critic_lr", "clip"):
        if getattr(ppo, key) <= 0:
            raise ConfigError(f"ppo.{key}: must be > 0, got {getattr(ppo, key)}")
    for key in ("value_clip", "entropy_coef"):
        if getattr(ppo, key) < 0:
            raise ConfigError(f"ppo.{key}: must be >= 0, got {getattr(ppo, key)}")
    if ppo.huber_delta is not None and ppo.huber_delta <= 0:
        raise ConfigError(f"ppo.huber_delta: must be > 0 (or null: a squared error), got {ppo.huber_delta}")
    backend = config.env.name.split(":", 1)[0]
    if ppo.critic_input == "agent_state" and backend not in ALLY_STATE_BACKENDS:
        raise ConfigError(f"ppo.critic_input: 'agent_state' reorders the per-ally blocks at the start of the state, "
                          f"and the state of {config.env.name!r} has none (backends with them: "
                          f"{', '.join(sorted(ALLY_STATE_BACKENDS))}); valid choices here: state, obs")


def _check_hasac(config: TrainConfig) -> None:
    """HASAC's settings: positive rates, a Polyak rate in (0, 1], an entropy scale in (0, 1]."""
    hasac = config.hasac
    for key in ("critic_lr", "alpha_init", "alpha_lr", "n_step"):
        if getattr(hasac, key) <= 0:
            raise ConfigError(f"hasac.{key}: must be > 0, got {getattr(hasac, key)}")
    for key in ("polyak", "target_entropy_scale"):
        if not 0 < getattr(hasac, key) <= 1:
            raise ConfigError(f"hasac.{key}: must lie in (0, 1], got {getattr(hasac, key)}")


def _check_ddpg(config: TrainConfig) -> None:
    """The DDPG family's settings: a joint actor needs the central critic; a positive temperature,
    a Polyak rate in (0, 1], a non-negative regulariser."""
    ddpg = config.ddpg
    if ddpg.actor == "joint" and ddpg.critic != "central":
        raise ConfigError(f"ddpg.critic: a joint actor acts on the joint observation and is trained through one "
                          f"critic of the joint observation and action; set ddpg.critic=central (got {ddpg.critic!r})")
    if ddpg.temperature <= 0:
        raise ConfigError(f"ddpg.temperature: must be > 0, got {ddpg.temperature}")
    if not 0 < ddpg.polyak <= 1:
        raise ConfigError(f"ddpg.polyak: must lie in (0, 1], got {ddpg.polyak}")
    if ddpg.actor_reg < 0:
        raise ConfigError(f"ddpg.actor_reg: must be >= 0, got {ddpg.actor_reg}")


def _check_cesma_experts(config: TrainConfig) -> None:
    """CESMA's DQN experts and DAgger's weighting: a joint MLP only for plain value decomposition
    (or ``joint_dqn``, whose network it always is), a soft target rate in (0, 1], a positive weight."""
    network = config.agent.network
    if network == "joint_mlp" and config.algo not in (*JOINT_MLP_ALGOS, "joint_dqn"):
        raise ConfigError(f"agent.network: 'joint_mlp' is an agent of value decomposition; valid algos: "
                          f"{', '.join(JOINT_MLP_ALGOS)}, joint_dqn (got algo {config.algo!r})")
    if network == "joint_rnn" and config.algo not in JOINT_MLP_ALGOS:
        raise ConfigError(f"agent.network: 'joint_rnn' is an agent of value decomposition; valid algos: "
                          f"{', '.join(JOINT_MLP_ALGOS)} (got algo {config.algo!r})")
    if network != "rnn" and (config.max_entropy.mode != "none" or config.imitation.mode != "none"):
        raise ConfigError(f"agent.network: {network!r} is plain value decomposition; set max_entropy.mode=none and "
                          "imitation.mode=none")
    polyak = config.learner.target_polyak
    if polyak is not None and config.algo not in VALUE_ALGOS:
        raise ConfigError(f"learner.target_polyak: soft targets of value decomposition (algos "
                          f"{', '.join(VALUE_ALGOS)}); algo {config.algo!r} has its own targets; set "
                          f"learner.target_polyak=null")
    if polyak is not None and not 0 < polyak <= 1:
        raise ConfigError(f"learner.target_polyak: must lie in (0, 1] (or null: hard copies), got {polyak}")
    if config.dagger.move_weight <= 0:
        raise ConfigError(f"dagger.move_weight: must be > 0, got {config.dagger.move_weight}")


def _check_demos(config: TrainConfig) -> None:
    """A learner of :data:`DEMONSTRATION_ALGOS` draws batches within its count of demonstrations;
    another learner takes none (a demos.path it would ignore is a mistake). The file itself, and that
    a learner of demonstrations names one, the trainer checks before it builds anything."""
    demos = config.demos
    if config.algo not in DEMONSTRATION_ALGOS:
        if demos.path:
            raise ConfigError(f"demos.path: algo {config.algo!r} learns from no demonstrations (those that do: "
                              f"{', '.join(DEMONSTRATION_ALGOS)}); remove demos.path (got {demos.path!r})")
        return
    for key in ("count", "batch_size"):
        if getattr(demos, key) < 1:
            raise ConfigError(f"demos.{key}: must be >= 1, got {getattr(demos, key)}")
    if demos.batch_size > demos.count:
        raise ConfigError(f"demos.batch_size: a batch draws distinct episodes among the first demos.count = "
                          f"{demos.count}; use at most {demos.count} (got {demos.batch_size})")


def _check_iq(config: TrainConfig) -> None:
    """The soft-Q imitation learners' settings: a positive temperature, a non-negative χ²
    coefficient and learning rate of the hypernetworks."""
    iq = config.iq
    if iq.alpha <= 0:
        raise ConfigError(f"iq.alpha: the temperature must be > 0, got {iq.alpha}")
    if iq.chi2_coef < 0:
        raise ConfigError(f"iq.chi2_coef: must be >= 0 (0: no regulariser, 0.5: the chi-squared one), got {iq.chi2_coef}")
    if iq.mixer_lr is not None and iq.mixer_lr < 0:
        raise ConfigError(f"iq.mixer_lr: must be >= 0 (0: fixed hypernetworks; null: learner.lr), got {iq.mixer_lr}")


def _check_discriminator(config: TrainConfig) -> None:
    """MAGAIL's discriminator: a positive width, learning rate and number of steps per update."""
    disc = config.discriminator
    for key in ("hidden_dim", "lr", "steps_per_update"):
        if getattr(disc, key) <= 0:
            raise ConfigError(f"discriminator.{key}: must be > 0, got {getattr(disc, key)}")


def check_config(config: TrainConfig) -> None:
    """Cross-field checks that types alone cannot express (``env.options`` already resolved)."""
    backend = config.env.name.split(":", 1)[0]
    if config.run.rollout == "fused" and backend not in FUSED_BACKENDS:
        raise ConfigError(f"run.rollout: 'fused' needs a JAX backend ({', '.join(sorted(FUSED_BACKENDS))}), "
                          f"env.name is {config.env.name!r}; valid choices here: auto, stepwise")
    if config.run.rollout == "fused" and backend == "overcooked" and config.env.options.get("shaped_reward", 0):
        raise ConfigError("run.rollout: 'fused' cannot anneal Overcooked's shaped reward (env.options.shaped_reward "
                          "> 0), whose coefficient follows the host's step clock; valid choices here: auto, stepwise")
    positive = {
        "env.num_envs": config.env.num_envs,
        "agent.hidden_dim": config.agent.hidden_dim,
        "agent.n_quantiles": config.agent.n_quantiles,
        "agent.n_target_quantiles": config.agent.n_target_quantiles,
        "agent.n_greedy_quantiles": config.agent.n_greedy_quantiles,
        "agent.quantile_embed_dim": config.agent.quantile_embed_dim,
        "mixer.embed_dim": config.mixer.embed_dim,
        "mixer.hypernet_embed": config.mixer.hypernet_embed,
        "mixer.adv_hypernet_embed": config.mixer.adv_hypernet_embed,
        "mixer.num_kernel": config.mixer.num_kernel,
        "learner.batch_size": config.learner.batch_size,
        "learner.buffer_size": config.learner.buffer_size,
        "learner.target_update_interval": config.learner.target_update_interval,
        "learner.updates_per_rollout": config.learner.updates_per_rollout,
        "run.t_max": config.run.t_max,
        "run.eval_interval": config.run.eval_interval,
        "run.checkpoint_interval": config.run.checkpoint_interval,
        "run.length_buckets": config.run.length_buckets,
    }
    for key, value in positive.items():
        if value < 1:
            raise ConfigError(f"{key}: must be >= 1, got {value}")
    if config.learner.buffer_dtype == "uint8" and backend not in INTEGER_OBS_BACKENDS:
        raise ConfigError(f"learner.buffer_dtype: uint8 stores observations losslessly only where they are integers "
                          f"in [0, 255] (backends: {', '.join(sorted(INTEGER_OBS_BACKENDS))}); env.name is "
                          f"{config.env.name!r}; valid choices here: float32, float16")
    if config.learner.buffer_size < config.learner.batch_size:
        raise ConfigError(
            f"learner.buffer_size ({config.learner.buffer_size}) must be >= "
            f"learner.batch_size ({config.learner.batch_size})"
        )
    if not 0 <= config.learner.learning_starts <= config.learner.buffer_size:
        raise ConfigError(f"learner.learning_starts: episodes stored before the first update, between 0 and "
                          f"learner.buffer_size ({config.learner.buffer_size}); got {config.learner.learning_starts}")
    ratio = config.learner.updates_per_env_step
    if ratio is not None and not 0 < ratio < math.inf:
        raise ConfigError(f"learner.updates_per_env_step: must be finite and > 0 (or null: learner.updates_per_rollout "
                          f"updates per rollout), got {ratio}")
    if ratio is not None and config.learner.updates_per_rollout != 1:
        raise ConfigError(f"learner.updates_per_env_step ({ratio}) and learner.updates_per_rollout "
                          f"({config.learner.updates_per_rollout}) both set the number of updates; set "
                          f"learner.updates_per_env_step=null for a fixed count per rollout, or keep "
                          f"learner.updates_per_rollout at 1")
    for key in ("gamma", "td_lambda"):
        value = getattr(config.learner, key)
        if not 0.0 <= value <= 1.0:
            raise ConfigError(f"learner.{key}: must lie in [0, 1], got {value}")
    for key in ("optim_eps", "td_weight"):
        value = getattr(config.learner, key)
        if value is not None and value <= 0:
            raise ConfigError(f"learner.{key}: must be > 0, got {value}")
    for key, choices in (("hypernet_layers", HYPERNET_LAYERS), ("adv_hypernet_layers", ADV_HYPERNET_LAYERS)):
        if getattr(config.mixer, key) not in choices:
            raise unknown_choice(f"mixer.{key}", getattr(config.mixer, key), choices)
    if config.algo == "dmix" and config.learner.td_lambda > 0:
        raise ConfigError(
            f"learner.td_lambda: dmix learns from one-step quantile targets r + γ Z'_tot (DFAC); "
            f"set learner.td_lambda=0 (got {config.learner.td_lambda})"
        )
    me = config.max_entropy
    if me.mode != "none":
        if config.algo not in MAX_ENTROPY_ALGOS:
            raise ConfigError(f"max_entropy.mode: {me.mode!r} mixes the agents' values with a value-decomposition "
                              f"mixer; algo {config.algo!r} is not one (valid choices: {', '.join(MAX_ENTROPY_ALGOS)})")
        if config.imitation.mode != "none":
            raise ConfigError(f"max_entropy.mode: {me.mode!r} cannot be combined with imitation.mode "
                              f"{config.imitation.mode!r}; set one of them to none")
        if me.opt_hypernet_layers not in HYPERNET_LAYERS:
            raise unknown_choice("max_entropy.opt_hypernet_layers", me.opt_hypernet_layers, HYPERNET_LAYERS)
        if me.alpha_init <= 0:
            raise ConfigError(f"max_entropy.alpha_init: the temperature must be > 0, got {me.alpha_init}")
        if me.temperature_lr < 0:
            raise ConfigError(f"max_entropy.temperature_lr: must be >= 0, got {me.temperature_lr}")
        if not 0 < me.away_td_weight <= 1:
            raise ConfigError(f"max_entropy.away_td_weight: a weight in (0, 1] (1: the plain TD loss, 0.5: the "
                              f"released code's), got {me.away_td_weight}")
    if config.algo in (*ACTOR_CRITIC_ALGOS, *DEMONSTRATION_ALGOS, "dagger"):  # not a mode of value decomposition
        for key, mode in (("max_entropy.mode", me.mode), ("imitation.mode", config.imitation.mode)):
            if mode != "none":
                raise ConfigError(f"{key}: algo {config.algo!r} is a learner of its own, not a mode of value "
                                  f"decomposition; set {key}=none (got {mode!r})")
    if config.algo == "hasac":
        _check_hasac(config)
    if config.algo == "ddpg":
        _check_ddpg(config)
    if config.algo in SOFT_Q_IMITATION_ALGOS:
        _check_iq(config)
    if config.algo == "magail":
        _check_discriminator(config)
    _check_demos(config)
    if config.dagger.communication != "none" and config.algo != "dagger":
        raise ConfigError(f"dagger.communication: only algo 'dagger' learns communication from an expert; set "
                          f"it to none for algo {config.algo!r} (got {config.dagger.communication!r})")
    if config.dagger.channel != "softmax" and config.dagger.communication == "none":
        raise ConfigError(f"dagger.channel: the relaxation of learned words; set dagger.communication=learned "
                          f"or leave it softmax (got {config.dagger.channel!r})")
    if config.dagger.communication == "learned" and (config.dagger.dataset != "shared" or config.dagger.move_weight != 1.0):
        raise ConfigError(f"dagger.communication: learned communication trains every agent on one shared batch with "
                          f"the plain cross-entropy; set dagger.dataset=shared and dagger.move_weight=1 (got "
                          f"{config.dagger.dataset!r} and {config.dagger.move_weight})")
    if config.dagger.student != "mlp" and (config.algo != "dagger" or config.dagger.communication != "none"):
        raise ConfigError(f"dagger.student: recurrent students are algo 'dagger' without communication (Algorithm "
                          f"1); set dagger.student=mlp for algo {config.algo!r} with dagger.communication="
                          f"{config.dagger.communication!r} (valid choices: mlp, rnn)")
    if config.learner.weight_decay < 0:
        raise ConfigError(f"learner.weight_decay: must be >= 0 (0: none), got {config.learner.weight_decay}")
    _check_cesma_experts(config)
    if config.dagger.expert and config.algo != "dagger":
        raise ConfigError(f"dagger.expert: only algo 'dagger' learns from an expert policy file; remove "
                          f"dagger.expert for algo {config.algo!r} (got {config.dagger.expert!r})")
    if config.algo == "fop":
        fop = config.fop
        if not 0 < fop.alpha_finish <= fop.alpha_start:
            raise ConfigError(f"fop.alpha_finish: the temperature schedule needs 0 < alpha_finish <= alpha_start, "
                              f"got {fop.alpha_finish} and {fop.alpha_start}")
        for key in ("critic_lr", "alpha_decay_steps", "n_head"):
            if getattr(fop, key) <= 0:
                raise ConfigError(f"fop.{key}: must be > 0, got {getattr(fop, key)}")
        if fop.attend_reg_coef < 0:
            raise ConfigError(f"fop.attend_reg_coef: must be >= 0, got {fop.attend_reg_coef}")
    if config.algo in ON_POLICY_ALGOS:
        _check_on_policy(config)
    imitation = config.imitation
    if imitation.mode != "none" and imitation.expert_input == "full_obs" \
            and not config.env.options.get("full_sight_obs", False):
        raise ConfigError(
            f"imitation.expert_input: 'full_obs' needs env.options.full_sight_obs=true (SMAX-family "
            f"backends offer it; env.name is {config.env.name!r}); or set imitation.expert_input=state"
        )


def to_dict(config: TrainConfig) -> dict[str, Any]:
    """The resolved config as plain data (what ``config.yaml`` in a run directory holds)."""
    return dataclasses.asdict(config)


def unflatten(flat: Mapping[str, Any]) -> dict[str, Any]:
    """``{'a.b': 1}`` -> ``{'a': {'b': 1}}``, the inverse of :func:`flatten`."""
    tree: dict[str, Any] = {}
    for key, value in flat.items():
        *parents, leaf = key.split(".")
        node = tree
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return tree


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{'a': {'b': 1}}`` -> ``{'a.b': 1}`` (MLflow params)."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


__all__ = [
    "TrainConfig",
    "check_config",
    "check_run_settings",
    "check_settings",
    "flatten",
    "from_dict",
    "load_config",
    "parse_override",
    "read_settings",
    "read_yaml_mapping",
    "to_dict",
    "unflatten",
]
