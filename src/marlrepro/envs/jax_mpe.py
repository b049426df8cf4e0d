"""Multi-agent particle environments batched in JAX (``jaxmpe:<scenario>``), for CESMA (issue 15).

The world's rules are :mod:`marlrepro.envs.jax_mpe_world` (mpe2's, position integrated before
velocity, checked step by step against mpe2 in ``tests/test_jax_mpe.py``). This module declares
the tasks and batches them: ``num_envs`` worlds vmapped, reset and step jitted once, the key and
the states on the device, each step packed into one float32 array that crosses to torch through
DLPack (:class:`~marlrepro.envs.jax_smax.JaxBatchedEnv`); the fused rollout
(``run.rollout=fused``) runs whole batches of episodes in one compiled loop.

What the learners see is what the ``mpe:`` backend (:mod:`marlrepro.envs.mpe`) gives for the same
scenario: the same observations (mpe2's layouts), the state = all agents' unpadded observations
concatenated, heterogeneous agents padded (observations with zeros to the widest, actions to the
largest count with the padded ones unavailable), the same team reward and options, episodes
truncated after ``max_cycles`` steps and never terminated, ``won`` always False.

Scenarios (discrete actions; CESMA appendix D):

* ``simple_spread``, ``simple_spread_6``: cooperative navigation, N = 3 or 6 agents and as many
  landmarks; mpe2's simple_spread (radius 0.15, accel 5, no speed cap, colliding agents).
* ``simple_spread_hetero``, ``simple_spread_hetero_6``: CESMA's non-homogeneous cooperative
  navigation, agents of three kinds, agent ``i`` of kind ``3i // N`` (N = 6: two of each):
  big and slow (radius 0.20, accel 3.0, max speed 1.0), medium (0.15, 4.0, 1.3), small and fast
  (0.10, 5.0, no cap: its terminal speed is accel · dt / damping = 2.0). CESMA prints no numbers;
  the slow and medium (accel, max speed) pairs are mpe2's simple_tag adversary (3.0, 1.0) and good
  agent (4.0, 1.3), the small-and-fast one mpe2's default agent, the radii spread's 0.15 ± 0.05.
* ``simple_speaker_listener``: mpe2's (speaker: 3 words, listener: 5 moves; 3 landmarks).
* ``simple_reference``: mpe2's (2 agents, 3 landmarks, 10 words, 50 actions = move + 5 · word).
* ``simple_reference_3a5l``: CESMA's 3 agents / 5 landmarks with communication (appendix D.4),
  simple_reference generalised: every agent has a goal landmark (uniform, independent, possibly
  shared) that it does not see; every OTHER agent sees its colour. Observation (38): own velocity,
  the 5 landmarks relative to it, the goal colours of the other two agents (agent order), the
  other two agents' last words (10 each). Actions: 50 (5 moves × 10 words, as simple_reference).
  Agent i's local reward: minus the mean, over the other agents, of their distance to their goal;
  global: minus the mean goal distance. Landmark colours: simple_reference's red, green, blue,
  then yellow (0.75, 0.75, 0.25) and cyan (0.25, 0.75, 0.75). With 2 agents and 3 landmarks these
  rules are simple_reference's exactly.

Communication (CESMA's Algorithm 2, :mod:`marlrepro.learners.dagger_comm`): :func:`comm_channel`
gives a task's :class:`~marlrepro.envs.jax_mpe_world.CommChannel`, how each agent's action splits
into a move and a word and where the others hear that word in their next observations
(speaker–listener and the reference scenarios; the spread scenarios are silent).

Options (as the ``mpe:`` backend's):

* ``max_cycles`` (int, default 25): the episode limit.
* ``shared_reward`` (bool, default False): True gives every agent the global reward
  (``local_ratio`` 0; spread: without the collision penalty; reference: the mean goal distance)
  and the team reward is that value; False keeps mpe2's mix (``local_ratio`` 0.5) and the team
  reward is the sum of the agents' rewards. Speaker–listener always pays every agent the same.
* ``collision_penalty`` (bool, default False; spread scenarios with ``shared_reward`` only): the
  shared reward also loses 1 per pair of overlapping agents at the step, CESMA's reward
  (appendix D.2: "−1 at each timestep that there is a collision", read per colliding pair), which
  mpe2's shared (global) reward lacks.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import torch

from marlrepro import env_catalog
from marlrepro.envs import jax_mpe_world as world
from marlrepro.envs.base import EnvSpec
from marlrepro.envs.jax_mpe_world import Scenario, WorldState
from marlrepro.envs.jax_smax import EndFlaggedBatch, _where
from marlrepro.errors import ConfigError, unknown_choice

LOCAL_RATIO = 0.5  # mpe2's default for simple_spread and simple_reference

# CESMA's non-homogeneous agents: (radius, accel, max speed), the sources in the module docstring
BIG_SLOW = (0.20, 3.0, 1.0)
MEDIUM = (0.15, 4.0, 1.3)
SMALL_FAST = (0.10, 5.0, math.inf)
HETERO_KINDS = (BIG_SLOW, MEDIUM, SMALL_FAST)

REFERENCE_COLOURS = ((0.75, 0.25, 0.25), (0.25, 0.75, 0.25), (0.25, 0.25, 0.75), (0.75, 0.75, 0.25),
                     (0.25, 0.75, 0.75))
SPEAKER_LISTENER_COLOURS = ((0.65, 0.15, 0.15), (0.15, 0.65, 0.15), (0.15, 0.15, 0.65))


def _spread(n: int, hetero: bool) -> Scenario:
    kinds = [HETERO_KINDS[3 * i // n] if hetero else (0.15, world.DEFAULT_ACCEL, math.inf) for i in range(n)]
    return Scenario(
        kind=world.SPREAD, n_agents=n, n_landmarks=n, dim_c=2,
        size=tuple(k[0] for k in kinds), accel=tuple(k[1] for k in kinds), max_speed=tuple(k[2] for k in kinds),
        movable=(True,) * n, silent=(True,) * n, collide=True,
        landmark_colours=((0.25, 0.25, 0.25),) * n, local_ratio=LOCAL_RATIO,
    )


def _reference(n: int, n_landmarks: int) -> Scenario:
    return Scenario(
        kind=world.REFERENCE, n_agents=n, n_landmarks=n_landmarks, dim_c=10,
        size=(0.05,) * n, accel=(world.DEFAULT_ACCEL,) * n, max_speed=world.no_max_speed(n),
        movable=(True,) * n, silent=(False,) * n, collide=False,
        landmark_colours=REFERENCE_COLOURS[:n_landmarks], local_ratio=LOCAL_RATIO,
    )


SPEAKER_LISTENER = Scenario(
    kind=world.SPEAKER_LISTENER, n_agents=2, n_landmarks=3, dim_c=3,
    size=(0.075, 0.075), accel=(world.DEFAULT_ACCEL,) * 2, max_speed=world.no_max_speed(2),
    movable=(False, True), silent=(False, True), collide=False,
    landmark_colours=SPEAKER_LISTENER_COLOURS, local_ratio=None,
)

TASKS: dict[str, Scenario] = {
    "simple_spread": _spread(3, hetero=False),
    "simple_spread_6": _spread(6, hetero=False),
    "simple_spread_hetero": _spread(3, hetero=True),
    "simple_spread_hetero_6": _spread(6, hetero=True),
    "simple_reference": _reference(2, 3),
    "simple_reference_3a5l": _reference(3, 5),
    "simple_speaker_listener": SPEAKER_LISTENER,
}
SCENARIOS = frozenset(TASKS)
OPTIONS = env_catalog.OPTIONS["jaxmpe"]  # option -> (type, default)


def scenario_of(name: str) -> Scenario:
    """The task's :class:`Scenario`; an unknown name raises a ConfigError listing the valid ones."""
    if name not in TASKS:
        raise unknown_choice("env.name", name, TASKS, what="jaxmpe scenario")
    return TASKS[name]


def comm_channel(env_name: str) -> world.CommChannel:
    """The communication channel of task ``env_name`` (``jaxmpe:<scenario>``,
    :meth:`Scenario.channel`): how each agent's action splits into a move and a word, and where
    the others hear it. A ConfigError where the task is not a JAX MPE one or none of its agents
    speaks."""
    backend, _, scenario = env_name.partition(":")
    talking = sorted(name for name, task in TASKS.items() if task.channel().slots)
    if backend != "jaxmpe" or scenario not in TASKS or not TASKS[scenario].channel().slots:
        raise ConfigError(f"env.name: learned communication needs a JAX MPE task whose agents speak "
                          f"({', '.join('jaxmpe:' + name for name in talking)}); got {env_name!r}")
    return TASKS[scenario].channel()


def spec(scenario: str, max_cycles: int, shared_reward: bool, collision_penalty: bool = False) -> EnvSpec:
    """Static spec, the ``mpe:`` backend's for the scenarios both serve."""
    if max_cycles < 1:
        raise ConfigError(f"env.options.max_cycles: expected a positive int, got {max_cycles}")
    sc = scenario_of(scenario)
    if collision_penalty and not (shared_reward and sc.kind == world.SPREAD):
        spreads = ", ".join(sorted(name for name, task in TASKS.items() if task.kind == world.SPREAD))
        raise ConfigError(f"env.options.collision_penalty: only with shared_reward=true on a spread scenario "
                          f"({spreads}); got jaxmpe:{scenario} with shared_reward={str(shared_reward).lower()}")
    obs_dims = sc.obs_dims()
    return EnvSpec(name=f"jaxmpe:{scenario}", n_agents=sc.n_agents, obs_dim=max(obs_dims), state_dim=sum(obs_dims),
                   n_actions=max(sc.action_counts()), episode_limit=max_cycles)


# ---- one environment (pure) -----------------------------------------------------------------


def step_one(state: WorldState, actions: jax.Array, sc: Scenario, shared_reward: bool,
             max_cycles: int, collision_penalty: bool = False) -> tuple[WorldState, jax.Array, jax.Array]:
    """One step of one world: (state, team reward, truncated). The team reward is agent 0's
    reward with ``shared_reward`` (every agent's is the global one; with ``collision_penalty``
    less 1 per colliding pair), else the agents' sum."""
    state = world.step_world(state, actions, sc)
    ratio = None if sc.local_ratio is None else (0.0 if shared_reward else sc.local_ratio)
    rewards = world.agent_rewards(state, sc, ratio)
    team = rewards[0] if shared_reward else rewards.sum()
    if collision_penalty:
        team = team - world.collisions(state, sc).sum().astype(team.dtype) / 2
    return state, team, state.t >= max_cycles


def padded_outputs(state: WorldState, sc: Scenario) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(observations [N, obs_dim] zero-padded, state [state_dim] = the unpadded observations
    concatenated, availability [N, n_actions]) of one world."""
    per_agent = world.observe(state, sc)
    width = max(sc.obs_dims())
    obs = jnp.stack([jnp.pad(o, (0, width - o.shape[0])) for o in per_agent])
    counts = jnp.asarray(sc.action_counts())
    avail = jnp.arange(max(sc.action_counts()))[None, :] < counts[:, None]
    return obs, jnp.concatenate(per_agent), avail


# ---- the backend ----------------------------------------------------------------------------


class Env(EndFlaggedBatch):
    """``num_envs`` vmapped particle worlds of one scenario with per-environment auto-reset."""

    def __init__(self, scenario: str, *, num_envs: int, seed: int, device: torch.device, max_cycles: int,
                 shared_reward: bool, collision_penalty: bool) -> None:
        self.spec = spec(scenario, max_cycles, shared_reward, collision_penalty)
        self.scenario = scenario_of(scenario)
        self.max_cycles = max_cycles
        self.shared_reward = shared_reward
        self.collision_penalty = collision_penalty
        self._setup(num_envs, seed, device)

    # ---- pure JAX (traced once) -------------------------------------------------------------

    def _outputs(self, states: WorldState, reward: jax.Array, terminated: jax.Array, truncated: jax.Array,
                 won: jax.Array) -> jax.Array:
        """The step packed into one float32 array [B, F] (``jax_smax.packed_widths`` layout)."""
        obs, flat, avail = jax.vmap(padded_outputs, in_axes=(0, None))(states, self.scenario)
        columns = [obs, flat, avail, reward, terminated, truncated, won]
        return jnp.concatenate([c.reshape(self.num_envs, -1).astype(jnp.float32) for c in columns], axis=1)

    def _reset_all(self, key: jax.Array) -> WorldState:
        return jax.vmap(world.reset_world, in_axes=(0, None))(jax.random.split(key, self.num_envs), self.scenario)

    def _world_step(self, states: tuple[WorldState, jax.Array], key: jax.Array, actions: jax.Array,
                    restart: bool) -> tuple[tuple[WorldState, jax.Array], jax.Array, jax.Array]:
        states, ended_before = states
        key, reset_key = jax.random.split(key)
        one = functools.partial(step_one, sc=self.scenario, shared_reward=self.shared_reward,
                                max_cycles=self.max_cycles, collision_penalty=self.collision_penalty)
        stepped, reward, truncated = jax.vmap(one)(states, actions)
        stepping = ~ended_before
        reward = jnp.where(stepping, reward, 0.0)
        truncated = truncated & stepping
        false = jnp.zeros(self.num_envs, bool)
        if restart:
            stepped = _where(ended_before, self._reset_all(reset_key), stepped)
            ended = truncated
        else:
            ended = ended_before | truncated
        return (stepped, ended), key, self._outputs(stepped, reward, false, truncated, false)

    def step_batch(self, states: tuple[WorldState, jax.Array], key: jax.Array,
                   actions: jax.Array) -> tuple[tuple[WorldState, jax.Array], jax.Array, jax.Array]:
        """Step every world, or restart one whose episode ended on the last step (pure,
        traceable); ``actions`` [B, N] int32. Returns the new states, the next key and the packed
        outputs (an ending step's with the world's final observation)."""
        return self._world_step(states, key, actions, restart=True)

    def advance_batch(self, states: tuple[WorldState, jax.Array], key: jax.Array,
                      actions: jax.Array) -> tuple[tuple[WorldState, jax.Array], jax.Array, jax.Array]:
        """:meth:`step_batch` without its restarts, for the lock-step rollout: an ended world steps
        on with zero reward and no flags, and its outputs mean nothing."""
        return self._world_step(states, key, actions, restart=False)
