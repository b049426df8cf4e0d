"""Gold Miner (the 2020 RL competition game, 2 allies against 2 enemy bots), batched in JAX, as
``miner:<difficulty>_2_vs_2`` (MIFQ §5.1.2, Table 1). Written from the rules of
``notes/mifq_miner.md`` and of the MIFQ group's own Python game, wrapper and bots
(github.com/vietbt/IMAXPPO: ``miner/MinerMultiAgentEnv.py``, ``envs/miner_env/miner_env.py``,
``miner/bots.py``); no code of theirs is used. Where they are silent or buggy, the choice made
here is in ``docs/deviations.md`` ("Gold Miner").

The game
--------
* A 21 × 9 grid (``x`` 0..20 left to right, ``y`` 0..8 top to bottom), one of the 12 preset maps
  of :mod:`marlrepro.envs.miner_maps` drawn per episode. Cells: land, forest, trap, swamp, gold.
* Reset: every gold cell gets ``(randint(0, min(25, max(budget // 50, 1))) + 1) · 50`` gold, the
  cells drawn in row-major order (``y``, then ``x``) from a budget of 10000 that each draw
  lowers (:func:`draw_gold`; once the budget is spent every later cell still gets 50, as in the
  reference). All four players start on one random cell with energy ``E`` = 50, score 0.
* Actions: 0 left (x − 1), 1 right (x + 1), 2 up (y − 1), 3 down (y + 1), 4 rest, 5 dig. All
  players act on the state before the step (the reference applies them one by one, but defers
  every map change to the end of the step, so the order never matters).
* Entering a cell costs: land 1, gold 4, forest a uniform integer in 5..20 (drawn per player),
  trap 10 (the trap then becomes land), swamp its current cost: 5, then 20, 40 and 100 on later
  entries (one worsening per step in which anyone enters it). A dig costs 5 on gold, 10
  elsewhere. Consecutive rests give ``E // 4``, ``E // 3``, ``E // 2`` (12, 16, 25), then full
  energy, capped at ``E``; any move or dig resets the count.
* Elimination: energy ≤ 0 after a move or dig, a move off the map (the player then stays on its
  last cell), or an action outside 0..5. An eliminated player no longer acts.
* Digging: the ``c`` players who dig one gold cell in a step each gain
  ``m = min(ceil(gold / c), 50)`` score and the cell loses ``m · c`` (floored at 0; an empty gold
  cell is land).
* Episode end: the 100th step, any player's elimination, or no gold left (the reference's
  ``STATUS_STOP_EMPTY_GOLD``, which its wrapper's "any player's status" rule turns into an end).
  The step limit is a truncation (``truncated``), unless the task also ends on that step by an
  elimination or the last gold (``terminated``). ``won``: on the last step, the allies' mean score
  exceeds the enemies' mean score.
* Reward: 0.01 × the sum of the allies' score increments in the step (the team reward).

Players ``0 .. n_agents − 1`` are the allies; the rest are enemy bots, JAX policies acting inside
the step on the state before it (:mod:`marlrepro.envs.miner_bots`). Difficulties, as the
reference's wrapper builds them (the two bots shuffled over the enemy slots at every reset):
easy = GreedyBot + GreedyBot; medium = GreedyBot + DeepMindBot; hard = BlackPantherBot +
DeepMindBot.

Observation and state
---------------------
Per ally (199 floats for 2 vs 2): own ``(x / 21, y / 9)``; the other allies' positions, then the
enemies' (each ``(x / 21, y / 9)``, in player order); the map, x-major (index ``x · 9 + y``):
gold cells ``gold / 1000``, forest −1, trap −1/2, swamp −1/3, land 0, read from the live map (a
sprung trap is land; the reference kept the map of the reset); ``energy / E``; ``t / 100``. The
state is the allies' observations concatenated (398).

The available-action mask is :func:`avail_actions` (its docstring says exactly what it does).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import torch

from marlrepro import env_catalog
from marlrepro.envs.base import EnvSpec
from marlrepro.envs.jax_smax import EndFlaggedBatch, _where
from marlrepro.envs.miner_maps import (
    FOREST,
    GOLD,
    HEIGHT,
    LAND,
    SWAMP,
    TRAP,
    WIDTH,
    map_codes,
)

# ---- the game's constants -------------------------------------------------------------------
N_ACTIONS = 6
LEFT, RIGHT, UP, DOWN, REST, DIG = range(N_ACTIONS)
DX = np.array([-1, 1, 0, 0, 0, 0], np.int32)
DY = np.array([0, 0, -1, 1, 0, 0], np.int32)
MAX_ENERGY = 50  # E
MAX_STEPS = 100
GOLD_BUDGET = 10000
DIG_CAP = 50  # most gold one digger takes from a cell in a step
REST_GAINS = (MAX_ENERGY // 4, MAX_ENERGY // 3, MAX_ENERGY // 2)  # 1st, 2nd, 3rd rest; then full
SWAMP_COSTS = (5, 20, 40, 100)
LAND_COST, GOLD_COST, TRAP_COST = 1, 4, 10
FOREST_COST_RANGE = (5, 20)  # inclusive
FOREST_MASK_COST = 20  # the mask's pessimistic forest cost
DIG_COST_GOLD, DIG_COST_ELSEWHERE = 5, 10
REST_BLOCKED_FROM = MAX_ENERGY - MAX_ENERGY // 4  # 38: the mask blocks rest from this energy on
REWARD_SCALE = 0.01

# player status
PLAYING, LEFT_MAP, OUT_OF_ENERGY, INVALID_ACTION = range(4)

# enemy bots
GREEDY, DEEPMIND, BLACK_PANTHER = range(3)
BOT_NAMES = {GREEDY: "GreedyBot", DEEPMIND: "DeepMindBot", BLACK_PANTHER: "BlackPantherBot"}
# the wrapper's teams (envs/miner_env/miner_env.py), shuffled over the enemy slots at every reset
DIFFICULTIES: dict[str, tuple[int, ...]] = {
    "easy": (GREEDY, GREEDY),
    "medium": (GREEDY, DEEPMIND),
    "hard": (BLACK_PANTHER, DEEPMIND),
}
N_ALLIES = N_ENEMIES = 2
SCENARIOS = frozenset(f"{level}_{N_ALLIES}_vs_{N_ENEMIES}" for level in DIFFICULTIES)
OPTIONS = env_catalog.OPTIONS["miner"]  # option -> (type, default)

_CODES = np.array(map_codes(), np.int32)  # [12, H, W]
N_MAPS = _CODES.shape[0]
MAP_TERRAIN = np.where(_CODES == GOLD, LAND, _CODES).astype(np.int32)  # gold lies on land
MAP_GOLD_CELLS = _CODES == GOLD
MAP_COST = np.select([MAP_TERRAIN == TRAP, MAP_TERRAIN == SWAMP], [TRAP_COST, SWAMP_COSTS[0]], LAND_COST).astype(np.int32)
_OBSTACLE_VALUE = np.array([0.0, -1.0, -1.0 / 2, -1.0 / 3], np.float32)  # by terrain: -1 / type


def obs_dim(n_agents: int = N_ALLIES, n_enemies: int = N_ENEMIES) -> int:
    """2 per player, the 21 × 9 map, energy and time: 199 for 2 vs 2."""
    return 2 * (n_agents + n_enemies) + WIDTH * HEIGHT + 2


class Game(NamedTuple):
    """One game's state (a leading batch axis where batched). ``P`` players, allies first."""

    terrain: jax.Array  # [H, W] int32: LAND, FOREST, TRAP or SWAMP (a gold cell is land beneath)
    cost: jax.Array  # [H, W] int32: energy to enter a land, trap or swamp cell (the swamp's current cost)
    gold: jax.Array  # [H, W] int32: gold left (0: none)
    pos: jax.Array  # [P, 2] int32: (x, y)
    energy: jax.Array  # [P] int32
    score: jax.Array  # [P] int32
    rests: jax.Array  # [P] int32: consecutive rests so far
    status: jax.Array  # [P] int32: PLAYING, LEFT_MAP, OUT_OF_ENERGY or INVALID_ACTION
    t: jax.Array  # [] int32: steps taken


class BotMemory(NamedTuple):
    """What the enemy bots carry from step to step, one entry per enemy slot ([M] each)."""

    target: jax.Array  # GreedyBot's target cell (y · W + x), -1 for none
    free_turn: jax.Array  # DeepMindBot's rests still planned
    last_energy: jax.Array  # BlackPantherBot's energy at its last decision, -1 before the first
    rests_seen: jax.Array  # BlackPantherBot's count of rests, inferred from rises in its energy

    @staticmethod
    def fresh(n: int) -> BotMemory:
        return BotMemory(target=jnp.full(n, -1, jnp.int32), free_turn=jnp.zeros(n, jnp.int32),
                         last_energy=jnp.full(n, -1, jnp.int32), rests_seen=jnp.zeros(n, jnp.int32))


class MinerState(NamedTuple):
    """A game and its enemy bots."""

    game: Game
    kinds: jax.Array  # [M] int32: each enemy's bot (GREEDY, DEEPMIND, BLACK_PANTHER)
    memory: BotMemory


# ---- reset ----------------------------------------------------------------------------------


def draw_gold(key: jax.Array, gold_cells: jax.Array, budget: int = GOLD_BUDGET) -> jax.Array:
    """Gold amounts for ``gold_cells`` [H, W] (bool), drawn cell by cell in row-major order from
    ``budget``: ``(randint(0, min(25, max(budget // 50, 1))) + 1) · 50``, each draw lowering the
    budget (which may go below 0: every cell still gets at least 50). -> [H, W] int32."""

    def draw(left: jax.Array, cell: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
        u, is_gold = cell
        high = jnp.minimum(25, jnp.maximum(left // 50, 1))
        pick = jnp.minimum(jnp.floor(u * high).astype(jnp.int32), high - 1)  # uniform in 0 .. high − 1
        amount = jnp.where(is_gold, (pick + 1) * 50, 0)
        return left - amount, amount

    uniforms = jax.random.uniform(key, (HEIGHT * WIDTH,))
    _, amounts = jax.lax.scan(draw, jnp.int32(budget), (uniforms, gold_cells.reshape(-1)))
    return amounts.reshape(HEIGHT, WIDTH).astype(jnp.int32)


def new_game(key: jax.Array, n_players: int, map_id: jax.Array | int | None = None) -> Game:
    """A fresh game: a random preset map (or ``map_id``), its gold redrawn, all ``n_players`` on
    one random cell with full energy."""
    map_key, x_key, y_key, gold_key = jax.random.split(key, 4)
    if map_id is None:
        map_id = jax.random.randint(map_key, (), 0, N_MAPS)
    start = jnp.stack([jax.random.randint(x_key, (), 0, WIDTH), jax.random.randint(y_key, (), 0, HEIGHT)])
    zeros = jnp.zeros(n_players, jnp.int32)
    return Game(
        terrain=jnp.asarray(MAP_TERRAIN)[map_id], cost=jnp.asarray(MAP_COST)[map_id],
        gold=draw_gold(gold_key, jnp.asarray(MAP_GOLD_CELLS)[map_id]),
        pos=jnp.broadcast_to(start, (n_players, 2)).astype(jnp.int32),
        energy=zeros + MAX_ENERGY, score=zeros, rests=zeros, status=zeros, t=jnp.int32(0),
    )


# ---- the rules ------------------------------------------------------------------------------


def _at(grid: jax.Array, xy: jax.Array) -> jax.Array:
    """``grid[y, x]`` at ``xy`` [..., 2], clipped into the map."""
    x = jnp.clip(xy[..., 0], 0, WIDTH - 1)
    y = jnp.clip(xy[..., 1], 0, HEIGHT - 1)
    return grid[y, x]


def _inside(xy: jax.Array) -> jax.Array:
    return (xy[..., 0] >= 0) & (xy[..., 0] < WIDTH) & (xy[..., 1] >= 0) & (xy[..., 1] < HEIGHT)


def _cell_index(xy: jax.Array) -> jax.Array:
    return jnp.clip(xy[..., 1], 0, HEIGHT - 1) * WIDTH + jnp.clip(xy[..., 0], 0, WIDTH - 1)


def entry_cost(game: Game, xy: jax.Array, forest: jax.Array | int) -> jax.Array:
    """Energy spent entering cell ``xy`` [..., 2]: gold 4, forest ``forest``, else the cell's
    ``cost`` (land 1, trap 10, swamp 5/20/40/100)."""
    return jnp.where(_at(game.gold, xy) > 0, GOLD_COST,
                     jnp.where(_at(game.terrain, xy) == FOREST, forest, _at(game.cost, xy)))


def _next_swamp_cost(cost: jax.Array) -> jax.Array:
    worse = jnp.asarray(SWAMP_COSTS[1:] + SWAMP_COSTS[-1:], jnp.int32)  # 5->20->40->100->100
    return worse[jnp.argmax(cost[..., None] == jnp.asarray(SWAMP_COSTS, jnp.int32), axis=-1)]


def apply_actions(game: Game, actions: jax.Array, forest: jax.Array) -> Game:
    """One step of the game's rules for every player at once (pure, one game).

    ``actions`` [P] int32 (any value: outside 0..5 eliminates), ``forest`` [P] int32: each
    player's forest cost if it enters a forest this step. Players not ``PLAYING`` do nothing.
    Every move and dig reads the map before the step; the map's changes (sprung traps,
    worsened swamps, dug gold) apply after all players have acted.
    """
    playing = game.status == PLAYING
    valid = (actions >= 0) & (actions < N_ACTIONS)
    action = jnp.clip(actions, 0, N_ACTIONS - 1)
    moving = playing & valid & (action < REST)
    target = game.pos + jnp.stack([jnp.asarray(DX)[action], jnp.asarray(DY)[action]], axis=-1)
    inside = _inside(target)
    moved = moving & inside
    resting = playing & valid & (action == REST)
    digging = playing & valid & (action == DIG)

    energy = game.energy - jnp.where(moved, entry_cost(game, target, forest), 0)
    rests = jnp.where(resting, game.rests + 1, jnp.where(moving | digging, 0, game.rests))
    gain = jnp.asarray(REST_GAINS + (MAX_ENERGY,), jnp.int32)[jnp.clip(rests - 1, 0, len(REST_GAINS))]
    energy = jnp.where(resting, jnp.minimum(energy + gain, MAX_ENERGY), energy)
    on_gold = _at(game.gold, game.pos) > 0
    energy = energy - jnp.where(digging, jnp.where(on_gold, DIG_COST_GOLD, DIG_COST_ELSEWHERE), 0)
    diggers = digging & on_gold & (energy > 0)

    status = jnp.where(moving & ~inside, LEFT_MAP, game.status)
    status = jnp.where((moved | digging) & (energy <= 0), OUT_OF_ENERGY, status)
    status = jnp.where(playing & ~valid, INVALID_ACTION, status)
    pos = jnp.where(moved[:, None], target, game.pos)

    # the map after the step: sprung traps, worsened swamps (once per step), dug gold; one-hot
    # sums over the players rather than scatters (cheaper to compile, and vmap-friendly)
    cells = jnp.arange(HEIGHT * WIDTH)
    here = _cell_index(game.pos)
    entered = ((_cell_index(target)[:, None] == cells) & moved[:, None]).any(0).reshape(HEIGHT, WIDTH)
    sprung = entered & (game.terrain == TRAP)
    sunk = entered & (game.terrain == SWAMP)
    terrain = jnp.where(sprung, LAND, game.terrain)
    cost = jnp.where(sprung, LAND_COST, jnp.where(sunk, _next_swamp_cost(game.cost), game.cost))
    count = ((here[:, None] == cells) & diggers[:, None]).sum(0)
    flat_gold = game.gold.reshape(-1)
    share = jnp.where(count > 0, jnp.minimum((flat_gold + count - 1) // jnp.maximum(count, 1), DIG_CAP), 0)
    gold = jnp.maximum(flat_gold - share * count, 0).reshape(HEIGHT, WIDTH)
    score = game.score + jnp.where(diggers, share[here], 0)
    return Game(terrain=terrain, cost=cost, gold=gold, pos=pos, energy=energy, score=score, rests=rests,
                status=status, t=game.t + 1)


def episode_over(game: Game) -> tuple[jax.Array, jax.Array]:
    """(ended by the task: an elimination or no gold left, reached the step limit)."""
    return (game.status != PLAYING).any() | (game.gold.sum() == 0), game.t >= MAX_STEPS


def allies_won(game: Game, n_agents: int) -> jax.Array:
    """The win rule: the allies' mean score exceeds the enemies' mean score."""
    score = game.score.astype(jnp.float32)
    return score[:n_agents].mean() > score[n_agents:].mean()


# ---- the available-action mask --------------------------------------------------------------


def reachable_golds(game: Game, xy: jax.Array, steps_left: jax.Array | None = None) -> jax.Array:
    """The golds a player at ``xy`` considers: those with gold whose Manhattan distance is below
    ``steps_left`` (default ``100 − t``: the reference's count when it builds the allies' masks,
    after the step); if there are none, every cell with gold. -> [H, W] bool."""
    ys, xs = jnp.mgrid[:HEIGHT, :WIDTH]
    has_gold = game.gold > 0
    left = MAX_STEPS - game.t if steps_left is None else steps_left
    near = has_gold & (jnp.abs(xs - xy[0]) + jnp.abs(ys - xy[1]) < left)
    return jnp.where(near.any(), near, has_gold)


def avail_actions(game: Game, player: jax.Array | int, golds: jax.Array) -> jax.Array:
    """The reference's available-action mask for ``player``, given the golds it considers
    (``golds`` [H, W] bool: :func:`reachable_golds` for allies, the one target for GreedyBot).
    -> [6] bool. Exactly:

    1. Bounding box: ``[min x, max x] × [min y, max y]`` of the considered golds (the whole map
       if there are none).
    2. A move (0–3) is available when the next cell is on the map, the energy left after
       entering it stays above 0 — counting forest at its worst, 20; gold 4; land, trap and swamp
       at their current cost — and the move's coordinate stays inside the box (left:
       ``x − 1 ≥ min x``; right: ``x + 1 ≤ max x``; up: ``y − 1 ≥ min y``; down: ``y + 1 ≤ max y``;
       the other coordinate is not checked).
    3. Rich neighbour: if some available move leads to a cell with gold ``g ≥ 50`` and
       ``50 · (n₁ + 2 · n₀) ≤ g`` (``n₁``: players, eliminated ones included, at distance 1 of that
       cell, the mover among them; ``n₀``: players on it), only those moves stay available.
    4. Rest (4) is available below energy 38 (``E − E // 4``).
    5. Dig (5) is available on a gold cell with energy above 5. On a gold cell whose gold is at
       least 50 × the players on it, or when exactly one gold is considered, moves and rest are
       removed (dig is forced; if dig itself is unavailable, the mask falls to step 6).
    6. If nothing is available, rest alone is.

    Fixed from the reference: its golds list was a mutable default argument, so the box was
    built, for every call after the first, from golds of the first episode; here it is built
    afresh every step from the live gold.
    """
    pos, energy = game.pos[player], game.energy[player]
    ys, xs = jnp.mgrid[:HEIGHT, :WIDTH]
    any_gold = golds.any()
    min_x = jnp.where(any_gold, jnp.where(golds, xs, WIDTH).min(), 0)
    max_x = jnp.where(any_gold, jnp.where(golds, xs, -1).max(), WIDTH - 1)
    min_y = jnp.where(any_gold, jnp.where(golds, ys, HEIGHT).min(), 0)
    max_y = jnp.where(any_gold, jnp.where(golds, ys, -1).max(), HEIGHT - 1)

    steps = jnp.stack([jnp.asarray(DX[:4]), jnp.asarray(DY[:4])], axis=-1)
    nbr = pos + steps  # [4, 2]
    afford = _inside(nbr) & (energy - entry_cost(game, nbr, FOREST_MASK_COST) > 0)
    in_box = jnp.stack([pos[0] - 1 >= min_x, pos[0] + 1 <= max_x, pos[1] - 1 >= min_y, pos[1] + 1 <= max_y])
    move = afford & in_box
    dist = jnp.abs(game.pos[None, :, :] - nbr[:, None, :]).sum(-1)  # [4, P]
    crowd = (dist == 1).sum(-1) + 2 * (dist == 0).sum(-1)
    nbr_gold = jnp.where(_inside(nbr), _at(game.gold, nbr), 0)
    force = move & (nbr_gold >= 50) & (50 * crowd <= nbr_gold)
    move = jnp.where(force.any(), force, move)

    rest = energy < REST_BLOCKED_FROM
    here = _at(game.gold, pos)
    dig = (here > 0) & (energy - DIG_COST_GOLD > 0)
    sharing = (game.pos == pos).all(-1).sum()
    dig_only = (here > 0) & ((50 * sharing <= here) | (golds.sum() == 1))
    avail = jnp.concatenate([move & ~dig_only, (rest & ~dig_only)[None], dig[None]])
    return jnp.where(avail.any(), avail, jnp.arange(N_ACTIONS) == REST)


def ally_avail_actions(game: Game, n_agents: int) -> jax.Array:
    """The allies' masks [n_agents, 6], each over its :func:`reachable_golds`."""
    players = jnp.arange(n_agents)
    golds = jax.vmap(lambda p: reachable_golds(game, game.pos[p]))(players)
    return jax.vmap(lambda p, g: avail_actions(game, p, g))(players, golds)


# ---- observation ----------------------------------------------------------------------------


def map_features(game: Game) -> jax.Array:
    """The live map as the observation sees it, x-major [W · H]: gold / 1000 on gold cells, else
    −1 / type (forest −1, trap −1/2, swamp −1/3, land 0)."""
    values = jnp.where(game.gold > 0, game.gold / 1000.0, jnp.asarray(_OBSTACLE_VALUE)[game.terrain])
    return values.T.reshape(-1).astype(jnp.float32)


def observe(game: Game, n_agents: int) -> jax.Array:
    """Every ally's observation [n_agents, obs_dim] (layout: the module docstring)."""
    n_players = game.pos.shape[0]
    scaled = game.pos.astype(jnp.float32) / jnp.asarray([WIDTH, HEIGHT], jnp.float32)  # [P, 2]
    # ally i sees itself, then the other players in order (allies come first, so enemies follow)
    order = np.array([[i] + [p for p in range(n_players) if p != i] for i in range(n_agents)])
    positions = scaled[order].reshape(n_agents, -1)
    grid = jnp.broadcast_to(map_features(game), (n_agents, WIDTH * HEIGHT))
    energy = game.energy[:n_agents].astype(jnp.float32)[:, None] / MAX_ENERGY
    time = jnp.broadcast_to(game.t.astype(jnp.float32) / MAX_STEPS, (n_agents, 1))
    return jnp.concatenate([positions, grid, energy, time], axis=1)


# ---- enemy bots (their policies: :mod:`marlrepro.envs.miner_bots`) --------------------------------


def bot_actions(game: Game, players: jax.Array, kinds: jax.Array, memory: BotMemory, key: jax.Array,
                bots: tuple[int, ...]) -> tuple[jax.Array, BotMemory]:
    """The actions of the bot-driven ``players`` [K] (each running the bot of ``kinds`` [K], with
    its ``memory`` [K]) and their memory after them, from ``game`` before the step. ``bots``
    (static): the bots over the K slots in any order, so ``kinds`` is a permutation of them. Each
    kind of bot is traced once and evaluated on just the slots that run it (its count in
    ``bots``), with each slot's own key and memory, then scattered back."""
    from marlrepro.envs import miner_bots  # the bots build on this module's rules

    policies = {GREEDY: miner_bots.greedy_action, DEEPMIND: miner_bots.deepmind_action,
                BLACK_PANTHER: miner_bots.black_panther_action}
    keys = jax.random.split(key, players.shape[0])
    action, new_memory = jnp.zeros(players.shape, jnp.int32), memory
    for kind in sorted(set(bots)):
        slots = jnp.argsort((kinds != kind).astype(jnp.int32), stable=True)[:bots.count(kind)]
        act, mem = jax.vmap(lambda p, m, k, kind=kind: policies[kind](game, p, m, k))(
            players[slots], jax.tree.map(lambda field, slots=slots: field[slots], memory), keys[slots])
        action = action.at[slots].set(act.astype(jnp.int32))
        new_memory = jax.tree.map(lambda field, part, slots=slots: field.at[slots].set(part), new_memory, mem)
    return action, new_memory


def enemy_actions(state: MinerState, key: jax.Array, n_agents: int,
                  kinds: tuple[int, ...]) -> tuple[jax.Array, BotMemory]:
    """Every enemy's action [M] and its bot's memory after it, from the state before the step
    (each slot runs the bot of ``state.kinds``; ``kinds``: the difficulty's bots, static)."""
    players = n_agents + jnp.arange(state.kinds.shape[0])
    return bot_actions(state.game, players, state.kinds, state.memory, key, kinds)


def bot_match(key: jax.Array, team: tuple[int, ...], opponents: tuple[int, ...]) -> tuple[jax.Array, jax.Array]:
    """One game of bots only: ``team`` (players 0, 1, …) against ``opponents``, each team's bots
    shuffled over its slots, to the game's end. -> (the players' final scores [P], the steps).
    For the bot-versus-bot league (``miner_bots.league``)."""
    n = len(team) + len(opponents)
    game_key, team_key, foe_key, play_key = jax.random.split(key, 4)
    kinds = jnp.concatenate([jnp.asarray(team)[jax.random.permutation(team_key, len(team))],
                             jnp.asarray(opponents)[jax.random.permutation(foe_key, len(opponents))]]).astype(jnp.int32)

    def turn(carry, step_key):
        game, memory, over = carry
        bot_key, forest_key = jax.random.split(step_key)
        actions, memory = bot_actions(game, jnp.arange(n), kinds, memory, bot_key, (*team, *opponents))
        low, high = FOREST_COST_RANGE
        after = apply_actions(game, actions, jax.random.randint(forest_key, (n,), low, high + 1))
        game = jax.tree.map(lambda new, old: jnp.where(over, old, new), after, game)
        task_end, limit = episode_over(game)
        return (game, memory, over | task_end | limit), None

    start = (new_game(game_key, n), BotMemory.fresh(n), jnp.bool_(False))
    (game, _, _), _ = jax.lax.scan(turn, start, jax.random.split(play_key, MAX_STEPS))
    return game.score, game.t


# ---- one environment ------------------------------------------------------------------------


def reset_one(key: jax.Array, bots: tuple[int, ...], n_agents: int = N_ALLIES) -> MinerState:
    """A new episode: a new game, the difficulty's bots shuffled over the enemy slots (as the
    reference's wrapper does), no targets yet."""
    game_key, shuffle_key = jax.random.split(key)
    kinds = jnp.asarray(bots, jnp.int32)[jnp.argsort(jax.random.uniform(shuffle_key, (len(bots),)))]
    return MinerState(game=new_game(game_key, n_agents + len(bots)), kinds=kinds, memory=BotMemory.fresh(len(bots)))


def step_one(state: MinerState, key: jax.Array, ally_actions: jax.Array, n_agents: int,
             kinds: tuple[int, ...]) -> tuple[MinerState, jax.Array, jax.Array, jax.Array, jax.Array]:
    """One step of one environment: the bots (of ``kinds``, static) choose on the state before the
    step, then every player acts. -> (state, reward, terminated, truncated, won)."""
    bot_key, forest_key = jax.random.split(key)
    bot_actions, memory = enemy_actions(state, bot_key, n_agents, kinds)
    actions = jnp.concatenate([ally_actions.astype(jnp.int32), bot_actions])
    low, high = FOREST_COST_RANGE
    forest = jax.random.randint(forest_key, actions.shape, low, high + 1)
    game = apply_actions(state.game, actions, forest)
    reward = REWARD_SCALE * (game.score[:n_agents] - state.game.score[:n_agents]).sum().astype(jnp.float32)
    task_end, limit = episode_over(game)
    won = (task_end | limit) & allies_won(game, n_agents)
    return state._replace(game=game, memory=memory), reward, task_end, limit & ~task_end, won


def outputs_one(game: Game, n_agents: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(observations [N, obs], state [N · obs], mask [N, 6]) of one game."""
    obs = observe(game, n_agents)
    return obs, obs.reshape(-1), ally_avail_actions(game, n_agents)


# ---- the backend ----------------------------------------------------------------------------


def spec(scenario: str) -> EnvSpec:
    """Static spec: 2 allies, 199-float observations, the 398-float state, 6 actions, 100 steps. No
    ally dies within an episode (an elimination ends it), so a step whose mask leaves one action
    (a forced dig, rest or step onto gold) is a live agent's, not a death."""
    return EnvSpec(name=f"miner:{scenario}", n_agents=N_ALLIES, obs_dim=obs_dim(), state_dim=N_ALLIES * obs_dim(),
                   n_actions=N_ACTIONS, episode_limit=MAX_STEPS, one_action_means_dead=False)


class Env(EndFlaggedBatch):
    """``num_envs`` vmapped Gold Miner games with per-environment auto-reset."""

    def __init__(self, scenario: str, *, num_envs: int, seed: int, device: torch.device) -> None:
        self.spec = spec(scenario)
        self.bots = DIFFICULTIES[scenario.split("_", 1)[0]]
        self._setup(num_envs, seed, device)

    # ---- pure JAX (traced once) -------------------------------------------------------------

    def _outputs(self, states: MinerState, reward: jax.Array, terminated: jax.Array, truncated: jax.Array,
                 won: jax.Array) -> jax.Array:
        """The step packed into one float32 array [B, F] (``jax_smax.packed_widths`` layout)."""
        obs, world, avail = jax.vmap(outputs_one, in_axes=(0, None))(states.game, self.spec.n_agents)
        columns = [obs, world, avail, reward, terminated, truncated, won]
        return jnp.concatenate([c.reshape(self.num_envs, -1).astype(jnp.float32) for c in columns], axis=1)

    def _reset_all(self, key: jax.Array) -> MinerState:
        return jax.vmap(reset_one, in_axes=(0, None, None))(jax.random.split(key, self.num_envs), self.bots,
                                                             self.spec.n_agents)

    def _game_step(self, states: tuple[MinerState, jax.Array], key: jax.Array, actions: jax.Array,
                   restart: bool) -> tuple[tuple[MinerState, jax.Array], jax.Array, jax.Array]:
        states, ended_before = states
        key, step_key, reset_key = jax.random.split(key, 3)
        one = functools.partial(step_one, n_agents=self.spec.n_agents, kinds=self.bots)
        stepped, reward, terminated, truncated, won = jax.vmap(one)(
            states, jax.random.split(step_key, self.num_envs), actions)
        stepping = ~ended_before
        reward = jnp.where(stepping, reward, 0.0)
        terminated, truncated, won = terminated & stepping, truncated & stepping, won & stepping
        if restart:
            stepped = _where(ended_before, self._reset_all(reset_key), stepped)
            ended = terminated | truncated
        else:
            ended = ended_before | terminated | truncated
        return (stepped, ended), key, self._outputs(stepped, reward, terminated, truncated, won)

    def step_batch(self, states: tuple[MinerState, jax.Array], key: jax.Array,
                   actions: jax.Array) -> tuple[tuple[MinerState, jax.Array], jax.Array, jax.Array]:
        """Step every game, or restart one whose episode ended on the last step (pure, traceable);
        ``actions`` [B, N] int32. Returns the new states, the next key and the packed outputs (an
        ending step's with the game's final observation)."""
        return self._game_step(states, key, actions, restart=True)

    def advance_batch(self, states: tuple[MinerState, jax.Array], key: jax.Array,
                      actions: jax.Array) -> tuple[tuple[MinerState, jax.Array], jax.Array, jax.Array]:
        """:meth:`step_batch` without its restarts, for the lock-step rollout: an ended game steps
        on with zero reward and no flags, and its outputs mean nothing."""
        return self._game_step(states, key, actions, restart=False)
