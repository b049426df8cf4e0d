"""Gold Miner's enemy bots as JAX policies of one game: ``bot(game, player, memory, key) ->
(action, memory)``, vmapped over the enemy slots inside the step (:func:`marlrepro.envs.miner.enemy_actions`).

Ported from the decision rules of the MIFQ group's bots (github.com/vietbt/IMAXPPO,
``miner/bots.py`` and, for DeepMindBot, the C++ planner ``miner/heuristic/src/boardgame.cpp``);
no code of theirs is used. Their loops over cells become array sweeps over the 21 × 9 grid: a
shortest path is a fixed number of relaxation sweeps, a breadth-first search by turns a
relaxation iterated to its fixed point. Every bot reads the live map (a sprung trap is land, a
swamp its current cost); where the reference leaves a tie to a heap's order, the lower
direction index (left, right, up, down) wins. ``docs/deviations.md`` ("Gold Miner") lists these
choices.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from marlrepro.envs.miner import (
    DIFFICULTIES,
    DIG,
    DX,
    DY,
    MAX_ENERGY,
    MAX_STEPS,
    N_ACTIONS,
    REST,
    BotMemory,
    Game,
    avail_actions,
    bot_match,
    reachable_golds,
)
from marlrepro.envs.miner_maps import FOREST, HEIGHT, LAND, SWAMP, TRAP, WIDTH

CELLS = HEIGHT * WIDTH
MAX_GOLDS = 24  # the most gold cells of any preset map (map 8)
LONGEST = WIDTH + HEIGHT - 2  # the longest shortest path, in moves
_BIG = 1 << 20
_YS, _XS = np.mgrid[:HEIGHT, :WIDTH]


def _shifted(grid: jax.Array, dx: int, dy: int, fill) -> jax.Array:
    """``out[y, x] = grid[y + dy, x + dx]``, ``fill`` off the map."""
    padded = jnp.pad(grid, 1, constant_values=fill)
    return padded[1 + dy:1 + dy + HEIGHT, 1 + dx:1 + dx + WIDTH]


def _count_at(game: Game, xy: jax.Array) -> jax.Array:
    """Players (all of them, eliminated ones included) on cell ``xy``."""
    return (game.pos == xy).all(-1).sum()


def _gold_slots(game: Game) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The cells holding gold in row-major order, padded to ``MAX_GOLDS``: (present [G] bool,
    positions [G, 2], amounts [G])."""
    flat = game.gold.reshape(-1)
    index = jnp.nonzero(flat > 0, size=MAX_GOLDS, fill_value=0)[0]
    present = jnp.arange(MAX_GOLDS) < (flat > 0).sum()
    return present, jnp.stack([index % WIDTH, index // WIDTH], axis=-1), jnp.where(present, flat[index], 0)


def _random_available(avail: jax.Array, key: jax.Array) -> jax.Array:
    """A uniform random available action (``avail`` [6] bool, never empty)."""
    return jnp.argmax(jnp.where(avail, jax.random.uniform(key, (N_ACTIONS,)), -1.0))


# ---- GreedyBot ----------------------------------------------------------------------------------


def greedy_action(game: Game, player: jax.Array | int, memory: BotMemory, key: jax.Array) -> tuple[jax.Array, BotMemory]:
    """GreedyBot (``bots.py``): it keeps a target gold until that cell holds 50 or less; then (or
    at first) it draws one of the 2 golds nearest by Manhattan distance (ties in row-major order,
    as the reference's stable sort of its row-major gold list), each with probability 1/2 (the
    nearest if only one is left). It takes the mask of :func:`~marlrepro.envs.miner.avail_actions`
    with the target as its only considered gold (so it moves only towards the target, and dig is
    forced on any gold cell), digs when dig is available, and otherwise takes a uniform random
    available action."""
    pick_key, act_key = jax.random.split(key)
    pos, target = game.pos[player], memory.target
    flat_gold = game.gold.reshape(-1)
    retarget = (target < 0) | (flat_gold[jnp.maximum(target, 0)] <= 50)
    dist = (jnp.abs(_XS - pos[0]) + jnp.abs(_YS - pos[1])).reshape(-1)
    rank = jnp.where(flat_gold > 0, dist * CELLS + jnp.arange(CELLS), jnp.iinfo(jnp.int32).max)
    nearest = jnp.argmin(rank)
    second = jnp.argmin(rank.at[nearest].set(jnp.iinfo(jnp.int32).max))
    two = (flat_gold > 0).sum() >= 2
    choice = jnp.where(two & (jax.random.uniform(pick_key) < 0.5), second, nearest)
    target = jnp.where(retarget, jnp.where((flat_gold > 0).any(), choice, -1), target).astype(jnp.int32)
    goal = (jnp.arange(CELLS) == target).reshape(HEIGHT, WIDTH)
    avail = avail_actions(game, player, goal)
    action = jnp.where(avail[DIG], DIG, _random_available(avail, act_key)).astype(jnp.int32)
    return action, memory._replace(target=target)


# ---- DeepMindBot (the competition's 2nd: the C++ planner) ----------------------------------------

# the planner's cost weights by cell (``constant.h`` DAMAGE): land 1, forest 3, trap 2, swamp 3, gold 4
_DAMAGE = np.zeros(5, np.int32)
_DAMAGE[[LAND, FOREST, TRAP, SWAMP]] = [1, 3, 2, 3]
_DAMAGE_GOLD = 4
_QUARTER, _SEVEN_TWELFTHS = MAX_ENERGY // 4, MAX_ENERGY * 7 // 12  # 12, 29


def planner_damage(game: Game) -> jax.Array:
    """The planner's per-cell weights on the live map [H, W]."""
    return jnp.where(game.gold > 0, _DAMAGE_GOLD, jnp.asarray(_DAMAGE)[game.terrain])


def _towards(damage: jax.Array, to: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``best_direction`` to cell ``to``, for every start at once: the planner's search finds,
    among the shortest paths (every cell is passable, so Manhattan-long), the one of least summed
    weight of the cells entered. -> (that sum [H, W], the first move [H, W])."""
    dist = jnp.abs(_XS - to[0]) + jnp.abs(_YS - to[1])

    def options(cost: jax.Array) -> jax.Array:
        return jnp.stack([jnp.where(_shifted(dist, DX[d], DY[d], _BIG) == dist - 1,
                                    _shifted(damage, DX[d], DY[d], 0) + _shifted(cost, DX[d], DY[d], _BIG), _BIG)
                          for d in range(4)])

    cost = jax.lax.fori_loop(0, LONGEST, lambda _, c: jnp.where(dist == 0, 0, options(c).min(0)),
                             jnp.where(dist == 0, 0, _BIG))
    return cost, jnp.argmin(options(cost), axis=0)


def _path_weights(damage: jax.Array, first: jax.Array, start: jax.Array, to: jax.Array) -> jax.Array:
    """The weights of the cells entered along the chosen path from ``start`` to ``to`` [LONGEST]
    (zeros past its end)."""

    def walk(k, carry):
        at, weights = carry
        arrived = (at == to).all()
        move = first[at[1], at[0]]
        nxt = jnp.where(arrived, at, at + jnp.stack([jnp.asarray(DX)[move], jnp.asarray(DY)[move]]))
        return nxt, weights.at[k].set(jnp.where(arrived, 0, damage[nxt[1], nxt[0]]))

    return jax.lax.fori_loop(0, LONGEST, walk, (start, jnp.zeros(LONGEST, jnp.int32)))[1]


def planner_turns(energy: jax.Array, weights: jax.Array, length: jax.Array) -> jax.Array:
    """``count_turn_from_path``: the moves along a path plus the rests the planner expects on it
    (before a cell whose weight is at least its energy: 3 turns to full energy if even E·7/12 more
    would not cover the rest of the path, else 2 turns for E·7/12, else E/4 for no turn)."""
    rest_of_path = jnp.cumsum(weights[::-1])[::-1]

    def turn(carry, item):
        e, extra = carry
        i, w, left = item
        active = i < length
        low = e <= w
        full = low & (_SEVEN_TWELFTHS + e <= left)
        two = low & ~full & (_QUARTER + e <= left)
        e = jnp.where(full, MAX_ENERGY, jnp.where(two, e + _SEVEN_TWELFTHS, jnp.where(low, e + _QUARTER, e))) - w
        extra = extra + jnp.where(full, 3, jnp.where(two, 2, 0))
        return (jnp.where(active, e, carry[0]), jnp.where(active, extra, carry[1])), None

    (_, extra), _ = jax.lax.scan(turn, (energy, jnp.int32(0)), (jnp.arange(LONGEST), weights, rest_of_path))
    return length + extra


def deepmind_action(game: Game, player: jax.Array | int, memory: BotMemory, key: jax.Array) -> tuple[jax.Array, BotMemory]:
    """DeepMindBot: :func:`deepmind_plan`, then, as the reference's ``DeepMindBot.get_action``:
    if the mask (:func:`avail_actions`, its golds those closer than ``100 − (t + 1)``) forbids the
    planned action, a uniform random available one."""
    action, free_turn = deepmind_plan(game, player, memory.free_turn)
    pos = game.pos[player]
    avail = avail_actions(game, player, reachable_golds(game, pos, MAX_STEPS - (game.t + 1)))
    action = jnp.where(avail[action], action, _random_available(avail, key)).astype(jnp.int32)
    return action, memory._replace(free_turn=free_turn)


def deepmind_plan(game: Game, player: jax.Array | int, free_turn: jax.Array) -> tuple[jax.Array, jax.Array]:
    """DeepMindBot's C++ planner, ``get_best_move``: -> (action, rests still planned after it).

    ``T`` = the steps left after this one (``99 − t``); the golds it lists are those closer than
    ``T``, in row-major order. In order:

    1. Rests still planned (``free_turn``): rest, one fewer planned.
    2. No gold it can reach in time (the nearest listed gold, by Manhattan distance, is neither
       under it nor reachable in fewer than ``T`` turns by :func:`planner_turns`): rest.
    3. On gold without the energy to dig (≤ 5): rest, planning 0, 1 or 2 more rests by its
       thresholds on ``E + 12`` and ``E + 29`` (dangerous neighbours within 1 or 2 steps, the
       gold's share per player, the steps left).
    4. On gold: dig, unless its share (gold ÷ players on the cell) is below 50 and another listed
       gold promises more per turn (its gold less 50 per turn for each player already on it,
       shared with them, capped at 50 per turn left) — then head there.
    5. Elsewhere: pick the gold of best promised gold per distance (``best_mine``), take the
       first move of the least-weight shortest path to it if its energy covers the next cell's
       weight, else rest (planning 0, 1 or 2 more rests).
    """
    t_left = MAX_STEPS - 1 - game.t
    pos, energy = game.pos[player], game.energy[player]
    damage = planner_damage(game)
    present, golds, amounts = _gold_slots(game)
    dist = jnp.abs(golds - pos).sum(-1)
    listed = present & (dist < t_left)
    costs, firsts = jax.vmap(_towards, in_axes=(None, 0))(damage, golds)
    weights = jax.vmap(_path_weights, in_axes=(None, 0, None, 0))(damage, firsts, pos, golds)
    turns = jax.vmap(planner_turns, in_axes=(None, 0, 0))(energy, weights, dist)
    first_move = firsts[:, pos[1], pos[0]]
    move_cost = costs[:, pos[1], pos[0]]
    crowd = jax.vmap(lambda g: _count_at(game, g))(golds)

    # 2. can it get more gold?
    nearest = jnp.argmin(jnp.where(listed, dist, _BIG))
    more = listed.any() & ((dist[nearest] == 0) | (t_left > turns[nearest]))

    here = game.gold[pos[1], pos[0]]
    on_gold = here > 0
    sharing = _count_at(game, pos)

    # 3. on gold, too weak to dig
    others = jnp.arange(game.pos.shape[0]) != player
    near = jnp.abs(game.pos - pos).sum(-1)

    def danger(reach: int) -> jax.Array:
        return (others & (near <= reach) & (game.energy > 5 + near)).sum() > 0

    share = here // sharing
    after_one = energy + _QUARTER
    after_two = energy + _SEVEN_TWELFTHS
    rest_now = ((danger(1) & (after_one // 5 >= share // 50) & (after_one % 5 > 0))
                | (after_one // 5 + 2 > t_left) | (MAX_ENERGY - after_one < 5))
    rest_twice = ((danger(2) & (after_two // 5 >= share // 50) & (after_two % 5 > 0))
                  | (after_two // 5 + 3 > t_left) | (MAX_ENERGY - after_two < 5))
    weak_plan = jnp.where(rest_now, 0, jnp.where(rest_twice, 1, 2))

    # 4. on gold with energy: dig, or leave a thin share for a richer gold
    keep = jnp.where(sharing > 1, here // jnp.maximum(sharing - 1, 1), 0)
    promised = jnp.minimum((t_left - turns) * 50, jnp.maximum(0, amounts - crowd * 50 * turns) // (crowd + 1))
    better_gold = listed & (dist > 0) & (turns < t_left) & (promised > share) & ~(keep > promised)
    beats = promised[:, None] * turns[None, :] > promised[None, :] * turns[:, None]  # [j, i]: j strictly better
    winner = jnp.argmax(better_gold & ~(better_gold[:, None] & beats).any(0))
    dig_or_leave = jnp.where((share < 50) & better_gold.any(), first_move[winner], DIG)

    # 5. elsewhere: best_mine, then its first move or rests
    def scan_mine(best, i):
        index, amount, reach = best
        g_amount = jnp.minimum((t_left - dist[i]) * 50, jnp.maximum(0, amounts[i] - dist[i] * crowd[i] * 50) // (crowd[i] + 1))
        take = listed[i] & (amount * dist[i] < g_amount * reach)
        index, amount, reach = jnp.where(take, i, index), jnp.where(take, g_amount, amount), jnp.where(take, dist[i], reach)
        richer = listed[i] & (amount * dist[i] == g_amount * reach) & (g_amount > amount)
        return (jnp.where(richer, i, index), jnp.where(richer, g_amount, amount), reach), None

    front = jnp.argmax(listed)
    (best, best_amount, _), _ = jax.lax.scan(scan_mine, (front, amounts[front], dist[front]), jnp.arange(MAX_GOLDS))
    move = first_move[best]
    step_to = pos + jnp.stack([jnp.asarray(DX)[move], jnp.asarray(DY)[move]])
    can_move = energy > damage[step_to[1], step_to[0]]
    need = move_cost[best] + (best_amount + 49) // 50
    far_plan = jnp.where(energy + _QUARTER >= need, 0, jnp.where(energy + _SEVEN_TWELFTHS >= need, 1, 2))

    planned = free_turn > 0
    action = jnp.where(planned | ~more, REST,
                       jnp.where(on_gold, jnp.where(energy > 5, dig_or_leave, REST), jnp.where(can_move, move, REST)))
    free_turn = jnp.where(planned, free_turn - 1,
                          jnp.where(~more, 0, jnp.where(on_gold, jnp.where(energy > 5, 0, weak_plan),
                                                        jnp.where(can_move, 0, far_plan))))
    return action.astype(jnp.int32), free_turn.astype(jnp.int32)


# ---- BlackPantherBot (the competition's 1st) -------------------------------------------------------

_RAISE = np.array([0, 12, 28, 50, 100], np.int32)  # its table of energy regained by 0..4 rests


def panther_view(game: Game) -> jax.Array:
    """Its map [H, W]: gold amounts, land 0, forest −1, trap −10, swamp −(current cost)."""
    obstacle = jnp.where(game.terrain == FOREST, -1, jnp.where(game.terrain == TRAP, -10,
                                                                 jnp.where(game.terrain == SWAMP, -game.cost, 0)))
    return jnp.where(game.gold > 0, game.gold, obstacle).astype(jnp.int32)


def _entry(view: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(energy it requires to enter a cell, energy it expects to lose there): gold 4/4, land 1/1,
    forest 20/13, otherwise −value/−value."""
    necessary = jnp.where(view > 0, 4, jnp.where(view == 0, 1, jnp.where(view == -1, 20, -view)))
    lost = jnp.where(view > 0, 4, jnp.where(view == 0, 1, jnp.where(view == -1, 13, -view)))
    return necessary, lost


def _least_rests(energy: jax.Array, necessary: jax.Array, start: jax.Array) -> jax.Array:
    """The least ``r ≥ start`` (≤ 4) with ``energy + RAISE[r] > necessary``."""
    r = jnp.arange(5).reshape((5,) + (1,) * jnp.ndim(energy))
    ok = (r >= start) & (energy + jnp.asarray(_RAISE).reshape(r.shape) > necessary)
    return jnp.where(ok.any(0), jnp.argmax(ok, axis=0), 4)


def count_free_time(energy: jax.Array, max_energy: jax.Array, rests: jax.Array, necessary: jax.Array) -> jax.Array:
    """``count_free_time``: how many more rests it takes before a move that ``necessary`` energy
    must exceed, given ``rests`` rests already taken (their gains removed from ``energy`` first);
    a wish to refill towards ``max_energy`` (capped at 50, at least ``necessary``) asks for 2 or 3."""
    before = jnp.where(rests == 1, 12, jnp.where(rests == 2, 28, jnp.where(rests == 3, 50, 0)))
    e = energy - before
    cap = jnp.maximum(jnp.minimum(max_energy, MAX_ENERGY), necessary)
    start = jnp.where(e < cap - 42, 3, jnp.where(e < cap - 24, 2, 0))
    return jnp.where((rests == 0) & (e > necessary), 0, _least_rests(e + before, necessary, start) - rests)


def panther_search(view: jax.Array, start: jax.Array, energy: jax.Array, steps_left: jax.Array,
                   planned_rests: bool) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Its breadth-first search by turns from ``start`` with ``energy``: each cell's (turns, energy
    on arrival, last move), the least turns first and then the most energy; a move from a cell
    reached in ``s`` turns takes ``1 + rests`` turns, the rests before it from
    :func:`count_free_time` (``planned_rests``: ``find_gold``) or the fewest that cover the entry
    (``player_target``). Only cells reached within ``steps_left`` turns are expanded; a swamp
    costing 50 or more is never entered. Its sweep visits cells level by level in row-major order
    and keeps the first of equal offers: here a relaxation iterated to its fixed point, equal
    offers settled by (the offering cell's turns, its row-major index). -> (turns [H, W], 10000
    where not reached; energy [H, W]; move into the cell [H, W], 5 at the start, −1 elsewhere)."""
    necessary, lost = _entry(view)
    blocked = view <= -50
    at_start = (_XS == start[0]) & (_YS == start[1])
    index = jnp.arange(CELLS).reshape(HEIGHT, WIDTH)
    unreached = (jnp.where(blocked, -3, 10000), jnp.zeros((HEIGHT, WIDTH), jnp.int32), jnp.full((HEIGHT, WIDTH), -1))

    def pin(labels):
        turns, got, move = labels
        return (jnp.where(at_start, 0, turns), jnp.where(at_start, energy, got), jnp.where(at_start, 5, move))

    def relax(labels):
        turns, got, _ = labels
        expanded = (turns >= 0) & (turns <= steps_left)
        best = None
        for d in range(4):  # an offer from the neighbour that moves in direction d into the cell
            dx, dy = -int(DX[d]), -int(DY[d])
            from_turns = _shifted(turns, dx, dy, -3)
            from_energy = _shifted(got, dx, dy, 0)
            from_index = _shifted(index, dx, dy, CELLS)
            valid = _shifted(expanded, dx, dy, False) & ~blocked
            if planned_rests:
                rests = count_free_time(from_energy, jnp.int32(MAX_ENERGY), jnp.int32(0), necessary)
            else:
                rests = _least_rests(from_energy, necessary, 0)
            offer_turns = from_turns + 1 + rests
            offer_energy = from_energy - lost + jnp.asarray(_RAISE)[rests]
            primary = jnp.where(valid, offer_turns * 4096 + (2047 - jnp.clip(offer_energy, -2048, 2047)), _BIG * 64)
            secondary = from_turns * 256 + from_index
            offer = (primary, secondary, offer_turns, offer_energy, jnp.full((HEIGHT, WIDTH), d))
            if best is None:
                best = offer
            else:
                wins = (offer[0] < best[0]) | ((offer[0] == best[0]) & (offer[1] < best[1]))
                best = tuple(jnp.where(wins, o, b) for o, b in zip(offer, best, strict=True))
        reached = best[0] < _BIG * 64
        keep = blocked | ~reached
        return pin((jnp.where(keep, unreached[0], best[2]), jnp.where(keep, 0, best[3]),
                    jnp.where(keep, -1, best[4])))

    def changed(carry):
        labels, previous, i = carry
        same = jnp.array_equal(labels[0], previous[0]) & jnp.array_equal(labels[1], previous[1])
        return (i < 4 * CELLS) & ~(same & jnp.array_equal(labels[2], previous[2]))

    def iterate(carry):
        labels, _, i = carry
        return relax(labels), labels, i + 1

    first = pin(unreached)
    labels, _, _ = jax.lax.while_loop(changed, iterate, (relax(first), first, 0))
    return labels


def craft(gold: jax.Array, energy: jax.Array, steps_left: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Its ``craft`` estimate of digging ``gold`` with ``energy`` in ``steps_left`` turns
    (4 energy a dig, rests of 1, 2 or 3 turns as the turns run out), its recursion unrolled:
    -> (gold it expects, energy left, turns)."""

    def go(carry):
        gold, energy, left, got, turns, _, energy_out, i = carry
        rest = gold % 50
        digs = gold // 50 + (rest > 0)
        rest = jnp.where(rest > 0, rest, 50)
        steps = jnp.minimum(digs, left)
        finish = steps * 4 < energy  # enough energy for the digs the turns allow
        # otherwise: dig while the energy lasts, rest 1–3 turns, and estimate the rest again
        digging = energy // 4
        after, left_after = energy - digging * 4, left - digging
        pause = jnp.where(left_after <= 4, 1, jnp.where(left_after <= 9, 2, 3))
        return (jnp.where(finish, gold, (digs - digging) * 50 + 50 - rest),
                jnp.where(finish, energy, jnp.minimum(after + jnp.asarray(_RAISE)[pause], MAX_ENERGY)),
                jnp.where(finish, left, left_after - pause),
                got + jnp.where(finish, steps, digging) * 50 + 50 - rest,
                turns + jnp.where(finish, steps, digging),
                finish, jnp.where(finish, energy - steps * 4, energy_out), i + 1)

    zero = jnp.int32(0)
    carry = (gold, energy, steps_left, zero, zero, jnp.bool_(False), zero, zero)
    out = jax.lax.while_loop(lambda c: ~c[5] & (c[7] < 256), go, carry)
    return out[3], out[6], out[4]


def _first_move(move: jax.Array, target: jax.Array) -> jax.Array:
    """Walk the moves back from ``target`` to the start: the first move (5, dig, if the target is
    the start)."""

    def back(carry):
        at, _, i = carry
        m = move[at[1], at[0]]
        return at - jnp.stack([jnp.asarray(DX)[m], jnp.asarray(DY)[m]]), m, i + 1

    def going(carry):
        at, _, i = carry
        return (move[at[1], at[0]] >= 0) & (move[at[1], at[0]] < 4) & (i < 4 * CELLS)

    return jax.lax.while_loop(going, back, (target, move[target[1], target[0]], 0))[1]


def panther_target(view: jax.Array, start: jax.Array, energy: jax.Array, steps_left: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``player_target``: the gold it expects another player to head for — the richest gold among
    the fewest-turns golds the search reaches before its last level (ties in row-major order).
    -> (its turns + 1, or −1 for none; the cell [2])."""
    turns, _, _ = panther_search(view, start, energy, steps_left, planned_rests=False)
    gold = (view > 0) & (turns >= 0) & (turns <= steps_left - 1)
    level = jnp.where(gold, turns, _BIG).min()
    richest = jnp.argmax(jnp.where(gold & (turns == level), view, -1).reshape(-1))
    found = gold.any()
    return jnp.where(found, level + 1, -1), jnp.stack([richest % WIDTH, richest // WIDTH])


def black_panther_action(game: Game, player: jax.Array | int, memory: BotMemory,
                         key: jax.Array) -> tuple[jax.Array, BotMemory]:
    """BlackPantherBot (``bots.py``), its ``next_action`` (no mask check, as in the reference):

    1. ``find_gold``: from its search (:func:`panther_search` with planned rests), every gold
       reached in fewer turns than are left is scored by :func:`craft` on what is left; it aims
       for the most gold per turn (first in row-major order on ties) and takes the first move of
       the search's path there (dig if already on it); with none, rest.
    2. It rests instead if :func:`count_free_time` asks for rests before the move (the energy the
       next cell requires; 5 for a dig), with a refill wish of 5 per turn left + 1 — lowered, when
       it stands on gold that other players are expected to come for (:func:`panther_target`,
       each searched with energy ``max(turns left // 2, 1)``), to 5 per dig of its expected share.

    Its count of rests taken is inferred as the reference infers it: one more than last time if
    its energy rose since its last decision, else 0.
    """
    del key
    view = panther_view(game)
    pos, energy = game.pos[player], game.energy[player]
    left = MAX_STEPS - game.t
    first_call = memory.last_energy < 0
    rests = jnp.where(first_call | (memory.last_energy >= energy), 0, memory.rests_seen + 1)

    turns, arrival, move = panther_search(view, pos, energy, left, planned_rests=True)
    present, golds, amounts = _gold_slots(game)
    gold_turns = turns[golds[:, 1], golds[:, 0]]
    gold_energy = arrival[golds[:, 1], golds[:, 0]]
    got, _, dig_turns = jax.vmap(craft)(amounts, gold_energy, left - gold_turns)
    total = gold_turns + dig_turns

    def choose(best, i):
        best_gold, best_turns, index = best
        take = present[i] & (gold_turns[i] < left) & (best_gold * total[i] < got[i] * best_turns)
        return (jnp.where(take, got[i], best_gold), jnp.where(take, total[i], best_turns), jnp.where(take, i, index)), None

    (target_gold, _, target), _ = jax.lax.scan(choose, (jnp.int32(-10000), jnp.int32(1), jnp.int32(0)), jnp.arange(MAX_GOLDS))
    action = jnp.where(target_gold < 0, REST, _first_move(move, golds[target]))

    step = jnp.where(action < 4, action, 0)
    nxt = pos + jnp.where(action < 4, jnp.stack([jnp.asarray(DX)[step], jnp.asarray(DY)[step]]), 0)
    necessary, _ = _entry(view)
    need = jnp.where(action == DIG, 5, necessary[nxt[1], nxt[0]])

    slots = jnp.arange(game.pos.shape[0] - 1)
    others = jnp.where(slots >= player, slots + 1, slots)  # every other player, in order
    guess = jnp.maximum(left // 2, 1)
    steps, cells = jax.vmap(lambda p: panther_target(view, game.pos[p], guess, left))(others)
    coming = (steps > 0) & (cells == pos).all(-1)
    count, total_steps = coming.sum(), jnp.where(coming, steps, 0).sum()
    here = view[pos[1], pos[0]]
    numerator, denominator = here + 50 * total_steps, count + 1
    capped = numerator > here * denominator
    digs = jnp.where(capped, (here + 49) // 50, (numerator + 50 * denominator - 1) // (50 * denominator))
    refill = left * 5 + 1
    refill = jnp.where((here > 0) & (count > 0), jnp.minimum(refill, digs * 5 + 1), refill)
    action = jnp.where(count_free_time(energy, refill, rests, need) > 0, REST, action).astype(jnp.int32)
    return action, memory._replace(last_energy=energy, rests_seen=rests.astype(jnp.int32))


# ---- the bot-versus-bot league --------------------------------------------------------------------

def league(n_games: int, seed: int = 0) -> dict[tuple[str, str], dict[str, float]]:
    """Every pair of difficulties' enemy teams plays ``n_games`` games of bots only (the game's
    rules, 100 steps, the win rule on mean scores): for each pair (a, b), a's win, loss and tie
    rates and both teams' mean scores."""
    results = {}
    names = list(DIFFICULTIES)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            play = jax.jit(jax.vmap(lambda k, a=a, b=b: bot_match(k, DIFFICULTIES[a], DIFFICULTIES[b])))
            scores, _ = play(jax.random.split(jax.random.fold_in(jax.random.key(seed), 3 * i + len(b)), n_games))
            mine, theirs = np.asarray(scores[:, :2]).mean(1), np.asarray(scores[:, 2:]).mean(1)
            results[(a, b)] = {"win": float((mine > theirs).mean()), "loss": float((mine < theirs).mean()),
                               "tie": float((mine == theirs).mean()), "score": float(mine.mean()),
                               "opponent_score": float(theirs.mean())}
    return results
