"""IGM-DA appendix E (Figure 6): plain Q-table vs integrated-DAgger Q-table on an aliased FrozenLake.

The environment is gymnasium's ``FrozenLake-v1``, deterministic (``is_slippery=False``), on the 4x4
map of Figure 6(a) (``S`` start, ``F`` frozen and safe, ``H`` hole, ``G`` goal; reward 1 at ``G``, an
episode ends in ``H`` or ``G`` or after gymnasium's 100-step limit)::

    S F | F F        block 0 | block 1
    F H | F H
    ----+----
    F H | F H        block 2 | block 3
    H F | F G

The agent observes only which 2x2 block ("green box") it is in: 16 cells -> 4 observations. The
dynamics are read once from gymnasium's transition table (``env.unwrapped.P``) and then simulated
in numpy, all seeds in lockstep, each seed with its own random stream (a seed's run does not depend
on which other seeds share the batch).

Methods (tabular, zero-initialised, one online update per environment step, i.e. Algorithm 1 with a
one-transition batch and no replay buffer or target table; epsilon-greedy behaviour with epsilon
annealed linearly from 1.0 to the paper's floor 0.1 over the first half of the episodes; gamma 0.95,
Q-learning step alpha 0.1, imitation step beta 0.02; see :class:`Settings`):

* ``qtable``: Q-learning on the aliased observation, Q(o, a) += alpha (r + gamma max Q(o', .) - Q(o, a)).
* ``dagger``: the integrated DAgger of Algorithm 1 (appendix C). The LEARNER q(o, a) acts; the
  expert Q(s, a) on the true cell is trained by Q-learning on the learner's transitions (eq. 18
  with one agent), and the learner is regressed on the same sample towards the one-hot of the
  expert's greedy action at the true cell (eq. 10): q(o, .) += beta (onehot(argmax Q(s, .)) - q(o, .)),
  the SGD step of the authors' squared "teach" loss. Its fixed point is Proposition 5,
  q(o, u) = 1/k sum_{s in S_o} P_pi(u | s), the expert's policy averaged over the visited cells of o.
* ``bc``: the behaviour-cloning ablation: the same two tables, but the EXPERT acts.

Evaluation is exact: the success probability of a memoryless policy pi(a | o) is the probability
that the Markov chain it induces on the 16 cells is absorbed in ``G`` within the 100-step limit.

Which policy is evaluated: a memoryless DETERMINISTIC policy on the four blocks cannot reach ``G``
at all (checked by enumerating all 4^4 of them, see :func:`deterministic_policies`). The only
safe path is S -> right, right -> down, down (into block 3 at (2,2)) -> down to (3,2) -> right to
``G``. Blocks 0 and 1 are fine with a single action (right, then down), but block 3 is entered only at
(2,2) ((3,1) in block 2 is reachable only from (3,2)) and needs DOWN at (2,2) and RIGHT at (3,2): a
single action either walks into the hole (2,3) (RIGHT), sticks against the wall at (3,2) (DOWN),
falls into (2,1) (LEFT) or goes back up (UP). So both greedy policies, the plain Q-table's and the
DAgger learner's, provably fail, and the paper's claim cannot hold for greedy memoryless policies
(breaking ties differently, e.g. by the expert-averaged values, still gives a deterministic policy;
a learner with memory, e.g. of its previous box, could succeed deterministically, but the appendix
describes a table on the box alone).
It can hold for a STOCHASTIC memoryless policy: Proposition 5 reads the regressed q(o, .) as
action probabilities (they are an average of one-hots, so they sum to 1), and sampling
pi(a | o) = q(o, a) / sum_b q(o, b) in block 3 mixes DOWN (the expert's label at (2,2)) and RIGHT
(its label at (3,2)) and reaches ``G`` with probability about P(DOWN | block 3). We therefore report
two readings of every table: ``greedy`` (argmax, first index on ties) and ``proportional`` (the
Proposition 5 reading: negative entries clipped to 0, normalised, uniform if all are 0). The
proportional reading of the plain Q-table is reported as the control: its entries are values, not
probabilities, so it is not the paper's Q-table policy.

What to expect of the proportional reading: the learner's q(box 3, .) settles near the visit-weighted
average of DOWN (label at (2,2)) and RIGHT (label at (3,2)). Under the epsilon-greedy learner the
two cells are visited about equally, so q(box 3) ~ (down 0.5, right 0.5) and P(G) ~ 0.5; the best
memoryless stochastic policy reaches 0.94 (P(down | box 3) ~ 0.955), so the imitation fixed point is
feasible but not optimal.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np
import pandas as pd

MAP: tuple[str, ...] = ("SFFF", "FHFH", "FHFH", "HFFG")
ACTIONS: tuple[str, ...] = ("left", "down", "right", "up")  # gymnasium's FrozenLake action order
METHODS: tuple[str, ...] = ("qtable", "dagger", "bc")
METHOD_LABELS: dict[str, str] = {"qtable": "Q-table", "dagger": "DAgger Q-table", "bc": "BC Q-table"}
POLICIES: tuple[str, ...] = ("greedy", "proportional")
CURVE_COLUMNS: tuple[str, ...] = ("method", "seed", "episode", "policy", "success")
_DRAWS_PER_STEP = 10  # explore?, random action, 4 tie-break noises for the behaviour, 4 for the label


@dataclass(frozen=True)
class Lake:
    """gymnasium's deterministic FrozenLake as arrays, with the block observation of each cell."""

    desc: tuple[str, ...]
    next_cell: np.ndarray  # (cells, actions); terminal cells loop on themselves, as in gymnasium
    reward: np.ndarray  # (cells, actions)
    terminal: np.ndarray  # (cells,) bool: holes and the goal
    observation: np.ndarray  # (cells,) the 2x2 block index of each cell
    start: int
    goal: int
    horizon: int  # gymnasium's TimeLimit of the registered env

    @property
    def n_cells(self) -> int:
        return len(self.observation)

    @property
    def n_observations(self) -> int:
        return int(self.observation.max()) + 1


@dataclass(frozen=True)
class Settings:
    """Tabular hyperparameters (our choice; the paper's only stated setting is the epsilon floor 0.1)."""

    gamma: float = 0.95
    td_lr: float = 0.1  # alpha: Q-learning step size (plain Q-table and expert)
    imitation_lr: float = 0.02  # beta: SGD step size of the learner's regression (Proposition 5)
    epsilon_start: float = 1.0
    epsilon_end: float = 0.1
    epsilon_fraction: float = 0.5  # share of the episodes over which epsilon anneals linearly
    eval_every: int = 50  # episodes between evaluations of the acting table


@dataclass(frozen=True)
class FrozenLakeResult:
    """Curves (columns :data:`CURVE_COLUMNS`) and the final tables of :func:`run_frozenlake`.

    ``tables[method]`` is the table the method's decentralised policy reads, (seeds, observations,
    actions): q(o, a) of the learner, or Q(o, a) of the plain Q-table. ``experts[method]`` is the
    expert's Q(s, a), (seeds, cells, actions), for ``dagger`` and ``bc``.
    """

    seeds: tuple[int, ...]
    episodes: int
    curves: pd.DataFrame
    tables: dict[str, np.ndarray]
    experts: dict[str, np.ndarray] = field(default_factory=dict)

    def final(self) -> pd.DataFrame:
        """The curves' rows at the last evaluation (``episode == episodes``)."""
        return self.curves[self.curves["episode"] == self.episodes].reset_index(drop=True)


def block_observation(n_rows: int, n_cols: int, block: int = 2) -> np.ndarray:
    """Cell (row-major) -> index of its ``block`` x ``block`` box: the aliased observation of appendix E."""
    rows, cols = np.divmod(np.arange(n_rows * n_cols), n_cols)
    return (rows // block) * (n_cols // block) + cols // block


def make_lake(desc: tuple[str, ...] = MAP, block: int = 2) -> Lake:
    """Read the deterministic dynamics of ``FrozenLake-v1`` on ``desc`` from gymnasium's table ``P``."""
    env = gym.make("FrozenLake-v1", desc=list(desc), is_slippery=False)
    table, n_actions = env.unwrapped.P, env.action_space.n
    letters = np.array(list("".join(desc)))
    next_cell = np.zeros((len(letters), n_actions), dtype=np.int64)
    reward = np.zeros((len(letters), n_actions))
    for cell, action in itertools.product(range(len(letters)), range(n_actions)):
        ((prob, nxt, rew, _),) = table[cell][action]
        if prob != 1.0:
            raise ValueError(f"FrozenLake is not deterministic at cell {cell}, action {action}")
        next_cell[cell, action], reward[cell, action] = nxt, rew
    horizon = env.spec.max_episode_steps
    env.close()
    return Lake(
        desc=tuple(desc), next_cell=next_cell, reward=reward, terminal=np.isin(letters, ["H", "G"]),
        observation=block_observation(len(desc), len(desc[0]), block),
        start=int(np.flatnonzero(letters == "S")[0]), goal=int(np.flatnonzero(letters == "G")[0]),
        horizon=horizon,
    )  # fmt: skip


def random_argmax(values: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """Argmax over the last axis, ties broken by the largest ``noise`` (uniforms of the same shape)."""
    return np.argmax(np.where(values == values.max(-1, keepdims=True), noise, -1.0), axis=-1)


def epsilon(settings: Settings, episodes_done: np.ndarray, episodes: int) -> np.ndarray:
    """Linear annealing from ``epsilon_start`` to the floor ``epsilon_end`` (appendix D: floor 0.1)."""
    progress = np.minimum(1.0, episodes_done / max(1.0, settings.epsilon_fraction * episodes))
    return settings.epsilon_start + (settings.epsilon_end - settings.epsilon_start) * progress


def q_learning_update(
    table: np.ndarray, row: np.ndarray, action: np.ndarray, target: np.ndarray, lr: np.ndarray
) -> None:
    """In place, per batch entry b: table[b, row, action] += lr (target - table[b, row, action]).

    With ``target = r + gamma (1 - terminal) max_a' table[b, row', a']`` this is tabular Q-learning,
    the single-agent case of the Bellman iteration of eq. 18 (and eq. 3 for the aliased Q-table).
    """
    batch = np.arange(len(row))
    table[batch, row, action] += lr * (target - table[batch, row, action])


def imitation_update(q: np.ndarray, obs: np.ndarray, label: np.ndarray, lr: np.ndarray | float) -> None:
    """In place: q[b, obs] += lr (onehot(label) - q[b, obs]), one SGD step of 1/2 ||q(o, .) - onehot||^2.

    This is the authors' imitation ("teach") loss: the learner's whole Q-vector regressed to the one-hot
    of the expert's greedy action (eq. 10). Over samples of the cells sharing ``obs`` its fixed point is
    their average one-hot, q(o, u) = 1/k sum_s P_pi(u | s) (Proposition 5, eq. 25); with
    ``lr = 1/n`` at the n-th sample of ``obs`` it is exactly the running average.
    """
    batch = np.arange(len(obs))
    onehot = np.eye(q.shape[-1])[label]
    q[batch, obs] += np.reshape(lr, (-1, 1)) * (onehot - q[batch, obs])


def policy_probabilities(table: np.ndarray, policy: str) -> np.ndarray:
    """pi(a | row) of a table (..., rows, actions): ``greedy`` or ``proportional`` (module docstring)."""
    if policy == "greedy":
        return np.eye(table.shape[-1])[np.argmax(table, axis=-1)]
    if policy == "proportional":
        weights = np.clip(table, 0.0, None)
        total = weights.sum(-1, keepdims=True)
        return np.where(total > 0, weights / np.where(total > 0, total, 1.0), 1.0 / table.shape[-1])
    raise ValueError(f"unknown policy {policy!r}; expected one of {POLICIES}")


def success_probability(lake: Lake, cell_policy: np.ndarray) -> np.ndarray:
    """P(reach G from S within the horizon) of a memoryless pi(a | cell), (..., cells, actions) -> (...).

    Exact: the chain M[s, s'] = sum_a pi(a | s) 1[next(s, a) = s'] (terminal cells absorbing) raised to
    the power ``horizon``. The undiscounted return equals this probability (reward 1 only at G).
    """
    moves = np.zeros((lake.n_cells, lake.next_cell.shape[1], lake.n_cells))
    moves[np.arange(lake.n_cells)[:, None], np.arange(lake.next_cell.shape[1]), lake.next_cell] = 1.0
    chain = np.einsum("...sa,sat->...st", cell_policy, moves)
    return np.linalg.matrix_power(chain, lake.horizon)[..., lake.start, lake.goal]


def observation_success(lake: Lake, table: np.ndarray, policy: str) -> np.ndarray:
    """:func:`success_probability` of the ``policy`` reading of a table (..., observations, actions)."""
    return success_probability(lake, policy_probabilities(table, policy)[..., lake.observation, :])


def deterministic_policies(lake: Lake) -> np.ndarray:
    """Every deterministic observation -> action map: one-hots (actions^observations, observations, actions)."""
    n_actions = lake.next_cell.shape[1]
    choices = np.array(list(itertools.product(range(n_actions), repeat=lake.n_observations)))
    return np.eye(n_actions)[choices]


def greedy_path(lake: Lake, actions: np.ndarray) -> tuple[list[int], str]:
    """Cells visited from S by the deterministic cell -> action map ``actions``, and how it ends.

    The outcome is ``goal``, ``hole``, or ``loops`` (a cell repeats: a deterministic walk then cycles
    until the time limit, e.g. against a wall).
    """
    path = [lake.start]
    while not lake.terminal[path[-1]]:
        nxt = int(lake.next_cell[path[-1], actions[path[-1]]])
        if nxt in path:
            return path + [nxt], "loops"
        path.append(nxt)
    return path, "goal" if path[-1] == lake.goal else "hole"


def gymnasium_success_rate(lake: Lake, cell_policy: np.ndarray, episodes: int, seed: int) -> float:
    """Monte Carlo success rate of pi(a | cell) in the real gymnasium env (time limit included)."""
    env = gym.make("FrozenLake-v1", desc=list(lake.desc), is_slippery=False)
    rng = np.random.default_rng(seed)
    successes = 0.0
    for episode in range(episodes):
        cell, _ = env.reset(seed=seed + episode)
        done = False
        while not done:
            action = int(rng.choice(len(ACTIONS), p=cell_policy[cell]))
            cell, reward, terminated, truncated, _ = env.step(action)
            done = terminated or truncated
        successes += reward
    env.close()
    return successes / episodes


class _Draws:
    """Per-seed uniform streams consumed in lockstep, refilled in chunks (vectorised, batch-independent)."""

    def __init__(self, seeds: tuple[int, ...], width: int, chunk: int = 4096) -> None:
        self._rngs = [np.random.default_rng(seed) for seed in seeds]
        self._width, self._chunk, self._used = width, chunk, chunk
        self._block = np.empty((len(seeds), chunk, width))

    def next(self) -> np.ndarray:
        if self._used == self._chunk:
            self._block = np.stack([rng.random((self._chunk, self._width)) for rng in self._rngs])
            self._used = 0
        self._used += 1
        return self._block[:, self._used - 1]


def _evaluation_episodes(episodes: int, every: int) -> np.ndarray:
    return np.unique(np.r_[np.arange(0, episodes, every), episodes])


def train(
    lake: Lake, method: str, seeds: tuple[int, ...], episodes: int, settings: Settings
) -> tuple[np.ndarray, np.ndarray | None]:
    """Train ``method`` for ``episodes`` episodes per seed (all seeds in lockstep, Algorithm 1 for dagger).

    Returns the acting observation table at every evaluation episode, (seeds, evaluations, observations,
    actions), and the final expert Q(s, a), (seeds, cells, actions), or None for ``qtable``.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")
    n, n_actions = len(seeds), lake.next_cell.shape[1]
    batch = np.arange(n)
    learner = np.zeros((n, lake.n_observations, n_actions))  # q(o, a), or the plain Q(o, a)
    expert = np.zeros((n, lake.n_cells, n_actions))
    points = _evaluation_episodes(episodes, settings.eval_every)
    point_of = np.full(episodes + 1, -1)
    point_of[points] = np.arange(len(points))
    snapshots = np.zeros((n, len(points), lake.n_observations, n_actions))
    cell, steps, done_episodes = np.full(n, lake.start), np.zeros(n, np.int64), np.zeros(n, np.int64)
    draws = _Draws(seeds, _DRAWS_PER_STEP)
    while (active := done_episodes < episodes).any():
        u = draws.next()
        obs = lake.observation[cell]
        values = expert[batch, cell] if method == "bc" else learner[batch, obs]
        explore = u[:, 0] < epsilon(settings, done_episodes, episodes)
        action = np.where(explore, (u[:, 1] * n_actions).astype(np.int64), random_argmax(values, u[:, 2:6]))
        nxt, reward = lake.next_cell[cell, action], lake.reward[cell, action]
        alive = ~lake.terminal[nxt]
        lr = settings.td_lr * active
        if method == "qtable":
            target = reward + settings.gamma * alive * learner[batch, lake.observation[nxt]].max(-1)
            q_learning_update(learner, obs, action, target, lr)
        else:
            target = reward + settings.gamma * alive * expert[batch, nxt].max(-1)
            q_learning_update(expert, cell, action, target, lr)
            label = random_argmax(expert[batch, cell], u[:, 6:10])
            imitation_update(learner, obs, label, settings.imitation_lr * active)
        steps += 1
        ended = active & (~alive | (steps >= lake.horizon))
        done_episodes += ended
        snap = ended & (point_of[done_episodes] >= 0)
        snapshots[snap, point_of[done_episodes[snap]]] = learner[snap]
        cell = np.where(ended, lake.start, nxt)
        steps[ended] = 0
    return snapshots, None if method == "qtable" else expert


def run_frozenlake(
    seeds: list[int] | tuple[int, ...],
    episodes: int,
    methods: tuple[str, ...] = METHODS,
    settings: Settings | None = None,
) -> FrozenLakeResult:
    """Train every method on every seed and evaluate both policy readings at every evaluation episode.

    The curves hold the exact success probability (:func:`success_probability`) of the acting table's
    ``greedy`` and ``proportional`` policies at episodes 0, ``eval_every``, ..., ``episodes``.
    """
    settings = settings or Settings()
    seeds, lake = tuple(int(s) for s in seeds), make_lake()
    points = _evaluation_episodes(episodes, settings.eval_every)
    parts, tables, experts = [], {}, {}
    for method in methods:
        snapshots, expert = train(lake, method, seeds, episodes, settings)
        tables[method] = snapshots[:, -1]
        if expert is not None:
            experts[method] = expert
        for policy in POLICIES:
            success = observation_success(lake, snapshots, policy)
            parts.append(
                pd.DataFrame(
                    {
                        "method": method, "seed": np.repeat(seeds, len(points)),
                        "episode": np.tile(points, len(seeds)), "policy": policy, "success": success.ravel(),
                    }
                )
            )  # fmt: skip
    curves = pd.concat(parts, ignore_index=True)[list(CURVE_COLUMNS)]
    return FrozenLakeResult(seeds=seeds, episodes=episodes, curves=curves, tables=tables, experts=experts)


def final_summary(result: FrozenLakeResult) -> pd.DataFrame:
    """One row per method: final success (median, 25/75 % over seeds) of each policy reading.

    ``<policy>_reaches_goal`` counts the seeds whose policy reaches G with positive probability
    within the time limit (for ``greedy``: the greedy walk ends in G).
    """
    final = result.final()
    rows = []
    for method, part in final.groupby("method", sort=False):
        row: dict[str, object] = {
            "method": METHOD_LABELS[method], "n_seeds": len(result.seeds), "episodes": result.episodes
        }  # fmt: skip
        for policy in POLICIES:
            success = part.loc[part["policy"] == policy, "success"]
            row |= {
                f"{policy}_success_median": success.median(),
                f"{policy}_success_q25": success.quantile(0.25),
                f"{policy}_success_q75": success.quantile(0.75),
                f"{policy}_reaches_goal": f"{int((success > 0).sum())}/{len(success)}",
            }
        rows.append(row)
    return pd.DataFrame(rows)
