"""The multi-agent particle world of ``mpe2`` (PettingZoo's MPE), one environment, in pure JAX.

Written from mpe2 1.1.1's ``_mpe_utils/core.py``, ``simple_env.py`` and its ``simple_spread``,
``simple_reference`` and ``simple_speaker_listener`` scenarios (JaxMARL's ``environments/mpe``
read for the JAX layout; no code of either is used). The batched backend around these functions
is :mod:`marlrepro.envs.jax_mpe`; what differs from mpe2 or from CESMA is in
``docs/deviations.md`` ("CESMA").

One step (:func:`step_world`), exactly mpe2's order:

1. Actions. Agent ``i`` has ``moves × words`` discrete actions, ``moves`` = 5 if it is movable
   (else 1), ``words`` = ``dim_c`` if it speaks (else 1); action ``a`` is move ``a % moves`` and
   word ``a // moves`` (mpe2's ``_execute_world_step``). Moves: 0 none, 1 −x, 2 +x, 3 −y, 4 +y,
   a unit vector times the agent's ``accel`` (mpe2's default sensitivity 5.0). The move is the
   force (no motor noise: mpe2's ``u_noise`` is None in these scenarios).
2. Contact forces between every pair of colliding agents (landmarks never collide here):
   ``f = contact_force · Δp / |Δp| · k · log(1 + exp(−(|Δp| − (r_a + r_b)) / k))``, ``+f`` on the
   first, ``−f`` on the second (``contact_force`` 100, ``k`` = ``contact_margin`` 1e-3).
3. Integration of movable agents, POSITION FIRST (mpe2's order; the original OpenAI MPE updated
   the velocity first): ``p += v · dt``; ``v ← v · (1 − damping) + (F / m) · dt``; then, where the
   agent has a ``max_speed`` and ``|v|`` exceeds it, ``v ← v / |v| · max_speed``. ``dt`` 0.1,
   damping 0.25, mass 1. A non-movable agent (the speaker) never moves.
4. Communication: a speaking agent's state becomes the one-hot of its word; a silent agent's
   is zeros. Observations read it, so a word said at step ``t`` is heard at step ``t + 1``.

The functions take a static :class:`Scenario` and compute in the dtype of the state's arrays
(float32 in the backend; float64 under ``jax.enable_x64`` in the cross-check tests).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

# mpe2 World defaults (_mpe_utils/core.py)
DT = 0.1
DAMPING = 0.25
CONTACT_FORCE = 1e2
CONTACT_MARGIN = 1e-3
MASS = 1.0
DEFAULT_ACCEL = 5.0  # simple_env._set_action's sensitivity when an agent has no accel
N_MOVES = 5
# move -> unit direction (simple_env._set_action): none, -x, +x, -y, +y
MOVE_DIRECTIONS = ((0.0, 0.0), (-1.0, 0.0), (1.0, 0.0), (0.0, -1.0), (0.0, 1.0))

SPREAD, REFERENCE, SPEAKER_LISTENER = "spread", "reference", "speaker_listener"


@dataclass(frozen=True)
class WordSlot:
    """Where one agent's last word appears in another's observation: ``speaker``'s one-hot word
    (``Scenario.words(speaker)`` columns) at columns ``start ...`` of ``listener``'s observation."""

    speaker: int
    listener: int
    start: int


@dataclass(frozen=True)
class CommChannel:
    """A scenario's communication, as a learner of it needs it (CESMA's Algorithm 2): agent ``i``'s
    discrete action ``a`` is move ``a % moves[i]`` and word ``a // moves[i]`` (``words[i]`` = 1:
    silent; ``moves[i]`` = 1: it does not move), and the word said at step ``t`` is the one-hot
    at every :class:`WordSlot` of the observations of step ``t + 1`` (zeros at a reset)."""

    moves: tuple[int, ...]
    words: tuple[int, ...]
    slots: tuple[WordSlot, ...]


@dataclass(frozen=True)
class Scenario:
    """The static facts of one task (hashable: it may close over traced functions)."""

    kind: str  # SPREAD, REFERENCE or SPEAKER_LISTENER
    n_agents: int
    n_landmarks: int
    dim_c: int  # the world's communication width (mpe2's world.dim_c)
    size: tuple[float, ...]  # per agent: radius
    accel: tuple[float, ...]  # per agent: force of a move
    max_speed: tuple[float, ...]  # per agent: speed cap (math.inf: none)
    movable: tuple[bool, ...]
    silent: tuple[bool, ...]
    collide: bool  # the agents collide with each other (and are penalised for it)
    landmark_colours: tuple[tuple[float, float, float], ...]  # RGB, as the observations show them
    local_ratio: float | None  # mpe2's default global/local mix; None: every agent gets the reward

    def moves(self, i: int) -> int:
        return N_MOVES if self.movable[i] else 1

    def words(self, i: int) -> int:
        return 1 if self.silent[i] else self.dim_c

    def action_counts(self) -> list[int]:
        """Each agent's number of discrete actions (mpe2's ``Discrete`` sizes)."""
        return [self.moves(i) * self.words(i) for i in range(self.n_agents)]

    def obs_dims(self) -> list[int]:
        """Each agent's observation width (layouts: :func:`observe`)."""
        n, lm, c = self.n_agents, self.n_landmarks, self.dim_c
        if self.kind == SPREAD:
            return [4 + 2 * lm + 2 * (n - 1) + c * (n - 1)] * n
        if self.kind == REFERENCE:
            return [2 + 2 * lm + 3 * (n - 1) + c * (n - 1)] * n
        return [3, 2 + 2 * lm + c]  # speaker, listener

    def channel(self) -> CommChannel:
        """Who hears whom, and where (the layouts of :func:`observe`): the speaker's word at the end
        of the listener's observation (speaker–listener); each other agent's word in agent order
        after the goal colours (reference); none where every agent is silent (spread)."""
        n, lm, c = self.n_agents, self.n_landmarks, self.dim_c
        if self.kind == SPEAKER_LISTENER:
            slots = (WordSlot(0, 1, 2 + 2 * lm),)
        elif self.kind == REFERENCE:
            first = 2 + 2 * lm + 3 * (n - 1)
            slots = tuple(WordSlot(i, j, first + c * k) for j in range(n)
                          for k, i in enumerate(i for i in range(n) if i != j))
        else:
            slots = ()
        slots = tuple(slot for slot in slots if not self.silent[slot.speaker])
        return CommChannel(moves=tuple(self.moves(i) for i in range(n)),
                           words=tuple(self.words(i) for i in range(n)), slots=slots)


class WorldState(NamedTuple):
    """One environment (a leading batch axis where batched). ``N`` agents, ``L`` landmarks."""

    pos: jax.Array  # [N, 2] agents' positions
    vel: jax.Array  # [N, 2] agents' velocities
    landmarks: jax.Array  # [L, 2] landmarks' positions (they never move)
    comm: jax.Array  # [N, dim_c] what each agent said on the last step (zeros: silent / at reset)
    goal: jax.Array  # [N] int32: the landmark each agent must reach (spread: unused zeros)
    t: jax.Array  # [] int32: steps taken


def _others(n: int) -> np.ndarray:
    """[n, n − 1]: agent i's other agents in agent order."""
    return np.array([[j for j in range(n) if j != i] for i in range(n)], np.int32).reshape(n, n - 1)


# ---- reset ----------------------------------------------------------------------------------


def reset_world(key: jax.Array, sc: Scenario, dtype=jnp.float32) -> WorldState:
    """mpe2's ``reset_world``: agents and landmarks uniform in [−1, 1]², zero velocity and
    communication; each agent's goal landmark uniform (speaker–listener: one goal, the listener's,
    stored for both agents). mpe2 draws the goals first, then the agents', then the landmarks'
    positions, from one numpy generator; the distributions are the same, the streams are not.
    All of it comes from one uniform draw (each random op costs compile time): a goal is
    ``⌊u · L⌋``."""
    n, n_landmarks = sc.n_agents, sc.n_landmarks
    u = jax.random.uniform(key, (2 * n + 2 * n_landmarks + n,), dtype)
    goal = jnp.minimum(jnp.floor(u[-n:] * n_landmarks).astype(jnp.int32), n_landmarks - 1)
    if sc.kind == SPEAKER_LISTENER:
        goal = jnp.broadcast_to(goal[0], (n,))
    return WorldState(
        pos=(2 * u[: 2 * n] - 1).reshape(n, 2),
        vel=jnp.zeros((n, 2), dtype),
        landmarks=(2 * u[2 * n: 2 * n + 2 * n_landmarks] - 1).reshape(n_landmarks, 2),
        comm=jnp.zeros((n, sc.dim_c), dtype),
        goal=goal,
        t=jnp.int32(0),
    )


# ---- one step -------------------------------------------------------------------------------


def decode_actions(actions: jax.Array, sc: Scenario, dtype=jnp.float32) -> tuple[jax.Array, jax.Array]:
    """Discrete actions [N] -> (forces [N, 2], one-hot words [N, dim_c], zeros for silent agents).
    An index past an agent's own action count (a padded, unavailable action) wraps modulo it."""
    counts = jnp.asarray(sc.action_counts(), jnp.int32)
    moves = jnp.asarray([sc.moves(i) for i in range(sc.n_agents)], jnp.int32)
    a = actions.astype(jnp.int32) % counts
    move, word = a % moves, a // moves
    direction = jnp.asarray(MOVE_DIRECTIONS, dtype)[move]
    scale = jnp.asarray([sc.accel[i] if sc.movable[i] else 0.0 for i in range(sc.n_agents)], dtype)
    speaks = jnp.asarray([not s for s in sc.silent], bool)
    said = jax.nn.one_hot(word, sc.dim_c, dtype=dtype) * speaks[:, None]
    return direction * scale[:, None], said


def contact_forces(pos: jax.Array, sc: Scenario) -> jax.Array:
    """mpe2's soft contact force on each agent from every other colliding agent [N, 2]."""
    if not sc.collide or sc.n_agents < 2:
        return jnp.zeros_like(pos)
    size = jnp.asarray(sc.size, pos.dtype)
    delta = pos[:, None, :] - pos[None, :, :]  # [a, b, 2]: p_a - p_b
    dist = jnp.sqrt(jnp.sum(jnp.square(delta), axis=-1))
    other = ~np.eye(sc.n_agents, dtype=bool)
    penetration = jnp.logaddexp(0.0, -(dist - (size[:, None] + size[None, :])) / CONTACT_MARGIN) * CONTACT_MARGIN
    force = CONTACT_FORCE * delta / jnp.where(other, dist, 1.0)[..., None] * penetration[..., None]
    return jnp.sum(jnp.where(other[..., None], force, 0.0), axis=1)


def step_world(state: WorldState, actions: jax.Array, sc: Scenario) -> WorldState:
    """One mpe2 world step (the order: the module docstring)."""
    dtype = state.pos.dtype
    force, said = decode_actions(actions, sc, dtype)
    force = force + contact_forces(state.pos, sc)
    pos = state.pos + state.vel * DT
    vel = state.vel * (1 - DAMPING) + (force / MASS) * DT
    cap = jnp.asarray(sc.max_speed, dtype)[:, None]
    speed = jnp.sqrt(jnp.square(vel[:, 0]) + jnp.square(vel[:, 1]))[:, None]
    vel = jnp.where(speed > cap, vel / jnp.where(speed > 0, speed, 1.0) * cap, vel)
    movable = jnp.asarray(sc.movable, bool)[:, None]
    return state._replace(pos=jnp.where(movable, pos, state.pos), vel=jnp.where(movable, vel, state.vel),
                          comm=said, t=state.t + 1)


# ---- observations ---------------------------------------------------------------------------


def observe(state: WorldState, sc: Scenario) -> list[jax.Array]:
    """Each agent's observation, mpe2's layouts (widths: :meth:`Scenario.obs_dims`):

    * spread: own velocity, own position, every landmark relative to it, every other agent
      relative to it, every other agent's communication (zeros: they are silent);
    * reference: own velocity, every landmark relative to it, the colour of each OTHER agent's
      goal landmark (in agent order; simple_reference: the one other agent's), each other
      agent's communication;
    * speaker–listener: the speaker sees the goal landmark's colour; the listener its velocity,
      every landmark relative to it and the speaker's communication.
    """
    n = sc.n_agents
    if sc.kind == SPEAKER_LISTENER:
        colours = jnp.asarray(sc.landmark_colours, state.pos.dtype)
        listener = jnp.concatenate([state.vel[1], (state.landmarks - state.pos[1]).reshape(-1), state.comm[0]])
        return [colours[state.goal[0]], listener]
    others = _others(n)
    landmark_rel = (state.landmarks[None, :, :] - state.pos[:, None, :]).reshape(n, -1)
    comm = state.comm[others].reshape(n, -1)
    if sc.kind == SPREAD:
        other_rel = (state.pos[others] - state.pos[:, None, :]).reshape(n, -1)
        obs = jnp.concatenate([state.vel, state.pos, landmark_rel, other_rel, comm], axis=1)
    else:
        colours = jnp.asarray(sc.landmark_colours, state.pos.dtype)[state.goal[others]].reshape(n, -1)
        obs = jnp.concatenate([state.vel, landmark_rel, colours, comm], axis=1)
    return list(obs)


# ---- rewards --------------------------------------------------------------------------------


def collisions(state: WorldState, sc: Scenario) -> jax.Array:
    """[N] int32: how many other agents each agent overlaps (mpe2's ``is_collision``: distance
    below the sum of the radii); zeros where agents do not collide."""
    if not sc.collide:
        return jnp.zeros(sc.n_agents, jnp.int32)
    size = jnp.asarray(sc.size, state.pos.dtype)
    dist = jnp.sqrt(jnp.sum(jnp.square(state.pos[:, None, :] - state.pos[None, :, :]), axis=-1))
    hit = (dist < size[:, None] + size[None, :]) & ~np.eye(sc.n_agents, dtype=bool)
    return hit.sum(axis=1).astype(jnp.int32)


def global_and_local_rewards(state: WorldState, sc: Scenario) -> tuple[jax.Array, jax.Array]:
    """(global reward [], each agent's local reward [N]), mpe2's ``global_reward`` and ``reward``:

    * spread: global = −Σ over landmarks of the closest agent's distance; local = −1 per other
      agent overlapping it;
    * reference: agent i's local reward is minus the mean, over the OTHER agents j, of j's
      distance to its goal (simple_reference: the one other agent's distance to the goal i
      knows); global = the mean of the local rewards (= minus the mean goal distance);
    * speaker–listener: every agent's reward is minus the listener's squared distance to the
      goal (no global/local mix: global returned equal to it).
    """
    if sc.kind == SPREAD:
        dist = jnp.sqrt(jnp.sum(jnp.square(state.pos[:, None, :] - state.landmarks[None, :, :]), axis=-1))
        return -jnp.min(dist, axis=0).sum(), -collisions(state, sc).astype(state.pos.dtype)
    if sc.kind == REFERENCE:
        gap = jnp.sqrt(jnp.sum(jnp.square(state.pos - state.landmarks[state.goal]), axis=-1))  # [N]
        local = -gap[_others(sc.n_agents)].mean(axis=1)
        return local.mean(), local
    reward = -jnp.sum(jnp.square(state.pos[1] - state.landmarks[state.goal[0]]))
    return reward, jnp.full(sc.n_agents, reward)


def agent_rewards(state: WorldState, sc: Scenario, local_ratio: float | None) -> jax.Array:
    """[N]: mpe2's per-agent reward ``global · (1 − local_ratio) + local · local_ratio`` (with no
    ratio, the scenario's own reward)."""
    global_reward, local = global_and_local_rewards(state, sc)
    if local_ratio is None:
        return local
    return global_reward * (1 - local_ratio) + local * local_ratio


def no_max_speed(n: int) -> tuple[float, ...]:
    return (math.inf,) * n
